"""``etc/mailsrv.toml`` documents every key of mailsrv.config, with its default, and nothing else."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from typing import Any, get_type_hints

import pytest

from mailsrv.config import Config, load
from mailsrv.config.example import render
from mailsrv.config.schema import checked, default, doc, entry_table, settings

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "etc", "mailsrv.toml")


def declared(cls: type = Config, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every key of the file, dotted, with its field (tables included)."""
    keys: dict[str, dataclasses.Field] = {}
    hints = get_type_hints(cls)
    for f in settings(cls):
        keys[prefix + f.name] = f
        if dataclasses.is_dataclass(hints[f.name]):
            keys.update(declared(hints[f.name], f"{prefix}{f.name}."))
    return keys


def written(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Every key of a parsed TOML file, dotted, with its value (tables included)."""
    keys: dict[str, Any] = {}
    for name, value in table.items():
        keys[prefix + name] = value
        if isinstance(value, dict):
            keys.update(written(value, f"{prefix}{name}."))
    return keys


def as_written(value: Any) -> Any:
    """A default as TOML spells it: tuples (of tuples) are arrays."""
    return [as_written(v) for v in value] if isinstance(value, tuple) else value


@pytest.fixture(scope="module")
def shipped() -> dict[str, Any]:
    with open(EXAMPLE, "rb") as f:
        return written(tomllib.load(f))


def test_every_key_is_in_the_shipped_file(shipped):
    missing = sorted(set(declared()) - set(shipped))
    assert missing == [], f"keys missing from etc/mailsrv.toml: {missing}"


def test_every_key_in_the_shipped_file_is_known(shipped):
    unknown = sorted(set(shipped) - set(declared()))
    assert unknown == [], f"keys in etc/mailsrv.toml that mailsrv does not know: {unknown}"


def test_the_shipped_file_shows_the_defaults(shipped):
    fields = declared()
    differ = {
        key: (value, as_written(default(fields[key])))
        for key, value in shipped.items()
        if key in fields and not isinstance(value, dict) and value != as_written(default(fields[key]))
    }
    assert differ == {}, f"etc/mailsrv.toml (value, default) that differ: {differ}"


def test_the_shipped_file_is_the_rendered_documentation():
    """The comments are the field docs: regenerate with ``python -m mailsrv.config > etc/mailsrv.toml``."""
    with open(EXAMPLE, encoding="utf-8") as f:
        assert f.read() == render()


def test_the_shipped_file_loads_as_the_defaults():
    loaded, defaults = load(EXAMPLE), load(None)
    assert loaded.source == EXAMPLE != defaults.source
    assert dataclasses.replace(loaded, source=defaults.source) == defaults


@pytest.mark.parametrize("key", sorted(declared()))
def test_every_key_has_a_one_line_doc(key):
    text = doc(declared()[key])
    assert text and "\n" not in text and text == text.strip()


@pytest.mark.parametrize("key", sorted(declared()))
def test_every_default_passes_its_own_check(key):
    field = declared()[key]
    entry = entry_table(field)
    if entry is None:
        assert checked(field, default(field)) == default(field)
    else:  # a mapping's check is for the names of its entries; it has none by default
        assert default(field) == {}
        for f in settings(entry):
            text = doc(f)
            assert text and "\n" not in text and checked(f, default(f)) == default(f)

"""Reading the TOML file into the table dataclasses, naming file and key on every error.

The loader knows no key by name: it walks the declarations of
:mod:`.schema`, so a new key needs only its field.  Every mistake (unknown
key, wrong type, a value a check refuses) is one :class:`ConfigError` line
``<file>: <dotted.key>: <what is wrong>``, because a mail admin reading a
start-up failure must know exactly which line to fix.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from types import MappingProxyType
from typing import Any, Mapping, get_type_hints

from mailsrv.config.schema import ConfigError, Invalid, TableT, checked, entry_table, settings
from mailsrv.config.server import DEFAULT_SOURCE, Config

#: The environment variable that names the configuration file when no option does.
CONFIG_ENV = "MAILSRV_CONFIG"
#: The file read when neither the option nor :data:`CONFIG_ENV` names one, if it exists.
SYSTEM_CONFIG = "/etc/mailsrv/mailsrv.toml"


def locate(option: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The configuration file to read: *option*, else ``$MAILSRV_CONFIG``, else
    :data:`SYSTEM_CONFIG` if it exists; ``None`` means the embedded defaults.

    ``twistd mailsrv`` and the ``mailsrv`` command both call this, so an
    admin who runs ``mailsrv user add`` with no option edits the users of the
    server that was started with none either.  A file named by the option or
    the variable must exist (reading it reports it if not); only the system
    file is optional, so a typo never falls back to the defaults silently.
    """
    if option:
        return option
    if environ.get(CONFIG_ENV):
        return environ[CONFIG_ENV]
    return SYSTEM_CONFIG if os.path.exists(SYSTEM_CONFIG) else None


def load(path: str | None = None, **overrides: Any) -> Config:
    """Read *path* (TOML) over the defaults; ``None`` gives the defaults.

    *overrides* replace top-level keys of the file (command-line options
    such as ``--data-dir``); ``None`` values are ignored.
    """
    table = {} if path is None else _read(path)
    table.update({key: value for key, value in overrides.items() if value is not None})
    source = DEFAULT_SOURCE if path is None else path
    return dataclasses.replace(build(Config, table, "", source), source=source)


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


def build(cls: type[TableT], table: dict[str, Any], prefix: str, source: str) -> TableT:
    """The dataclass *cls* from a TOML *table* whose keys start with *prefix*."""
    hints = get_type_hints(cls)
    known = {f.name: f for f in settings(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{source}: {where}: unknown key")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {where}: expected a table [{where}]")
            values[key] = build(hint, value, where + ".", source)
            continue
        if entry_table(known[key]) is not None:
            values[key] = _entries(known[key], value, where, source)
            continue
        try:
            values[key] = checked(known[key], _typed(value, hint, where, source))
        except Invalid as e:
            raise ConfigError(f"{source}: {where}: {e}") from None
    built = cls(**values)
    try:
        built.check()
    except Invalid as e:
        raise ConfigError(f"{source}: {prefix}{e.key}: {e}") from None
    return built


def _entries(field: dataclasses.Field, table: Any, where: str, source: str) -> Mapping[str, Any]:
    """A :func:`~mailsrv.config.schema.mapping`: each name checked, each value read as its entry table."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {where}: expected a table [{where}]")
    entries: dict[str, Any] = {}
    for name, value in table.items():
        here = f"{where}.{json.dumps(name)}"  # quoted: a domain's dots are not TOML's
        try:
            canonical = checked(field, name)
        except Invalid as e:
            raise ConfigError(f"{source}: {here}: {e}") from None
        if canonical in entries:
            raise ConfigError(f"{source}: {here}: {canonical} is named twice")
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {here}: expected a table, such as {{ key = value }}")
        entries[canonical] = build(entry_table(field), value, here + ".", source)
    return MappingProxyType(entries)


def _typed(value: Any, hint: Any, where: str, source: str) -> Any:
    """*value* if it has the annotated type *hint*; TOML arrays become tuples."""
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {where}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{source}: {where}: expected a non-negative integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {where}: expected a string, got {value!r}")
        return value
    if hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: {where}: expected a list of strings, got {value!r}")
        return tuple(value)
    if hint == tuple[tuple[str, ...], ...]:
        if not isinstance(value, list) or not all(
                isinstance(v, list) and all(isinstance(s, str) for s in v) for v in value):
            raise ConfigError(f"{source}: {where}: expected a list of lists of strings, got {value!r}")
        return tuple(tuple(v) for v in value)
    raise AssertionError(f"unhandled config type {hint!r}")  # pragma: no cover

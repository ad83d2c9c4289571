"""``etc/mailsrv.toml``, rendered from the declarations: every key, its default, its doc.

The shipped file is exactly this module's output (a test holds them
equal), so no key can be added, renamed or given a new default without the
documented file following, and no field doc can say something the file
does not.  Regenerate it with ``python -m mailsrv.config > etc/mailsrv.toml``.
"""

from __future__ import annotations

import dataclasses
import json
import textwrap
from typing import Any, get_type_hints

from mailsrv.config.schema import default, doc, entry_table, needs_restart, settings
from mailsrv.config.server import Config

HEADER = """\
# mailsrv configuration: every key, with its default value and what it does.
# Start with:  twistd -n mailsrv --config /etc/mailsrv/mailsrv.toml
# Any key left out keeps the default shown here. An unknown key or a wrong
# type stops start-up with one line naming this file and the key.
# SIGHUP re-reads this file: the keys marked "[restart]" keep their running
# value until a restart, every other key applies to what starts after it.
"""

#: Added to the doc of a key (or a table) that a SIGHUP cannot change.
RESTART_MARK = "[restart]"

_WIDTH = 78


def render() -> str:
    """The documented configuration file: the defaults of :class:`Config`, each under its doc."""
    return HEADER + "".join(_table(Config, ""))


def _table(cls: type, prefix: str) -> list[str]:
    """Text blocks of one table: its plain keys first, as TOML requires, then its sub-tables."""
    hints = get_type_hints(cls)
    keys = [f for f in settings(cls) if not _is_table(f, hints)]
    tables = [f for f in settings(cls) if _is_table(f, hints)]
    blocks = [f"\n{_comment(_doc(f))}{f.name} = {_value(default(f))}\n" for f in keys]
    for f in tables:
        name = prefix + f.name
        blocks.append(f"\n[{name}]\n{_comment(_doc(f))}")
        entry = entry_table(f)
        blocks.extend(_table(hints[f.name], name + ".") if entry is None else [_entries(entry)])
    return blocks


def _doc(field: dataclasses.Field) -> str:
    """The doc line of *field*, marked when a new value takes a restart."""
    return f"{doc(field)} {RESTART_MARK}" if needs_restart(field) else doc(field)


def _is_table(field: dataclasses.Field, hints: dict[str, Any]) -> bool:
    return dataclasses.is_dataclass(hints[field.name]) or entry_table(field) is not None


def _entries(cls: type) -> str:
    """The keys of a mapping's entries, and its example lines, all as comments: the default is no entry."""
    lines = [_comment(f"{f.name} (default {_value(default(f))}): {doc(f)}") for f in settings(cls)]
    example = "".join(f"#   {line}\n" for line in cls.EXAMPLE)
    return "#\n" + "".join(lines) + "# For example:\n" + example


def _comment(text: str) -> str:
    return "".join(f"# {line}\n" for line in textwrap.wrap(text, _WIDTH - 2))


def _value(value: Any) -> str:
    """*value* as TOML (JSON's string escapes are TOML's basic-string escapes)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return json.dumps(value)

"""The alias file: ``alias@domain: target1@domain, target2@other``.

``@domain: target`` is the catch-all of that domain.  Repeated lines for
one alias add up, as the CLI's ``alias add`` does, so a hand-written file
and a CLI-written one mean the same.  A line we cannot use is skipped with
a warning naming the file and line (:func:`~mailsrv.accounts.textfile.parse_lists`).
"""

from __future__ import annotations

from mailsrv.accounts.textfile import EditError, append_line, first_field, map_lines, parse_lists
from mailsrv.address import canonical_address, canonical_domain

#: Aliases are not secret, but only the server and the admin need them.
DEFAULT_MODE = 0o640


def alias_key(name: str) -> str | None:
    """Canonical alias name: a plain address or ``@domain``; ``None`` if neither."""
    name = name.strip()
    if name.startswith("@"):
        domain = canonical_domain(name[1:])
        return None if domain is None else "@" + domain
    return canonical_address(name)


def key_of(line: str) -> str | None:
    """The alias a line defines, ``None`` for comments/garbage."""
    field = first_field(line)
    return None if field is None else alias_key(field)


def parse(text: str, source: str) -> dict[str, tuple[str, ...]]:
    """Map alias (or ``@domain``) -> canonical target addresses, in file order."""
    return parse_lists(text, source, alias_key, canonical_address, "ALIAS: ADDRESS[, ADDRESS...] with plain addresses")


def add(text: str, key: str, targets: list[str], source: str) -> str:
    """*text* with *targets* added to alias *key* (created if new).

    The alias's lines are folded into its first one, so the file stays one
    line per alias however often ``alias add`` runs.
    """
    merged = list(dict.fromkeys([*parse(text, source).get(key, ()), *targets]))
    entry = f"{key}: {', '.join(merged)}"
    replacement = iter([entry + "\n"])
    new, hits = map_lines(text, key_of, key, lambda line: next(replacement, None))
    return new if hits else append_line(text, entry)


def remove(text: str, key: str) -> str:
    """*text* without alias *key*."""
    new, hits = map_lines(text, key_of, key, lambda line: None)
    if not hits:
        raise EditError(f"no such alias: {key}")
    return new

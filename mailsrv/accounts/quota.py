"""Per-user quota limits in the user file, written as Dovecot's passwd-file writes them.

A passwd-file line is ``user:password:uid:gid:gecos:home:shell:extra``;
the extra fields are the rest of the line after the seventh ``:``,
separated by spaces, and a quota is the extra field
``userdb_quota_rule=*:storage=1G`` (``quota_rule=`` is the same field as a
userdb-only file writes it; ``quota_rule2=`` ... are further rules)::

    alice@example.test:{ARGON2ID}$argon2id$...::::::userdb_quota_rule=*:storage=1G:messages=10000

A rule is ``MAILBOX:LIMIT=VALUE[:LIMIT=VALUE...]``.  mailsrv has one
quota root over all folders, so only ``*`` rules count.  Limits, as
Dovecot reads them: ``storage=`` in KiB unless the value has a unit
(``b``, ``k``, ``M``, ``G``, ``T``), ``bytes=`` in octets unless it has
one, ``messages=`` a count; 0 is no limit.  What is not understood here
(another mailbox, ``ignore``, ``+``/``-`` relative values, ``%``) is
skipped with a warning naming the file and line, and the limit stays the
configured default: a typo must not lift or tighten anyone's quota.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from twisted.logger import Logger

from mailsrv.accounts.textfile import content_lines
from mailsrv.address import canonical_address
from mailsrv.store.maildirsize import Limits

log = Logger()

#: The extra-field names that carry quota rules (Dovecot's, with and without the userdb prefix).
_RULE_FIELD = re.compile(r"(?:userdb_)?quota_rule[0-9]*\Z")
_UNITS = {"": None, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE = re.compile(r"([0-9]{1,15})([bBkKmMgGtT]?)\Z")


@dataclass(frozen=True)
class Override:
    """A user's own limits; ``None`` keeps the configured default for that resource."""

    storage: int | None = None
    messages: int | None = None

    def then(self, later: "Override") -> "Override":
        """These limits with what a *later* rule sets replacing them (Dovecot's rules add up in order)."""
        return Override(
            self.storage if later.storage is None else later.storage,
            self.messages if later.messages is None else later.messages,
        )

    def applied_to(self, default: Limits) -> Limits:
        """The limits the user gets."""
        return Limits(
            default.storage if self.storage is None else self.storage,
            default.messages if self.messages is None else self.messages,
        )


def size_octets(value: str, bare_unit: int = 1024) -> int:
    """A Dovecot size (``1G``, ``500M``, ``1024``) in octets; a bare number counts *bare_unit* each.

    Raises ValueError for anything else.
    """
    match = _SIZE.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a size (a number with an optional unit b, k, M, G or T)")
    unit = _UNITS[match.group(2).upper()]
    return int(match.group(1)) * (bare_unit if unit is None else unit)


def _limit(name: str, value: str) -> Override:
    if name == "storage":
        return Override(storage=size_octets(value))
    if name == "bytes":
        return Override(storage=size_octets(value, bare_unit=1))
    if name == "messages" and value.isdigit():
        return Override(messages=int(value))
    raise ValueError(f"cannot use the limit {name}={value}")


def parse_rule(rule: str) -> Override:
    """One ``*:LIMIT=VALUE[:...]`` rule; ValueError for one mailsrv cannot apply."""
    mailbox, _, limits = rule.partition(":")
    if mailbox != "*":
        raise ValueError(f"only rules for every folder ('*') apply, not {mailbox!r}")
    found = Override()
    for part in limits.split(":"):
        name, equals, value = part.partition("=")
        if not equals:
            raise ValueError(f"cannot use the rule part {part!r}")
        found = found.then(_limit(name.strip().lower(), value.strip()))
    return found


def extra_fields(line: str) -> list[str]:
    """The space-separated extra fields of a passwd-file line (after its seventh ``:``)."""
    fields = line.split(":", 7)
    return fields[7].split() if len(fields) == 8 else []


def _is_rule(extra: str) -> bool:
    return bool(_RULE_FIELD.match(extra.partition("=")[0]))


def _override(line: str, source: str, number: int) -> Override | None:
    """The limits the rules of *line* set, None when it has no rule (warnings name *source*)."""
    found: Override | None = None
    for extra in filter(_is_rule, extra_fields(line)):
        name, _, rule = extra.partition("=")
        try:
            found = (found or Override()).then(parse_rule(rule))
        except ValueError as e:
            log.warn("{file}:{line}: {field}: {problem}; rule ignored", file=source, line=number, field=name,
                     problem=str(e))
    return found


def parse(text: str, source: str) -> dict[str, Override]:
    """Canonical address -> the user's own limits, for the lines that set some."""
    overrides: dict[str, Override] = {}
    for number, line in content_lines(text):
        address = canonical_address(line.partition(":")[0].strip())
        if address is None or address in overrides:
            continue  # the password parser warns about these lines
        found = _override(line, source, number)
        if found is not None:
            overrides[address] = found
    return overrides


def with_storage(line: str, storage: str) -> str:
    """*line* (an entry, no LF) with its storage limit set to *storage* (a Dovecot size, ``0`` for none).

    Its quota rules become one ``userdb_quota_rule=*:storage=...`` that
    keeps a messages limit it had; other extra fields are kept, and the
    fields before the extras are padded out empty, as passwd-file wants.
    """
    size_octets(storage)  # refuse what the server would not read
    fields = line.rstrip("\n").split(":", 7)
    extras = fields[7].split() if len(fields) == 8 else []
    messages = _override(line, "", 0)
    rule = f"userdb_quota_rule=*:storage={storage}"
    if messages is not None and messages.messages is not None:
        rule += f":messages={messages.messages}"
    kept = [extra for extra in extras if not _is_rule(extra)]
    return ":".join((fields[:7] + [""] * 7)[:7] + [" ".join([rule, *kept])])

"""SORT criteria (RFC 5256 3) and the ordering they ask for.

Criteria are applied as successive stable sorts, last criterion first,
over the messages in mailbox order: ``REVERSE`` turns one criterion
around without touching the others, and messages equal under every
criterion stay in mailbox order, as RFC 5256 3 wants, REVERSE or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import bad, syntax
from mailsrv.imap.search import Message
from mailsrv.imap.sortfields import MessageFields

#: One searched message and its fields.
Hit = tuple[Message, MessageFields]

_KEYS: dict[bytes, Callable[[Hit], Any]] = {
    b"ARRIVAL": lambda hit: hit[0].internaldate,
    b"CC": lambda hit: hit[1].cc_key,
    b"DATE": lambda hit: hit[1].sent,
    b"FROM": lambda hit: hit[1].from_key,
    b"SIZE": lambda hit: hit[0].size,
    b"SUBJECT": lambda hit: hit[1].subject_key,
    b"TO": lambda hit: hit[1].to_key,
}


#: The keys a message's own info answers (RFC 5256 3: its internal date, its size): no header is read.
_OWN_KEYS = frozenset({b"ARRIVAL", b"SIZE"})


@dataclass(frozen=True)
class Criterion:
    """One sort key, maybe reversed."""

    key: bytes
    reverse: bool


def read_criteria(args: Arguments) -> list[Criterion]:
    """``(sort-criterion *(SP sort-criterion))`` (RFC 5256 5)."""
    words = args.atom_list() if args.peek() == b"(" else None
    if words is None:
        raise syntax(b"Sort criteria expected")
    criteria: list[Criterion] = []
    reverse = False
    for word in (w.upper() for w in words):
        if word == b"REVERSE" and not reverse:
            reverse = True
            continue
        if word not in _KEYS:
            raise bad(b"Unknown sort criterion")
        criteria.append(Criterion(word, reverse))
        reverse = False
    if reverse:
        raise bad(b"REVERSE must precede a sort key")
    return criteria


def needs_fields(criteria: Sequence[Criterion]) -> bool:
    """Whether any of *criteria* orders by a header field, so that each message's must be read."""
    return any(criterion.key not in _OWN_KEYS for criterion in criteria)


def sort_hits(hits: Sequence[Hit], criteria: Sequence[Criterion]) -> list[Hit]:
    """*hits* (in mailbox order) ordered by *criteria*."""
    ordered = list(hits)
    for criterion in reversed(criteria):
        ordered.sort(key=_KEYS[criterion.key], reverse=criterion.reverse)
    return ordered

"""SORT criteria (RFC 5256 3) and the ordering they ask for.

Criteria are applied as successive stable sorts, last criterion first,
over the messages in mailbox order: ``REVERSE`` turns one criterion
around without touching the others, and messages equal under every
criterion stay in mailbox order, as RFC 5256 3 wants, REVERSE or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Callable, Protocol, Sequence

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.hits import Hits
from mailsrv.imap.responses import bad, syntax
from mailsrv.imap.sortfields import FieldSource, MessageFields


class HasNumbers(Protocol):
    """What THREAD needs of a message besides its header fields (:class:`.hits.Numbered`, a Message)."""

    @property
    def seq(self) -> int: ...

    @property
    def uid(self) -> int: ...


#: One searched message and its fields (THREAD).
Hit = tuple[HasNumbers, MessageFields]

#: The header keys: the field of :class:`.MessageFields` each compares.
_FIELD_KEYS = {b"CC": "cc_key", b"DATE": "sent", b"FROM": "from_key", b"SUBJECT": "subject_key", b"TO": "to_key"}
#: The keys a message's own info answers (RFC 5256 3: its internal date, its size): the hits' columns.
_OWN_KEYS: dict[bytes, Callable[[Hits], list[Any]]] = {
    b"ARRIVAL": attrgetter("internaldates"),
    b"SIZE": attrgetter("sizes"),
}
_KEYS = _FIELD_KEYS.keys() | _OWN_KEYS.keys()


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


def sort_order(hits: Hits, criteria: Sequence[Criterion], source: FieldSource) -> list[int]:
    """The positions of *hits* (in mailbox order) ordered by *criteria*.

    Only the header keys compared are asked of *source* (none for ARRIVAL
    and SIZE), and kept as a column per key.  Where the source stops short
    (the session closed meanwhile), so does the order.
    """
    columns: dict[bytes, list[Any]] = {key: get(hits) for key, get in _OWN_KEYS.items()}
    wanted = list(dict.fromkeys(criterion.key for criterion in criteria if criterion.key in _FIELD_KEYS))
    if wanted:
        columns.update(zip(wanted, source.columns([_FIELD_KEYS[key] for key in wanted])))
    order = list(range(min(len(columns[criterion.key]) for criterion in criteria)))
    for criterion in reversed(criteria):
        order.sort(key=columns[criterion.key].__getitem__, reverse=criterion.reverse)
    return order

"""What a SEARCH, SORT or THREAD found, as columns of numbers and strings.

A search of 100,000 messages that matches them all has 100,000 hits.
Kept as one object per hit (a named tuple or a :class:`~.search.Message`),
each is a container the cyclic collector tracks: they outlive several of
its young collections, and each time that many reach the oldest
generation it walks the whole heap, a tenth to a quarter of a second
during which no session is served.  A few lists of ints, floats and
strings are a few objects, whatever their length.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol, Sequence


class Numbered(NamedTuple):
    """One hit's numbers, for THREAD (which builds a node per message anyway)."""

    seq: int
    uid: int


class _Described(Protocol):
    """A session's view of a message, or a :class:`~.search.Message`: what a hit keeps of it."""

    @property
    def uid(self) -> int: ...

    @property
    def modseq(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def internaldate(self) -> float: ...

    @property
    def key(self) -> str: ...


class Hits:
    """The messages found, in mailbox order: their sequence numbers, UIDs, modseqs, sizes, dates, keys."""

    __slots__ = ("seqs", "uids", "modseqs", "sizes", "internaldates", "keys")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.uids: list[int] = []
        self.modseqs: list[int] = []
        self.sizes: list[int] = []
        self.internaldates: list[float] = []
        self.keys: list[str] = []

    def __len__(self) -> int:
        return len(self.seqs)

    def add(self, seq: int, message: _Described) -> None:
        """One more hit, numbered *seq*."""
        self.seqs.append(seq)
        self.uids.append(message.uid)
        self.modseqs.append(message.modseq)
        self.sizes.append(message.size)
        self.internaldates.append(message.internaldate)
        self.keys.append(message.key)

    def gather(
        self, seqs: Sequence[int], views: Sequence[_Described], matches: Callable[[int, Any], bool],
    ) -> "Hits":
        """Add the ``(seq, view)`` that *matches* accepts; this object."""
        for seq, view in zip(seqs, views):
            if matches(seq, view):
                self.add(seq, view)
        return self

    def numbers(self, uid: bool) -> list[int]:
        """The UIDs, or the sequence numbers."""
        return self.uids if uid else self.seqs

    def numbered(self) -> list[Numbered]:
        """A :class:`Numbered` per hit."""
        return [Numbered(seq, uid) for seq, uid in zip(self.seqs, self.uids)]

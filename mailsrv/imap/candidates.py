"""The messages of one SEARCH, SORT, THREAD or FETCH, as a pool thread reads them.

Made on the reactor thread, where the folder's snapshot lives: only the
views and where each file was are noted there (a path, a finder and a
:class:`~.search.Message` per message cost the reactor more than the rest
of a header SEARCH).  The pool thread makes a Message for the messages it
must read, and no other: a FETCH ENVELOPE or a header SEARCH answered from
the message cache makes none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from mailsrv.imap.fetch import View
from mailsrv.imap.search import Message
from mailsrv.store.folder import locate

if TYPE_CHECKING:
    from mailsrv.store import Folder


class Candidates:
    """Messages of *folder*: sequence numbers, views and the files they were in at the last sync.

    Kept as columns, not a pair per message: 100,000 pairs, each holding
    a view the cyclic collector tracks, made it walk the whole heap again
    and again while a SORT ran, and every session waited for each walk.
    """

    def __init__(self, folder: "Folder") -> None:
        self.seqs: list[int] = []
        self.views: list[View] = []
        self._folder = folder
        self._root = folder.path
        self._files: list[str] = []

    @classmethod
    def of_pairs(cls, folder: "Folder", pairs: Sequence[tuple[int, View]]) -> "Candidates":
        """The messages of ``(seq, view)`` *pairs* (a FETCH's batch)."""
        candidates = cls(folder)
        candidates.add([seq for seq, _ in pairs], [view for _, view in pairs])
        return candidates

    def add(self, seqs: Sequence[int], views: Sequence[View]) -> None:
        """More messages, with where their files are: in the reactor turn the views were made in."""
        self.seqs.extend(seqs)
        self.views.extend(views)
        self._files.extend(self._folder.files_of(view.uid for view in views))

    def __len__(self) -> int:
        return len(self.views)

    def keys(self) -> list[str]:
        """The Maildir keys (what the message cache is keyed by), in order."""
        return [view.key for view in self.views]

    def message(self, index: int) -> Message:
        """The *index*-th as a Message that can read its file (blocking: in the pool)."""
        seq, view = self.seqs[index], self.views[index]
        path, find = locate(self._root, self._files[index], view.key)
        return Message(seq, view.uid, view.flags, view.size, view.internaldate, path, find, view.modseq, view.key)

    def messages(self) -> list[Message]:
        """Every one as a Message (the search reads them one by one)."""
        return [self.message(index) for index in range(len(self.views))]

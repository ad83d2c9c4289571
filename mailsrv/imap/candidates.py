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
    """``(seq, view)`` pairs of *folder* and the files they were in at the last sync."""

    def __init__(self, folder: "Folder", views: Sequence[tuple[int, View]]) -> None:
        self.views = views
        self._root = folder.path
        self._files = folder.files_of(view.uid for _, view in views)

    def __len__(self) -> int:
        return len(self.views)

    def keys(self) -> list[str]:
        """The Maildir keys (what the message cache is keyed by), in order."""
        return [view.key for _, view in self.views]

    def message(self, index: int) -> Message:
        """The *index*-th as a Message that can read its file (blocking: in the pool)."""
        seq, view = self.views[index]
        path, find = locate(self._root, self._files[index], view.key)
        return Message(seq, view.uid, view.flags, view.size, view.internaldate, path, find, view.modseq, view.key)

    def messages(self) -> list[Message]:
        """Every one as a Message (the search reads them one by one)."""
        return [self.message(index) for index in range(len(self.views))]

"""A folder's in-memory index: each message's info and file, by UID and by key.

Built from file names and ``stat`` alone, so SELECT, STATUS, POP3 LIST and
UIDL never open a message.  It only ever holds messages whose UIDs are
durable; the :class:`~mailsrv.store.folder.Folder` decides what goes in
and out, on the reactor thread.
"""

from __future__ import annotations

from itertools import compress
from operator import methodcaller

from mailsrv.store.message import MessageInfo


class Snapshot:
    """The messages of one folder as of its last sync."""

    def __init__(self) -> None:
        self.infos: dict[int, MessageInfo] = {}
        self.files: dict[int, str] = {}  # uid -> "cur/<name>" or "new/<name>"
        self.uid_of: dict[str, int] = {}  # key -> uid
        self.in_new: set[int] = set()  # not yet claimed by any session: \Recent
        self._order: list[int] = []
        self._order_stale = False

    @classmethod
    def of(cls, infos: list[MessageInfo], files: list[str], uids: list[int], keys: list[str]) -> "Snapshot":
        """A snapshot of *infos* (UIDs ascending) whose files, UIDs and keys are *files*, *uids*, *keys*.

        All four lists come from one read of the snapshot file; the maps are
        made from them by C loops, with no Python code per message.
        """
        snap = cls()
        snap.infos = dict(zip(uids, infos))
        snap.files = dict(zip(uids, files))
        snap.uid_of = dict(zip(keys, uids))
        snap.in_new = set(compress(uids, map(methodcaller("startswith", "new/"), files)))
        snap._order = uids
        return snap

    def ordered(self) -> list[int]:
        """Every UID, ascending."""
        if self._order_stale:
            self._order = [uid for uid in self._order if uid in self.infos]
            self._order_stale = False
        return self._order

    def add(self, entries: list[tuple[MessageInfo, str]]) -> None:
        """Take in new messages: ``(info, file)`` pairs in UID order."""
        for info, rel in entries:
            self.infos[info.uid] = info
            self.uid_of[info.key] = info.uid
            self.set_file(info.uid, rel)
        order = self.ordered()
        if entries and order and entries[0][0].uid < order[-1]:
            self._order = sorted(self.infos)  # another node's UIDs may come late
        else:
            order.extend(info.uid for info, _ in entries)

    def set_file(self, uid: int, rel: str) -> None:
        """The message's file is now *rel*."""
        self.files[uid] = rel
        if rel.startswith("new/"):
            self.in_new.add(uid)
        else:
            self.in_new.discard(uid)

    def drop(self, uid: int) -> str:
        """Take a message out; its key."""
        key = self.infos.pop(uid).key
        del self.files[uid], self.uid_of[key]
        self.in_new.discard(uid)
        self._order_stale = True
        return key

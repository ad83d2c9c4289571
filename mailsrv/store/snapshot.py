"""A folder's in-memory index: each message's info and file, by UID and by key.

Built from file names and ``stat`` alone, so SELECT, STATUS, POP3 LIST and
UIDL never open a message.  It only ever holds messages whose UIDs are
durable; the :class:`~mailsrv.store.folder.Folder` decides what goes in
and out, on the reactor thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import compress

from mailsrv.store.message import MessageInfo

#: How many distinct places are shared; past that (keyword letters in every combination) each keeps its own.
PLACES_SHARED = 4096
_places: dict[str, str] = {}


def shared_place(place: str) -> str:
    """One string object for every message whose file name has this place (a handful per folder).

    A place is the file name without its key: ``new/``, ``cur/:2,S``,
    ``cur/:2,FS``.  Kept instead of the whole name, 100,000 messages hold a
    few strings, not 100,000 (10 MiB), and a listing's comparison of two
    equal ones ends at their identity.
    """
    got = _places.get(place)
    if got is None:
        if len(_places) >= PLACES_SHARED:
            return place
        got = _places.setdefault(place, place)
    return got


def place_of(rel: str, key: str) -> str:
    """The place of the file at *rel* (``cur/<key>:2,S``), whose name begins with *key*: ``cur/:2,S``."""
    return shared_place(rel[:4] + rel[4 + len(key):])


def rel_of(place: str, key: str) -> str:
    """The file's path in the folder (``cur/<key>:2,S``) from its *place* and *key*."""
    return place[:4] + key + place[4:]


class Snapshot:
    """The messages of one folder as of its last sync."""

    def __init__(self) -> None:
        self.infos: dict[int, MessageInfo] = {}
        #: uid -> its file's place (:func:`shared_place`): ``new/`` or ``cur/<after the key>``.
        self.places: dict[int, str] = {}
        self.uid_of: dict[str, int] = {}  # key -> uid
        self.in_new: set[int] = set()  # not yet claimed by any session: \Recent
        self._order: list[int] = []
        self._order_stale = False

    @classmethod
    def of(cls, infos: Sequence[MessageInfo], places: Sequence[str], uids: list[int], keys: Iterable[str],
           new_places: frozenset[str]) -> "Snapshot":
        """A snapshot of *infos* (UIDs ascending) whose places, UIDs and keys are *places*, *uids*, *keys*.

        All the lists come from one read of the snapshot file; *new_places*
        are the places among them in ``new/``.  The maps are made by C loops,
        with no Python code per message.
        """
        snap = cls()
        snap.infos = dict(zip(uids, infos))
        snap.places = dict(zip(uids, places))
        snap.uid_of = dict(zip(keys, uids))
        snap.in_new = set(compress(uids, map(new_places.__contains__, places)))
        snap._order = uids
        return snap

    def rel(self, uid: int) -> str:
        """Where the message's file is: ``cur/<name>`` or ``new/<name>``."""
        return rel_of(self.places[uid], self.infos[uid].key)

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
            self.set_file(info.uid, place_of(rel, info.key))
        order = self.ordered()
        if entries and order and entries[0][0].uid < order[-1]:
            self._order = sorted(self.infos)  # another node's UIDs may come late
        else:
            order.extend(info.uid for info, _ in entries)

    def set_file(self, uid: int, place: str) -> None:
        """The message's file now has this place (:func:`shared_place`)."""
        self.places[uid] = place
        if place.startswith("new/"):
            self.in_new.add(uid)
        else:
            self.in_new.discard(uid)

    def drop(self, uid: int) -> str:
        """Take a message out; its key."""
        key = self.infos.pop(uid).key
        del self.places[uid], self.uid_of[key]
        self.in_new.discard(uid)
        self._order_stale = True
        return key

"""Reading a folder's directories: what a sync compares with the folder's snapshot.

Listing a 30,000-message folder takes tens of milliseconds, so these
functions run in the store's executor and return plain values; the
:class:`~mailsrv.store.folder.Folder` applies them on the reactor thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mailsrv.message import wire
from mailsrv.store import keywords, maildir, modseqs, uidlist
from mailsrv.store.files import FileStamp
from mailsrv.store.snapshot import shared_place

T = TypeVar("T")


@dataclass(frozen=True)
class DirStamps:
    """The stamps of ``new/`` and ``cur/``: any delivery, rename or unlink moves one."""

    new: FileStamp
    cur: FileStamp

    @classmethod
    def of(cls, folder_path: str) -> "DirStamps":
        """Both stamps now; ``FileNotFoundError`` once the folder is gone (one ``stat`` each)."""
        return cls(
            FileStamp.from_stat(os.stat(os.path.join(folder_path, "new"))),
            FileStamp.from_stat(os.stat(os.path.join(folder_path, "cur"))),
        )

    @property
    def newest_mtime_ns(self) -> int:
        return max(self.new.mtime_ns, self.cur.mtime_ns)


@dataclass(frozen=True)
class OwnChange:
    """The directory stamps just before and just after a change the folder made itself (renames).

    A stamp is None where the folder was gone.
    """

    started_ns: int
    before: DirStamps | None
    after: DirStamps | None


def _stamps_or_none(folder_path: str) -> DirStamps | None:
    try:
        return DirStamps.of(folder_path)
    except FileNotFoundError:
        return None


def around(folder_path: str, fn: Callable[..., T], *args: Any) -> tuple[OwnChange, T]:
    """Call ``fn(*args)`` (blocking), with the folder's stamps taken before and after it."""
    started = time.time_ns()
    before = _stamps_or_none(folder_path)
    result = fn(*args)
    return OwnChange(started, before, _stamps_or_none(folder_path)), result


@dataclass(frozen=True)
class Listing:
    """One scan: every message file by key, and the stamps taken before reading them."""

    started_ns: int
    stamps: DirStamps
    #: key -> (the file's place, :func:`~mailsrv.store.snapshot.shared_place`; Maildir info letters)
    entries: dict[str, tuple[str, str]]
    uidlist: FileStamp | None
    keywords: FileStamp | None
    modseqs: FileStamp | None


#: Readings of ``new/`` and ``cur/`` one listing makes at most while they keep changing under it.
LISTING_READS = 3


def list_folder(folder_path: str) -> Listing:
    """List ``new/`` and ``cur/`` (blocking).

    The clock and the directory stamps are read *before* the listing, so a
    change made while it runs moves a stamp past the recorded one and the
    next sync sees it.  A file renamed while ``readdir`` runs (another
    session or process changing its flags) may be returned under neither
    name: an indexed directory hands out entries in hash order, and the new
    name can land where the reading has passed while the old one goes from
    where it has not.  A message missing from a listing counts as expunged,
    so when a stamp moved during the reading the directories are read
    again, up to :data:`LISTING_READS` times, and the readings are joined
    (a key's latest place wins): a file present at any reading is kept, and
    one really gone is found by the next sync, whose stamps have moved.
    """
    started = time.time_ns()
    stamps = before = DirStamps.of(folder_path)
    entries: dict[str, tuple[str, str]] = {}
    for _ in range(LISTING_READS):
        _read_entries(folder_path, entries)
        after = DirStamps.of(folder_path)
        if after == before:
            break
        before = after
    return Listing(
        started, stamps, entries,
        FileStamp.of(os.path.join(folder_path, uidlist.FILENAME)),
        FileStamp.of(os.path.join(folder_path, keywords.FILENAME)),
        FileStamp.of(os.path.join(folder_path, modseqs.FILENAME)),
    )


def _read_entries(folder_path: str, entries: dict[str, tuple[str, str]]) -> None:
    """Add every message file of ``new/`` then ``cur/`` to *entries* by key (``cur/`` wins a move between them)."""
    for sub in ("new", "cur"):
        for filename in os.listdir(os.path.join(folder_path, sub)):
            if not filename.startswith("."):
                key, info = maildir.split_name(filename)
                entries[key] = (shared_place(f"{sub}/{filename[len(key):]}"), info)


@dataclass(frozen=True)
class Arrival:
    """A message file waiting for its UID: where it is and what its info will say."""

    rel: str
    info: str
    size: int
    internaldate: float


def _arrival_order(entry: tuple[str, str, str]) -> tuple[int, int, str]:
    """Sort key putting ``(key, rel, info)`` in delivery order (``secs.M<usecs>...`` names)."""
    filename = entry[1][4:]
    secs, _, rest = filename.partition(".")
    usecs = rest[1:].split("P", 1)[0] if rest.startswith("M") else ""
    return (int(secs) if secs.isdigit() else 0, int(usecs) if usecs.isdigit() else 0, filename)


def describe(folder_path: str, files: list[tuple[str, str, str]]) -> dict[str, Arrival]:
    """Stat each ``(key, rel, info)`` found by a listing (blocking), in delivery order.

    The order is the order their UIDs are given in; sorting here keeps
    100,000 sort keys of a first sync off the reactor thread.  The wire size comes from the name (``W=``) when the writer put it
    there; files from other writers are read once to count it.  Files that
    vanished since the listing are left out.
    """
    found = {}
    for key, rel, info in sorted(files, key=_arrival_order):
        path = os.path.join(folder_path, rel)
        try:
            mtime = os.stat(path).st_mtime
            size = maildir.sizes_from_key(key)[1]
            if size is None:
                with open(path, "rb") as f:
                    size = wire.wire_size_of(f)
        except FileNotFoundError:
            continue
        found[key] = Arrival(rel, info, size, mtime)
    return found

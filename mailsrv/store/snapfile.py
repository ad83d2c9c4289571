"""The folder snapshot on disk (``mailsrv-snapshot``): a cache that spares a restart the listing.

Without it, the first sync of a folder after a start lists ``new/`` and
``cur/`` and ``stat``\\s (or reads, for a size the name does not carry)
every message file: 1.5 s for 100,000 messages.  With it, the first sync
reads one file, and lists the directories only when they changed since.

It is a cache, never a source of truth: ``dovecot-uidlist`` and the file
names are (UIDs and flags), and ``mailsrv-modseq`` (mod-sequences).  The
file records the stamps of everything its content was derived from: the
directory stamps of the listing it reflects, with the time that listing
started, and the stamps of the UID list, the modseq log and the keyword
table.  The :class:`~mailsrv.store.folder.Folder` trusts it as it trusts
its in-memory snapshot (the same :data:`~mailsrv.store.folder.TRUST_AFTER_NS`
rule), and otherwise takes it as the base that a listing reconciles.  A
file that is missing, of another version, truncated or corrupt (checked by
a CRC over its body) reads as ``None``: the folder is listed as if it had
none.  Several processes sharing the folder may each write it; every write
is a durable replace (:func:`~mailsrv.store.files.replace_file`) of a
self-consistent file, and another process's later change moves a stamp
the file recorded, so a reader never trusts an outdated one.

Format, version 1: the line ``mailsrv-snapshot 1``, one line of JSON (the
stamps, UIDNEXT and HIGHESTMODSEQ as of the two files' stamps, the message
count, the body's length and CRC-32), then the body:
four little-endian columns of the messages in UID order (UID, wire size,
modseq as 64-bit integers, internal date as a double), then one UTF-8 text
of three NUL-terminated fields per message: its key, its file without the
key (``new/`` or ``cur/:2,<info>``) and its flags separated by spaces.  Columns, not one record
per message, so that reading 100,000 messages is a few calls into C.

Everything here blocks; the folder calls it through its executor.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from array import array
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter

from twisted.logger import Logger

from mailsrv.store.bulk import collector_paused
from mailsrv.store.files import FileStamp, replace_file
from mailsrv.store.message import MessageInfo
from mailsrv.store.scan import DirStamps
from mailsrv.store.snapshot import Snapshot, shared_place

FILENAME = "mailsrv-snapshot"
MAGIC = b"mailsrv-snapshot 1\n"
_SUBDIRS = ("new/", "cur/")
#: What a file's place may begin with: its subdirectory, then its info or nothing.
_PLACE_HEADS = frozenset(sub + end for sub in _SUBDIRS for end in ("", ":"))
_HEAD = itemgetter(slice(0, 5))
log = Logger()


@dataclass(frozen=True)
class Sources:
    """What a persisted snapshot was derived from: a reader trusts it while all of these still hold."""

    uidvalidity: int
    #: When the listing it reflects started, and the directory stamps that listing saw.
    started_ns: int
    dirs: DirStamps
    uidlist: FileStamp | None
    modseqs: FileStamp | None
    keywords: FileStamp | None
    #: UIDNEXT and HIGHESTMODSEQ as of those two stamps (0: not recorded), so that a
    #: restart finding both files unchanged parses neither before the folder opens.
    uidnext: int = 0
    highest_modseq: int = 0

    def files_unchanged(self, uidlist: FileStamp | None, modseqs: FileStamp | None) -> bool:
        """Whether ``dovecot-uidlist`` and ``mailsrv-modseq``, with these stamps now, are as recorded."""
        return bool(self.uidnext) and self.uidlist is not None and (self.uidlist, self.modseqs) == (uidlist, modseqs)


@dataclass(frozen=True)
class Persisted:
    """A snapshot read back, and what it was derived from."""

    sources: Sources
    snapshot: Snapshot


def _stamp_out(stamp: FileStamp | None) -> list[int] | None:
    return None if stamp is None else [stamp.ino, stamp.size, stamp.mtime_ns, stamp.ctime_ns]


def _stamp_in(value: object) -> FileStamp | None:
    if value is None:
        return None
    ino, size, mtime_ns, ctime_ns = (int(v) for v in value)  # type: ignore[union-attr]
    return FileStamp(ino, size, mtime_ns, ctime_ns)


def _column(kind: str, values: object) -> bytes:
    column = array(kind, values)  # type: ignore[call-overload]
    if sys.byteorder == "big":
        column.byteswap()
    return column.tobytes()


def encode(sources: Sources, order: Sequence[int], infos: Mapping[int, MessageInfo], places: Mapping[int, str]) -> bytes:
    """The file's bytes for the messages *order* names (UIDs ascending), whose files have *places*."""
    rows = [infos[uid] for uid in order]
    text = "".join(f"{info.key}\0{places[info.uid]}\0{' '.join(sorted(info.flags))}\0" for info in rows)
    body = b"".join((
        _column("q", order),
        _column("q", (info.size for info in rows)),
        _column("q", (info.modseq for info in rows)),
        _column("d", (info.internaldate for info in rows)),
        text.encode("utf-8", "surrogateescape"),
    ))
    header = {
        "uidvalidity": sources.uidvalidity, "started_ns": sources.started_ns,
        "new": _stamp_out(sources.dirs.new), "cur": _stamp_out(sources.dirs.cur),
        "uidlist": _stamp_out(sources.uidlist), "modseqs": _stamp_out(sources.modseqs),
        "keywords": _stamp_out(sources.keywords),
        "uidnext": sources.uidnext, "highest_modseq": sources.highest_modseq,
        "count": len(rows), "length": len(body), "crc": zlib.crc32(body),
    }
    return MAGIC + json.dumps(header, separators=(",", ":")).encode("ascii") + b"\n" + body


def write(folder_path: str, sources: Sources, order: Sequence[int], infos: Mapping[int, MessageInfo],
          places: Mapping[int, str]) -> None:
    """Replace the folder's snapshot file durably (blocking).

    *infos* and *places* are the caller's copies, which nothing changes while this runs.
    A folder deleted meanwhile gets none.
    """
    try:
        replace_file(os.path.join(folder_path, FILENAME), encode(sources, order, infos, places))
    except FileNotFoundError:
        pass


class Unreadable(ValueError):
    """The file is not a snapshot this version can trust."""


def _columns(body: memoryview, count: int) -> list[array]:
    columns = []
    for i, kind in enumerate("qqqd"):
        column = array(kind)
        column.frombytes(body[8 * count * i : 8 * count * (i + 1)])
        if sys.byteorder == "big":
            column.byteswap()
        columns.append(column)
    return columns


def decode(data: bytes) -> Persisted:
    """A snapshot file's content; :class:`Unreadable` unless every check holds."""
    with collector_paused():
        return _decode(data)


def _decode(data: bytes) -> Persisted:
    if not data.startswith(MAGIC):
        raise Unreadable("not a version 1 snapshot")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC) : end])
        count, length, crc = int(header["count"]), int(header["length"]), int(header["crc"])
        sources = Sources(
            int(header["uidvalidity"]), int(header["started_ns"]),
            DirStamps(_stamp_in(header["new"]), _stamp_in(header["cur"])),  # type: ignore[arg-type]
            _stamp_in(header["uidlist"]), _stamp_in(header["modseqs"]), _stamp_in(header["keywords"]),
            int(header.get("uidnext", 0)), int(header.get("highest_modseq", 0)),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise Unreadable(f"header: {e}") from None
    body = memoryview(data)[end + 1 :]
    if end < 0 or len(body) != length or count < 0 or 32 * count > length or zlib.crc32(body) != crc:
        raise Unreadable("truncated or corrupt body")
    if sources.dirs.new is None or sources.dirs.cur is None:
        raise Unreadable("no directory stamps")
    uid_column, sizes, modseqs, dates = _columns(body, count)
    fields = bytes(body[32 * count :]).decode("utf-8", "surrogateescape").split("\0")
    if len(fields) != 3 * count + 1 or fields[-1]:
        raise Unreadable("text fields do not match the count")
    # Every step below is one call into C per column, not a Python loop per message:
    # at 100,000 messages this is what a restart's first SELECT waits for.
    uids = uid_column.tolist()  # one int object per UID, shared by every map that holds it
    if uids != sorted(set(uids)) or (count and uids[0] <= 0):
        raise Unreadable("UIDs not ascending")
    keys = fields[0:-1:3]  # the UID list's commit takes these (and the UIDs) as its own: one copy each
    places, flag_texts = fields[1:-1:3], fields[2:-1:3]
    distinct = {place: shared_place(place) for place in set(places)}  # a few, one string each
    # After the key comes its info (":2,..."), or nothing: a longer key would be another message's.
    if not set(map(_HEAD, distinct)) <= _PLACE_HEADS:
        raise Unreadable("a file name does not match its key")
    places = list(map(distinct.__getitem__, places))
    new_places = frozenset(place for place in distinct.values() if place.startswith("new/"))
    interned = {text: frozenset(text.split()) for text in set(flag_texts)}  # a few distinct sets, shared
    columns = zip(uids, keys, map(interned.__getitem__, flag_texts), sizes.tolist(), dates.tolist(),
                  modseqs.tolist())
    rows = list(map(tuple.__new__, repeat(MessageInfo), columns))  # MessageInfo._make without its Python frame
    return Persisted(sources, Snapshot.of(rows, places, uids, keys, new_places))


def read(folder_path: str) -> Persisted | None:
    """The folder's persisted snapshot, or ``None`` when it has none it can trust (blocking)."""
    path = os.path.join(folder_path, FILENAME)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        log.warn("{path}: cannot read the snapshot ({error}); listing the folder", path=path, error=e.strerror)
        return None
    try:
        return decode(data)
    except Unreadable as e:
        log.warn("{path}: snapshot not used ({why}); listing the folder", path=path, why=str(e))
        return None

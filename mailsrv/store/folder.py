"""One Maildir folder: its messages, UIDs, flags, and the listeners watching it.

A :class:`Folder` is shared by every session of its user (the
:class:`~mailsrv.store.userstore.UserStore` hands out one object per name),
so a change made through it is announced to all of them at once. Changes
made behind its back (another node on a shared filesystem, a hand edit) are
found by :meth:`Folder.sync` and announced the same way.

The in-memory snapshot (UID, key, flags, size, date per message) is built
from file names and ``stat`` alone; SELECT, STATUS, POP3 LIST and UIDL never
open a message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace

from twisted.internet import threads
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from zope.interface import Interface

from mailsrv.store.files import fsync_dir
from mailsrv.message import wire
from mailsrv.store import maildir
from mailsrv.store.errors import InvalidFlag, MessageGone, NoSuchFolder
from mailsrv.store import keywords
from mailsrv.store.keywords import Keywords
from mailsrv.store.uidlist import UIDList

#: Flags a client may set; ``\Recent`` is per session and never stored.
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
#: RFC 3501 9: atom-specials may not appear in a keyword (nor may 8-bit octets).
_ATOM_SPECIALS = frozenset('(){ %*"\\]') | {chr(c) for c in range(0x20)} | {"\x7f"}
MAX_KEYWORD_LENGTH = 128


def check_flags(flags: "frozenset[str] | set[str]") -> set[str]:
    """The keywords among *flags*; raises :class:`InvalidFlag` for anything unstorable."""
    keywords = set()
    for flag in flags:
        if flag in SYSTEM_FLAGS or flag in maildir.FLAG_LETTERS:
            continue
        if flag.startswith("\\"):
            raise InvalidFlag(f"unknown system flag {flag}")  # RFC 3501 2.3.2
        if not flag or len(flag) > MAX_KEYWORD_LENGTH or not flag.isascii() or _ATOM_SPECIALS.intersection(flag):
            raise InvalidFlag("a keyword must be a short atom")
        keywords.add(flag)
    return keywords


@dataclass(frozen=True)
class MessageInfo:
    """What the store knows of a message without opening it."""

    uid: int
    key: str
    flags: frozenset[str]
    size: int
    internaldate: float


class IFolderListener(Interface):
    """Told of every change to a folder, whoever made it."""

    def messages_added(folder: "Folder", infos: "list[MessageInfo]") -> None:
        """New messages, in UID order."""

    def flags_changed(folder: "Folder", infos: "list[MessageInfo]") -> None:
        """Messages whose flags changed; *infos* carry the new flags."""

    def messages_expunged(folder: "Folder", uids: "list[int]") -> None:
        """Messages removed for good."""

    def folder_deleted(folder: "Folder") -> None:
        """The folder itself was deleted; it is gone for every session holding it."""


def _arrival_order(filename: str) -> tuple[int, int, str]:
    """Sort key putting Maildir names in delivery order (``secs.M<usecs>...``)."""
    secs, _, rest = filename.partition(".")
    usecs = rest[1:].split("P", 1)[0] if rest.startswith("M") else ""
    return (int(secs) if secs.isdigit() else 0, int(usecs) if usecs.isdigit() else 0, filename)


class Folder:
    """A Maildir folder (INBOX or a ``.Name`` Maildir++ subfolder)."""

    log = Logger()

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        maildir.ensure_maildir(path)
        self._uids = UIDList(path)
        self._keywords = Keywords(path)
        self._infos: dict[int, MessageInfo] = {}
        self._files: dict[int, str] = {}  # uid -> "cur/<name>" or "new/<name>"
        self._order: list[int] = []
        self._listeners: list[object] = []
        self._dir_stamp: tuple[int, int] | None = None
        self.sync()

    # -- reading -------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        return self._uids.uidvalidity

    @property
    def uidnext(self) -> int:
        return self._uids.uidnext

    def messages(self) -> list[MessageInfo]:
        """All messages in UID order, as of the last sync."""
        return [self._infos[uid] for uid in self._order]

    def get(self, uid: int) -> MessageInfo | None:
        """One message's info, or None if it is not (or no longer) here."""
        return self._infos.get(uid)

    def read(self, uid: int) -> bytes:
        """The message as sent on the wire: CRLF line ends, ``info.size`` octets."""
        return wire.to_wire(self._read_disk(uid))

    def _read_disk(self, uid: int) -> bytes:
        for attempt in (0, 1):
            rel = self._files.get(uid)
            if rel is None:
                break
            try:
                with open(os.path.join(self.path, rel), "rb") as f:
                    return f.read()
            except FileNotFoundError:
                if attempt == 0:
                    self.sync(force=True)  # renamed by another session or node
        raise MessageGone(uid)

    # -- listeners -----------------------------------------------------------

    def add_listener(self, listener: object) -> None:
        """Start telling *listener* (an :class:`IFolderListener`) of changes."""
        if listener not in self._listeners:
            self._listeners.append(listener)

    def remove_listener(self, listener: object) -> None:
        """Stop telling *listener*; unknown listeners are ignored."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _announce(self, method: str, payload: object) -> None:
        args = (self,) if payload is None else (self, payload)
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(*args)
            except Exception:
                self.log.failure("folder listener {method} failed", method=method)

    # -- syncing with the disk -----------------------------------------------

    def _stamp(self) -> tuple[int, int]:
        """mtimes of new/ and cur/; :class:`NoSuchFolder` once the folder was deleted."""
        try:
            return (
                os.stat(os.path.join(self.path, "new")).st_mtime_ns,
                os.stat(os.path.join(self.path, "cur")).st_mtime_ns,
            )
        except FileNotFoundError:
            raise NoSuchFolder(self.name) from None

    def sync(self, force: bool = False) -> None:
        """Bring the snapshot in line with the disk and announce what changed.

        Skipped when neither ``new/`` nor ``cur/`` changed since the last
        scan, unless that change could hide inside the file system's
        timestamp granularity (the last two seconds).
        """
        stamp = self._stamp()
        recent = time.time_ns() - max(stamp) < 2_000_000_000
        if not force and stamp == self._dir_stamp and not recent:
            return
        found: dict[str, tuple[str, str]] = {}  # key -> (rel path, info)
        for sub in ("new", "cur"):
            for filename in os.listdir(os.path.join(self.path, sub)):
                if filename.startswith("."):
                    continue
                key, info = maildir.split_name(filename)
                found[key] = (f"{sub}/{filename}", info)
        self._dir_stamp = stamp
        self._uids.refresh()
        self._keywords.refresh()
        known = {info.key: uid for uid, info in self._infos.items()}
        gone = {uid for key, uid in known.items() if key not in found}
        changed = []
        for key, uid in known.items():
            if key in found and found[key][0] != self._files[uid]:
                self._files[uid] = found[key][0]
                flags = maildir.info_to_flags(found[key][1], self._keywords.keyword_of)
                if flags != self._infos[uid].flags:
                    self._infos[uid] = replace(self._infos[uid], flags=flags)
                    changed.append(self._infos[uid])
        if gone:
            self._drop(gone)
            self._uids.forget(k for k, u in known.items() if u in gone)
        new_keys = sorted((k for k in found if k not in known), key=lambda k: _arrival_order(found[k][0][4:]))
        added = self._admit([(k, found[k][0], found[k][1]) for k in new_keys])
        if gone:
            self._announce("messages_expunged", sorted(gone))
        if changed:
            self._announce("flags_changed", changed)
        if added:
            self._announce("messages_added", added)

    def _admit(self, entries: list[tuple[str, str, str]]) -> list[MessageInfo]:
        """Give (key, rel path, info) entries UIDs and add them to the snapshot."""
        if not entries:
            return []
        uids = self._uids.assign(key for key, _, _ in entries)
        added = []
        for key, rel, info in entries:
            uid = uids[key]
            if uid in self._infos:
                continue
            path = os.path.join(self.path, rel)
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            _, size = maildir.sizes_from_key(key)
            if size is None:
                with open(path, "rb") as f:
                    size = wire.wire_size(f.read())
            flags = maildir.info_to_flags(info, self._keywords.keyword_of)
            self._infos[uid] = MessageInfo(uid, key, flags, size, st.st_mtime)
            self._files[uid] = rel
            added.append(self._infos[uid])
        added.sort(key=lambda i: i.uid)
        if added and self._order and added[0].uid < self._order[-1]:
            self._order = sorted(self._infos)
        else:
            self._order.extend(i.uid for i in added)
        return added

    def _drop(self, uids: Iterable[int]) -> None:
        for uid in uids:
            self._infos.pop(uid, None)
            self._files.pop(uid, None)
        self._order = [u for u in self._order if u in self._infos]

    def note_delivered(self, filename: str) -> None:
        """A message was just delivered into ``new/`` by this process: admit it now.

        The fast path for delivery: no directory scan, one UID append.
        """
        key, info = maildir.split_name(filename)
        added = self._admit([(key, f"new/{filename}", info)])
        if added:
            self._announce("messages_added", added)

    # -- changing ------------------------------------------------------------

    def _filename_for(self, key: str, flags: "frozenset[str] | set[str]") -> str:
        keywords = check_flags(flags)
        if keywords:
            self._keywords.ensure(keywords)
        return key + maildir.INFO_SEP + maildir.flags_to_info(flags, self._keywords.letter_of)

    def _rename(self, uid: int, new_rel: str) -> None:
        """Rename a message file, following it if another node renamed it first."""
        for attempt in (0, 1):
            old_rel = self._files.get(uid)
            if old_rel is None:
                break
            try:
                os.rename(os.path.join(self.path, old_rel), os.path.join(self.path, new_rel))
                self._files[uid] = new_rel
                return
            except FileNotFoundError:
                if attempt == 0:
                    self.sync(force=True)
        raise MessageGone(uid)

    def set_flags(self, uid: int, flags: Iterable[str]) -> MessageInfo:
        """Replace a message's flags (renaming its file) and announce it."""
        info = self._infos.get(uid)
        if info is None:
            raise MessageGone(uid)
        wanted = frozenset(f for f in flags if f != "\\Recent")
        new_rel = "cur/" + self._filename_for(info.key, wanted)
        if new_rel != self._files[uid]:
            self._rename(uid, new_rel)
        if wanted == info.flags:
            return info
        info = self._infos[uid] = replace(info, flags=wanted)
        self._announce("flags_changed", [info])
        return info

    def can_add_keywords(self) -> bool:
        """Whether a new keyword still gets a Maildir letter (PERMANENTFLAGS ``\\*``)."""
        self._keywords.refresh()
        return len(self._keywords.letter_of) < len(keywords.LETTERS)

    def announce_deleted(self) -> None:
        """Tell every listener the folder is gone (called by its UserStore)."""
        self._announce("folder_deleted", None)

    def recent_count(self) -> int:
        """Messages no session has claimed yet (still in ``new/``): STATUS RECENT."""
        return sum(1 for rel in self._files.values() if rel.startswith("new/"))

    def claim_recent(self) -> set[int]:
        """Move messages from ``new/`` to ``cur/``; they are \\Recent to the caller only."""
        claimed = set()
        for uid in list(self._order):
            rel = self._files[uid]
            if rel.startswith("new/"):
                try:
                    self._rename(uid, "cur/" + self._filename_for(self._infos[uid].key, self._infos[uid].flags))
                except MessageGone:
                    continue
                claimed.add(uid)
        return claimed

    def expunge(self, uids: Iterable[int]) -> list[int]:
        """Remove messages for good; each unlink is atomic. Returns the UIDs removed."""
        removed = []
        for uid in sorted(set(uids)):
            for attempt in (0, 1):
                rel = self._files.get(uid)
                if rel is None:
                    break
                try:
                    os.unlink(os.path.join(self.path, rel))
                    removed.append(uid)
                    break
                except FileNotFoundError:
                    if attempt == 0:
                        self.sync(force=True)
        if removed:
            keys = [self._infos[uid].key for uid in removed]
            self._drop(removed)
            self._uids.forget(keys)
            self._announce("messages_expunged", removed)
        return removed

    def append(self, data: bytes, flags: Iterable[str] = (), internaldate: float | None = None) -> "Deferred[int]":
        """Store a new message (CRLF bytes) durably; fires with its UID."""
        disk = wire.to_disk(data)
        key = maildir.unique_name(len(disk), wire.wire_size(disk))
        rel = "cur/" + self._filename_for(key, frozenset(flags) - {"\\Recent"})

        def write() -> None:
            tmp = os.path.join(self.path, "tmp", key)
            maildir.write_file(tmp, disk, internaldate)
            os.rename(tmp, os.path.join(self.path, rel))
            fsync_dir(os.path.join(self.path, "cur"))

        d = threads.deferToThread(write)
        d.addCallback(lambda _: self._admit_own(key, rel))
        return d

    def _admit_own(self, key: str, rel: str) -> int:
        """Admit a file this process wrote (a sync may have seen it first)."""
        _, info = maildir.split_name(rel[4:])
        added = self._admit([(key, rel, info)])
        if added:
            self._announce("messages_added", added)
        return self._uids.by_key[key]

    def copy(self, uids: Iterable[int], target: "Folder") -> "Deferred[list[tuple[int, int]]]":
        """Copy messages into *target* (hard links where possible), durably.

        Fires with (source UID, new UID) pairs for the messages that still
        existed.
        """
        plan = []
        for uid in sorted(set(uids)):
            info = self._infos.get(uid)
            if info is None:
                continue
            src = os.path.join(self.path, self._files[uid])
            disk, _ = maildir.sizes_from_key(info.key)
            if disk is None:
                try:
                    disk = os.path.getsize(src)
                except FileNotFoundError:
                    continue
            key = maildir.unique_name(disk, info.size)
            plan.append((uid, src, key, "cur/" + target._filename_for(key, info.flags)))

        def write() -> list[tuple[int, str, str]]:
            done = []
            for uid, src, key, rel in plan:
                dst = os.path.join(target.path, rel)
                try:
                    os.link(src, dst)
                except FileNotFoundError:
                    continue
                except OSError:
                    with open(src, "rb") as f:
                        maildir.write_file(dst, f.read())
                done.append((uid, key, rel))
            fsync_dir(os.path.join(target.path, "cur"))
            return done

        def admit(done: list[tuple[int, str, str]]) -> list[tuple[int, int]]:
            return [(uid, target._admit_own(key, rel)) for uid, key, rel in done]

        return threads.deferToThread(write).addCallback(admit)

"""One Maildir folder: its messages, UIDs, flags, and the listeners watching it.

A :class:`Folder` is shared by every session of its user (the
:class:`~mailsrv.store.userstore.UserStore` hands out one object per name),
so a change made through it is announced to all of them at once. Changes
made behind its back (another node on a shared filesystem, a hand edit) are
found by :meth:`Folder.sync` and announced the same way.

The in-memory :class:`~mailsrv.store.snapshot.Snapshot` (UID, key, flags,
size, date per message) is built from file names and ``stat`` alone.

Threads: every method runs on the reactor thread and the snapshot is only
ever changed there.  Work that blocks (directory listings, ``stat`` of new
files, the UID and keyword files) runs in the store's executor and returns
plain values that the reactor applies; single-file syscalls (``open``,
``rename``, ``unlink`` of one message) run on the reactor thread.  While a
listing runs in a thread, the folder keeps changing here; the keys it
changes meanwhile are noted (:meth:`_touch`) and the listing's older view of
them is ignored.

New messages get their UIDs by group commit (:mod:`.uidlist`) and enter the
snapshot, and are announced, only once those UIDs are durable (RFC 3501
2.3.1.1).

Each change (messages added, flags changed, messages expunged) gets a new
mod-sequence (RFC 7162), durable in ``mailsrv-modseq`` (:mod:`.modseqs`)
before anyone is told of it: :attr:`Folder.highest_modseq`,
:attr:`MessageInfo.modseq` and :meth:`Folder.expunged_since`.  The STOREs
of every session that arrive while one commit runs share the next one's
``fdatasync``, so a modseq told to a client is on disk, and a crash can
only make a later one higher.  A flag change found by a sync keeps the
modseq another mailsrv process gave it when that file already records it;
any other gets a new one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, BinaryIO, TypeVar

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.task import deferLater
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from mailsrv.message import wire
from mailsrv.message.body import Body
from mailsrv.store import flags as flag_rules
from mailsrv.store import fileops, maildir, maildirsize, modseqs, names, scan, snapfile, uidlist, writing
from mailsrv.store.coalesce import Coalescing
from mailsrv.store.errors import InvalidFlag, MessageGone, NoSuchFolder
from mailsrv.store.files import FileStamp
from mailsrv.store.keywords import Keywords
from mailsrv.store.memo import Memo
from mailsrv.store.message import MessageInfo, StoredMessage
from mailsrv.store.scan import Arrival, DirStamps, Listing
from mailsrv.store.snapshot import Snapshot, place_of, rel_of
from mailsrv.store.uidlist import BATCH_DELAY, UIDList

T = TypeVar("T")

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from mailsrv.store.cache import MessageCache
    from mailsrv.store.watch import Unwatch, Watcher
    from mailsrv.workers import Executor

#: A directory's mtime can only be trusted to move on the next change once
#: this long has passed: file systems keep timestamps in ticks (1 s on
#: some), and a second change in the tick of the first leaves the mtime as
#: it was.  Hosts sharing the store over the network add their clock skew.
TRUST_AFTER_NS = 2_000_000_000
#: How long the stamps our own renames left may stand in for a listing (:class:`_Own`): the bound
#: on how late a sync may see another program's change made in the same instant as one of ours.
OWN_TRUST_NS = 1_000_000_000
#: Trusted stamps kept across listings (:meth:`Folder._listed_own`); past this many, a listing starts afresh.
OWN_STAMPS_KEPT = 1000
#: Seconds between a listing and the write of the snapshot file it brought up to date: the
#: listings of a burst of changes share one write.
SAVE_DELAY = 2.0
#: New files a listing found, admitted per reactor turn (a few tens of milliseconds of work).
ARRIVAL_SLICE = 2000
#: Messages put straight into ``cur/`` remembered as \\Recent until a session claims them.
RECENT_IN_CUR_MAX = 10_000


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


def _arrival(rel: str, size: int, internaldate: float) -> tuple[str, Arrival]:
    """The key of the file at *rel* and its :class:`Arrival`."""
    key, info = maildir.split_name(os.path.basename(rel))
    return key, Arrival(rel, info, size, internaldate)


def locate(root: str, place: str, key: str) -> tuple[str, Callable[[], "str | None"]]:
    """The path of a message file of the folder at *root* (*place* from :meth:`Folder.files_of`), and a
    way to find it again under whatever name it has now (the finder lists the folder: blocking)."""
    # Not os.path.join: a search makes 100,000 of these in a row, and the place is always relative.
    return f"{root}/{rel_of(place, key)}", partial(maildir.find_file, root, key)


def _open_for_reading(path: str) -> BinaryIO:
    return open(path, "rb")


def _place_counted(root: str, body: Body, targets: list[writing.Destination], mtime: float | None) -> writing.Placed:
    """APPEND's write, and its line in the user's ``maildirsize`` (blocking)."""
    placed = writing.place(body, targets, mtime)
    maildirsize.record_added(root, [rel for _, rel in targets])
    return placed


def _link_counted(root: str, pairs: list[tuple[str, writing.Destination]]) -> list[int]:
    """COPY's links, and their line in the user's ``maildirsize`` (blocking)."""
    done = writing.link_each(pairs)
    maildirsize.record_added(root, [pairs[i][1][1] for i in done])
    return done


def _open_folder(path: str) -> tuple[snapfile.Persisted | None, bool]:
    """The first sync's job: make the Maildir of a new user, read the snapshot file (blocking).

    And whether the UID list and the modseq log are still as the snapshot
    recorded them, so that neither needs parsing yet.
    """
    maildir.ensure_maildir(path)
    persisted = snapfile.read(path)
    unchanged = persisted is not None and persisted.sources.files_unchanged(
        FileStamp.of(os.path.join(path, uidlist.FILENAME)), FileStamp.of(os.path.join(path, modseqs.FILENAME)))
    return persisted, unchanged


def _read_wire(message: StoredMessage) -> bytes:
    with message:
        return wire.to_wire(message.file.read())


@dataclass(frozen=True)
class _Scanned:
    """When the last applied listing started, and the directory stamps it saw."""

    started_ns: int
    stamps: DirStamps

    def due_again(self, stamps: DirStamps, now_ns: int) -> bool:
        """Whether a sync that now sees *stamps* must list the directories again.

        Yes when a stamp moved.  Also, once, when this listing started so soon
        after the last change (within :data:`TRUST_AFTER_NS`) that a change
        made after it may have left the mtime unchanged, and a listing made
        now could no longer miss one.  In between, the stamps are trusted:
        a burst of syncs right after a delivery costs one listing, not one
        each.
        """
        if stamps != self.stamps:
            return True
        settled = self.stamps.newest_mtime_ns + TRUST_AFTER_NS
        return settled > self.started_ns and now_ns >= settled


@dataclass
class _Own:
    """Directory stamps known to hold no change but ours, and since when they are trusted so.

    A STORE renames files within ``cur/``, which moves its stamp; without
    this every STORE made the next sync of every session list the folder
    again.  The folder records its renames in the snapshot itself, and
    takes the stamps seen just after them as known when the ones seen just
    before were known (nobody else changed the directory in between).
    Known are the stamps of listings and those our renames left: the disk
    pool renames for several sessions at once, and one that started before
    a listing may end after it.  Another program's change made *during* our
    renames hides in their stamps, as does one made later in the same
    timestamp tick, so the known stamps stand in for a listing only until
    :data:`OWN_TRUST_NS` after the earliest rename (or listing) not yet
    covered by a listing; the listing that follows finds what was hidden.
    """

    stamps: set[DirStamps]
    since_ns: int

    def trusted(self, stamps: DirStamps, now_ns: int) -> bool:
        """Whether a sync that now sees *stamps* may skip the listing."""
        return stamps in self.stamps and now_ns < self.since_ns + OWN_TRUST_NS


class Folder:
    """A Maildir folder (INBOX or a ``.Name`` Maildir++ subfolder)."""

    log = Logger()

    def __init__(
        self, name: str, path: str, executor: "Executor", clock: "IReactorTime | None" = None,
        watcher: "Watcher | None" = None, cache: "MessageCache | None" = None,
    ) -> None:
        self.name = name
        self.path = path
        #: The user's cache of what is derived from message content, shared by all their folders.
        self.cache = cache
        self._user_root = names.user_root(path, name)  # where the user's maildirsize is
        self._executor = executor
        self._clock = clock
        self._uids = UIDList(path, executor, clock)
        self._keywords = Keywords(path, executor)
        self._snap = Snapshot()
        self._arrivals: dict[str, Arrival] = {}  # found or written, waiting for a durable UID
        self._listeners: list[object] = []
        self._watcher = watcher  # finds other programs' changes while anyone listens (:mod:`.watch`)
        self._unwatch: "Unwatch | None" = None
        self._scanned: _Scanned | None = None
        self._own: _Own | None = None  # stamps of our renames and listings, trusted for a while
        self._rescan_wanted = False
        self._listing = False
        self._touched: set[str] = set()
        self._claiming: set[int] = set()  # claimed \\Recent, their files on the way to cur/
        # Keys of messages we put into cur/ (APPENDed with flags, copied, moved): \\Recent too, until claimed.
        self._recent_in_cur: dict[str, None] = {}
        self._unmoved: set[int] = set()  # claimed, not yet sent to the pool
        self._moves = Coalescing(self._move_claimed, clock, BATCH_DELAY)
        self._syncs = Coalescing(self._sync_round)
        self._saves = Coalescing(self._save, clock, SAVE_DELAY)
        self._unsaved = False  # a listing changed what the snapshot file should say
        self._unnumbered: dict[int, int] = {}  # UID -> flag changes waiting for their modseq
        self._flags_by_info = Memo(maildir.info_to_flags)
        self._letters_by_flags = Memo(maildir.flags_to_info)

    # -- reading -------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        return self._uids.uidvalidity

    @property
    def uidnext(self) -> int:
        return self._uids.uidnext

    @property
    def highest_modseq(self) -> int:
        """The mod-sequence of the folder's latest change (RFC 7162 HIGHESTMODSEQ)."""
        return self._uids.highest_modseq

    def changing(self, uid: int) -> bool:
        """Whether the message's flags changed and that change's modseq is not durable yet."""
        return uid in self._unnumbered

    def expunged_since(self, modseq: int) -> list[int] | None:
        """UIDs expunged after *modseq*, or None when such expunges may have been forgotten."""
        return self._uids.expunged_since(modseq)

    @property
    def count(self) -> int:
        """How many messages the folder holds, as of the last sync."""
        return len(self._snap.infos)

    def messages(self) -> list[MessageInfo]:
        """All messages in UID order, as of the last sync."""
        infos = self._snap.infos
        return [infos[uid] for uid in self._snap.ordered()]

    def uids(self) -> list[int]:
        """Every UID in order, as of the last sync: a new list (a session's sequence map), made in C."""
        return self._snap.ordered().copy()

    def get(self, uid: int) -> MessageInfo | None:
        """One message's info, or None if it is not (or no longer) here."""
        return self._snap.infos.get(uid)

    def infos_of(self, uids: Iterable[int]) -> list[MessageInfo | None]:
        """:meth:`get` of each of *uids*, in one pass (a session's views of 100,000 messages)."""
        get = self._snap.infos.get
        return [get(uid) for uid in uids]

    def open_message(self, uid: int) -> "Deferred[StoredMessage]":
        """The message file, open; fails with :class:`MessageGone` if it is not here.

        A file renamed by another session or node is looked for again after
        one rescan.  The open file keeps its content after an expunge.
        """

        def result(done: list[tuple[int, BinaryIO]]) -> StoredMessage:
            if not done:
                raise MessageGone(uid)
            (_, file), = done
            info = self.get(uid)
            if info is None:  # expunged here while a rescan looked for it
                file.close()
                raise MessageGone(uid)
            return StoredMessage(info, file)

        # On the reactor thread: one open(2), where a trip to the pool would cost more than it saves.
        return self._each_file([uid], _open_for_reading, in_pool=False).addCallback(result)

    def files_of(self, uids: Iterable[int]) -> list[str]:
        """Where each message's file was at the last sync (its place, ``"cur/:2,S"``), for :func:`locate`.

        Taken on the reactor thread, where the snapshot lives; the readers
        in another thread (SEARCH, the message cache) locate from it there.
        """
        places = self._snap.places
        return [places[uid] for uid in uids]

    def read(self, uid: int) -> "Deferred[bytes]":
        """The whole message as sent on the wire: CRLF line ends, ``info.size`` octets."""
        return self.open_message(uid).addCallback(lambda message: self._executor.run(_read_wire, message))

    def recent_count(self) -> int:
        """Messages no session has claimed yet (:meth:`unclaimed_recent`): STATUS RECENT."""
        return len(self.unclaimed_recent())

    def unclaimed_recent(self) -> set[int]:
        """The UIDs no session has claimed yet, still in ``new/`` or put into ``cur/`` by us: \\Recent to a
        session that looks without claiming (EXAMINE)."""
        return (self._snap.in_new - self._claiming) | set(self._recent_cur_uids())

    def _recent_cur_uids(self) -> list[int]:
        """The UIDs of :attr:`_recent_in_cur` that are in the folder now (one still arriving is not yet)."""
        uid_of = self._snap.uid_of
        return [uid_of[key] for key in self._recent_in_cur if key in uid_of]

    def _note_recent_in_cur(self, keys: Iterable[str]) -> None:
        """Messages we put straight into ``cur/`` are \\Recent all the same (RFC 3501 6.3.11, 6.4.7).

        Dovecot saves a flagged message to ``cur/`` too (a name in ``new/``
        carries no flags) and keeps its \\Recent in its index; here it is
        kept in memory, for this process's sessions, at most
        :data:`RECENT_IN_CUR_MAX` of them (the oldest forgotten first).
        """
        for key in keys:
            self._recent_in_cur[key] = None
        while len(self._recent_in_cur) > RECENT_IN_CUR_MAX:
            del self._recent_in_cur[next(iter(self._recent_in_cur))]

    def can_add_keywords(self) -> bool:
        """Whether a new keyword still gets a Maildir letter (PERMANENTFLAGS ``\\*``)."""
        return self._keywords.can_add()

    # -- listeners -----------------------------------------------------------

    def add_listener(self, listener: object) -> None:
        """Start telling *listener* (an :class:`IFolderListener`) of changes.

        The first listener starts the watch for changes other programs make.
        """
        if listener not in self._listeners:
            self._listeners.append(listener)
            if self._watcher is not None and self._unwatch is None:
                self._unwatch = self._watcher.follow(self)

    def remove_listener(self, listener: object) -> None:
        """Stop telling *listener*; unknown listeners are ignored.  The last one stops the watch."""
        if listener in self._listeners:
            self._listeners.remove(listener)
            if not self._listeners and self._unwatch is not None:
                self._unwatch()
                self._unwatch = None

    def shows(self, rel: str) -> bool:
        """Whether a message's file is at *rel* (``new/<name>`` or ``cur/<name>``) as far as this folder knows.

        Includes files waiting for their UID.  The watcher (:mod:`.watch`)
        asks, to tell the events of the folder's own writes from others'.
        """
        key = maildir.split_name(os.path.basename(rel))[0]
        uid = self._snap.uid_of.get(key)
        if uid is not None:
            return uid in self._snap.places and self._snap.rel(uid) == rel
        arrival = self._arrivals.get(key)
        return arrival is not None and arrival.rel == rel

    def announce_deleted(self) -> None:
        """Tell every listener the folder is gone (called by its UserStore, or its watcher)."""
        self._announce("folder_deleted", None)

    def _announce(self, method: str, payload: object) -> None:
        args = (self,) if payload is None else (self, payload)
        for listener in list(self._listeners):
            try:
                getattr(listener, method)(*args)
            except Exception:
                self.log.failure("folder listener {method} failed", method=method)

    # -- the snapshot ----------------------------------------------------------

    def _set_file(self, uid: int, place: str) -> None:
        self._snap.set_file(uid, place)
        self._touch(self._snap.infos[uid].key)

    def _drop(self, uid: int) -> str:
        """Take a message out of the snapshot; its key."""
        key = self._snap.drop(uid)
        self._touch(key)
        return key

    def _touch(self, key: str) -> None:
        """Note a change made here while a listing runs, so its older view of *key* is ignored."""
        if self._listing:
            self._touched.add(key)

    def _flags_of(self, info: str) -> frozenset[str]:
        """The flags of Maildir *info* letters: one set per distinct *info*, shared (:mod:`.memo`)."""
        return self._flags_by_info(info, self._keywords.keyword_of)

    def _filename(self, key: str, flags: "frozenset[str] | set[str]") -> str:
        return maildir.filename(key, flags, self._keywords.letter_of)

    def _letters(self, flags: frozenset[str]) -> str:
        """The info letters recorded with a modseq (:mod:`.modseqs`), converted once per flag set."""
        return self._letters_by_flags(flags, self._keywords.letter_of)

    def _recorded_modseq(self, uid: int, flags: frozenset[str], newer_than: int) -> int | None:
        """The modseq ``mailsrv-modseq`` gives *uid* with exactly *flags*, if newer than *newer_than*."""
        entry = self._uids.modseqs.by_uid.get(uid)
        if entry is not None and entry[0] > newer_than and entry[1] == self._letters(flags):
            return entry[0]
        return None

    # -- syncing with the disk -----------------------------------------------

    def sync(self) -> "Deferred[None]":
        """Fires when the snapshot reflects the disk as of this call; changes are announced.

        Costs two ``stat`` calls when neither ``new/`` nor ``cur/`` changed
        (see :meth:`_Scanned.due_again` for the one exception); otherwise the
        directories are listed in the executor.  Concurrent calls share one
        listing.  Fails with :class:`NoSuchFolder` once the folder is deleted.
        """
        return self._syncs.run()

    def _rescan(self) -> "Deferred[None]":
        """A sync that lists the directories even if their stamps did not move."""
        self._rescan_wanted = True
        return self.sync()

    def _sync_round(self) -> "Deferred[None] | None":
        listed = self._list_if_changed()
        if listed is None:
            return self._settle_arrivals()
        return listed.addCallback(self._settle_arrivals).addCallback(self._save_soon)

    def _list_if_changed(self) -> "Deferred[None] | None":
        if self._scanned is None:  # first sync: the Maildir of a new user may not exist yet
            return self._executor.run(_open_folder, self.path).addCallback(self._opened)
        return self._list_if_moved()

    def _list_if_moved(self) -> "Deferred[None] | None":
        try:
            stamps = DirStamps.of(self.path)
        except FileNotFoundError:
            raise NoSuchFolder(self.name) from None
        now = time.time_ns()
        if self._rescan_wanted:
            return self._scan()
        if self._own is not None and self._own.trusted(stamps, now):
            return None  # only our own renames since the last listing, already in the snapshot
        if self._scanned.due_again(stamps, now):
            return self._scan()
        return None

    def _opened(self, opened: tuple[snapfile.Persisted | None, bool]) -> "Deferred[None] | None":
        """Start from the snapshot file when there is one (:mod:`.snapfile`), else list the folder.

        When the UID list and the modseq log are as it recorded them, their
        parse waits for the first commit (:meth:`UIDList.adopt`).
        """
        persisted, unchanged = opened
        if persisted is None:
            return self._scan()
        d = self._keywords.refresh()
        if unchanged:
            d.addCallback(lambda _: self._uids.adopt(persisted.sources, persisted.snapshot.uid_of))
        else:
            d.addCallback(lambda _: self._uids.refresh())
        return d.addCallback(lambda _: self._adopt(persisted))

    def _adopt(self, persisted: snapfile.Persisted) -> "Deferred[None] | None":
        """Take a persisted snapshot as this folder's; list the directories unless it can be trusted.

        It is trusted as a snapshot of our own is (:meth:`_Scanned.due_again`)
        when the files it was derived from are unchanged.  Otherwise it is
        the base a listing reconciles: entries whose UID the UID list no
        longer gives them are dropped (the listing finds their files again),
        and newer modseqs that ``mailsrv-modseq`` records for unchanged
        flags are taken.  One made under another UIDVALIDITY or another
        keyword table is of no use.
        """
        sources, snap, uids = persisted.sources, persisted.snapshot, self._uids
        if (sources.uidvalidity != uids.uidvalidity or sources.keywords != self._keywords.stamp
                or self._snap.infos or self._arrivals):
            return self._scan()
        if sources.uidlist != uids.stamp:
            by_key = uids.by_key
            for uid in [uid for key, uid in snap.uid_of.items() if by_key.get(key) != uid]:
                snap.drop(uid)
        if sources.modseqs != uids.modseq_stamp:
            recorded = uids.modseqs.by_uid
            for uid, info in snap.infos.items():
                entry = recorded.get(uid)
                if entry is not None and entry[0] > info.modseq and entry[1] == self._letters(info.flags):
                    snap.infos[uid] = info._replace(modseq=entry[0])
        self._snap = snap
        self._scanned = _Scanned(sources.started_ns, sources.dirs)
        self._own = None
        self._rescan_wanted = (sources.uidlist, sources.modseqs) != (uids.stamp, uids.modseq_stamp)
        return self._list_if_moved()

    def _save_soon(self, result: object) -> object:
        """After a listing: write the snapshot file soon (:data:`SAVE_DELAY`), in the executor."""
        if self._unsaved:
            self._logged(self._saves.run(soon=True), "writing the snapshot file")
        return result

    def _save(self) -> "Deferred[None] | None":
        """Write the snapshot file, if the snapshot is exactly what the last listing and the files show.

        Not while UIDs, modseqs or a listing are in flight: the file would
        mix states; it is tried again :data:`SAVE_DELAY` later.  The executor
        gets copies of the maps, which the reactor goes on changing.
        """
        if not self._unsaved or self._scanned is None:
            return None
        if self._listing or self._arrivals or self._unnumbered:
            if self._clock is not None:  # without a clock (tests) the next listing saves
                self._logged(self._saves.run(soon=True), "writing the snapshot file")
            return None
        self._unsaved = False
        snap, scanned = self._snap, self._scanned
        sources = snapfile.Sources(self.uidvalidity, scanned.started_ns, scanned.stamps, self._uids.stamp,
                                   self._uids.modseq_stamp, self._keywords.stamp, self.uidnext, self.highest_modseq)
        return self._executor.run(snapfile.write, self.path, sources, list(snap.ordered()), dict(snap.infos),
                                  dict(snap.places))

    def _settle_arrivals(self, _: object = None) -> "Deferred[None] | None":
        """Wait for the UIDs of messages delivered before this sync, committing them now.

        A delivery's commit may be waiting to batch, or running; a session
        that syncs after SMTP's 250 must still see the message.
        """
        if not self._arrivals:
            return None
        return self._uids.assign({}).addCallback(lambda _: self._admit_ready())

    def _scan(self) -> "Deferred[None]":
        self._rescan_wanted = False
        self._listing = True
        d = self._executor.run(scan.list_folder, self.path)
        d.addCallback(self._catch_up)
        d.addCallback(self._compare)
        d.addBoth(self._listing_over)
        d.addCallback(self._describe)
        d.addErrback(self._gone_if_missing)
        return d

    def _catch_up(self, listing: Listing) -> "Deferred[Listing]":
        """Re-read the keyword table and the UID list first if someone else wrote them."""
        d = self._keywords.refresh() if listing.keywords != self._keywords.stamp else succeed(None)
        uids = self._uids
        if (listing.uidlist is None or listing.uidlist != uids.stamp or not uids.uidvalidity
                or listing.modseqs != uids.modseq_stamp):
            d.addCallback(lambda _: uids.refresh())
        return d.addCallback(lambda _: listing)

    def _compare(self, listing: Listing) -> list[tuple[str, str, str]]:
        """Apply what the listing shows changed; the files it found that are new to us."""
        found, touched, places = listing.entries, self._touched, self._snap.places
        gone, moved = [], []
        for key, uid in self._snap.uid_of.items():
            if key in touched:
                continue
            entry = found.get(key)
            if entry is None:
                gone.append(uid)
            elif entry[0] != places[uid]:
                moved.append((uid, entry))
        for key, arrival in list(self._arrivals.items()):
            if key not in touched:
                entry = found.get(key)
                if entry is None:
                    del self._arrivals[key]
                elif (rel := rel_of(entry[0], key)) != arrival.rel:
                    self._arrivals[key] = replace(arrival, rel=rel, info=entry[1])
        self._scanned = _Scanned(listing.started_ns, listing.stamps)
        self._own = self._listed_own(listing)
        self._unsaved = True
        if gone:
            keys = [self._drop(uid) for uid in gone]
            self._logged(self._expunged(sorted(gone), keys), "forgetting expunged UIDs")
        self._logged(self._renamed_elsewhere(moved), "recording flags changed elsewhere")
        return [(k, rel_of(place, k), info) for k, (place, info) in found.items()
                if k not in self._snap.uid_of and k not in self._arrivals and k not in touched]

    def _listed_own(self, listing: Listing) -> _Own:
        """The trusted stamps after a listing: its own, and our renames' (:class:`_Own`).

        Everything before the listing started is in it, so the trust runs
        from then.  The stamps our renames left before it are kept: a
        rename that started before the listing may end after it, from one
        of those (under load the disk pool always has one in flight; without
        them, every listing was followed by another).
        """
        kept = self._own.stamps if self._own is not None and len(self._own.stamps) < OWN_STAMPS_KEPT else set()
        kept.add(listing.stamps)
        return _Own(kept, listing.started_ns)

    def _renamed_elsewhere(self, moved: list[tuple[int, tuple[str, str]]]) -> "Deferred[None]":
        """Files another session or node renamed: new places, maybe new flags."""
        changed = []
        for uid, (place, info) in moved:
            self._set_file(uid, place)
            flags = self._flags_of(info)
            if flags != self._snap.infos[uid].flags:
                changed.append((uid, flags))
        return self._flags_now(changed, own=False)

    def _listing_over(self, result: object) -> object:
        self._listing = False
        self._touched = set()
        return result

    def _describe(self, fresh: list[tuple[str, str, str]]) -> "Deferred[None] | None":
        if not fresh:
            return None
        return self._executor.run(scan.describe, self.path, fresh).addCallback(self._arrive_in_slices)

    def _arrive_in_slices(self, arrivals: dict[str, Arrival]) -> "Deferred[None]":
        """Queue a listing's new files for UIDs :data:`ARRIVAL_SLICE` at a time, a reactor turn between.

        The first listing of a 100,000-message folder without an index
        finds them all new; admitting them at once held the reactor thread
        (every other session) for a second.  Each slice gets its UIDs by its
        own commit, in delivery order as one commit would.
        """
        items = list(arrivals.items())

        async def admit_all() -> None:
            for start in range(0, len(items), ARRIVAL_SLICE):
                if start and self._clock is not None:
                    await deferLater(self._clock, 0, lambda: None)
                await self._arrive(dict(items[start : start + ARRIVAL_SLICE]))

        return Deferred.fromCoroutine(admit_all())

    def _gone_if_missing(self, failure: Failure) -> Failure:
        if failure.check(FileNotFoundError):
            raise NoSuchFolder(self.name)
        return failure

    # -- new messages ----------------------------------------------------------

    def note_delivered(self, rel: str, internaldate: float) -> None:
        """A message was just delivered into this folder by this process: admit it.

        The fast path for delivery: no directory listing; the UID comes by
        group commit and the message is announced once it is durable.
        """
        size = maildir.sizes_from_key(os.path.basename(rel))[1]
        assert size is not None, "our own names carry W="
        arrival = dict([_arrival(rel, size, internaldate)])
        self._logged(self._arrive(arrival, soon=True), "admitting a delivery")

    def _arrive(self, arrivals: dict[str, Arrival], soon: bool = False) -> "Deferred[None]":
        """Queue files for UIDs; they join the snapshot once the UIDs are durable.

        Deliveries ask for the UID commit *soon*: nobody waits on it, and a
        burst of them shares one ``fdatasync``.
        """
        for key, arrival in arrivals.items():
            if key not in self._snap.uid_of:
                self._arrivals[key] = arrival
                self._touch(key)
        known = all(self._keywords.knows_letters(a.info) for a in arrivals.values())
        d = succeed(None) if known else self._keywords.refresh()  # another writer's keyword letters

        def assign(_: object) -> "Deferred[None]":
            letters = {key: self._letters(self._flags_of(a.info)) for key, a in arrivals.items()}
            return self._uids.assign(letters, soon)

        return d.addCallback(assign).addCallback(lambda _: self._admit_ready())

    def _admit_ready(self) -> "Deferred[None] | None":
        """Move every arrival whose UID is durable into the snapshot, and announce them.

        An arrival given its UID by another writer takes the modseq that
        writer recorded; one whose writer keeps none (Dovecot, a restart
        that lost the record) gets a new one first.
        """
        by_key = self._uids.by_key
        ready = sorted((by_key[key], key) for key in self._arrivals if key in by_key)
        if not ready:
            return None
        arrivals = {key: self._arrivals.pop(key) for _, key in ready}
        flags = {key: self._flags_of(arrivals[key].info) for key in arrivals}
        modseqs = {key: self._recorded_modseq(uid, flags[key], 0) for uid, key in ready}
        unnumbered = {key: self._letters(flags[key]) for key, modseq in modseqs.items() if modseq is None}
        d = self._uids.record(unnumbered) if unnumbered else succeed(0)

        def admit(modseq: int) -> None:
            entries = []
            for uid, key in ready:
                if uid not in self._snap.infos and self._uids.by_key.get(key) == uid:
                    arrival = arrivals[key]
                    info = MessageInfo(uid, key, flags[key], arrival.size, arrival.internaldate,
                                       modseqs[key] or modseq)
                    entries.append((info, arrival.rel))
                    self._touch(key)
            self._snap.add(entries)
            if entries:
                self._announce("messages_added", [info for info, _ in entries])

        return d.addCallback(admit)

    def append(self, body: Body, flags: Iterable[str] = (), internaldate: float | None = None) -> "Deferred[int]":
        """Store a new message durably; fires with its UID.

        One without flags goes into ``new/``, as delivered mail does and as
        Dovecot saves it: it is \\Recent (RFC 3501 2.3.2) to the first
        session that selects the folder, and STATUS RECENT counts it until
        then.  Flags can only be kept in a name in ``cur/``; such a message
        is \\Recent all the same (:meth:`_note_recent_in_cur`).

        Fails with :class:`InvalidFlag` or :class:`KeywordLimit` before
        anything is written.
        """
        try:
            wanted = flag_rules.stored(flags)
            new_keywords = flag_rules.keywords_of(wanted)
        except InvalidFlag:
            return fail()
        d = self._keywords.ensure(new_keywords)
        return d.addCallback(lambda _: self._write(body, wanted, internaldate))

    def _write(self, body: Body, flags: frozenset[str], internaldate: float | None) -> "Deferred[int]":
        key = maildir.unique_name(body.size, body.wire_size)
        rel = "cur/" + self._filename(key, flags) if flags else "new/" + key

        def placed(done: writing.Placed) -> "Deferred[None]":
            date = done.mtime if internaldate is None else internaldate
            if flags:
                self._note_recent_in_cur([key])
            return self._arrive(dict([_arrival(rel, body.wire_size, date)]))

        d = self._executor.run(_place_counted, self._user_root, body, [(self.path, rel)], internaldate)
        return d.addCallback(placed).addCallback(lambda _: self._uids.by_key[key])

    def copy(self, uids: Iterable[int], target: "Folder") -> "Deferred[list[tuple[int, int]]]":
        """Copy messages into *target* (hard links where possible), durably.

        Fires with (source UID, new UID) pairs for the messages that still
        existed; fails with :class:`KeywordLimit` when *target* has no letter
        left for a keyword (nothing copied).
        """
        plan = []
        for uid in sorted(set(uids)):
            info = self.get(uid)
            if info is None:
                continue
            src = os.path.join(self.path, self._snap.rel(uid))
            disk = maildir.sizes_from_key(info.key)[0]
            if disk is None:
                try:
                    disk = os.path.getsize(src)
                except FileNotFoundError:
                    continue
            plan.append((info, src, maildir.unique_name(disk, info.size)))
        keywords = set().union(*(flag_rules.keywords_of(info.flags) for info, _, _ in plan))
        d = target._keywords.ensure(keywords)
        return d.addCallback(lambda _: target._link_copies(plan))

    def _link_copies(self, plan: list[tuple[MessageInfo, str, str]]) -> "Deferred[list[tuple[int, int]]]":
        """Link *plan*'s ``(source info, source file, new key)`` into this folder's ``cur/``."""
        if not plan:
            return succeed([])
        rels = ["cur/" + self._filename(key, info.flags) for info, _, key in plan]
        pairs = [(src, (self.path, rel)) for (_, src, _), rel in zip(plan, rels)]

        def linked(done: list[int]) -> "Deferred[list[tuple[int, int]]]":
            self._note_recent_in_cur(plan[i][2] for i in done)
            d = self._arrive(dict(_arrival(rels[i], plan[i][0].size, plan[i][0].internaldate) for i in done))
            return d.addCallback(lambda _: [(plan[i][0].uid, self._uids.by_key[plan[i][2]]) for i in done])

        return self._executor.run(_link_counted, self._user_root, pairs).addCallback(linked)

    # -- changing ------------------------------------------------------------

    def _each_file(
        self, uids: Sequence[int], op: Callable[..., T], args_of: Callable[[int], tuple] = lambda uid: (),
        *, retry: bool = True, in_pool: bool = True, own: bool = False,
    ) -> "Deferred[list[tuple[int, T]]]":
        """Run ``op(path, *args_of(uid))`` on each message's file: ``(uid, result)`` of those done.

        The work runs in the disk pool (:func:`fileops.each`), the paths and
        arguments taken here from the snapshot.  A file another session or
        node renamed meanwhile is looked for once more after one rescan
        (with *retry*; without, the next sync finds where it went); a
        message that is gone is left out.  Any other error fails the call and
        asks the next sync to list the folder, which sees what was done.
        With *own* (in the pool) the directory stamps around the work are
        taken, to be trusted as our own change (:meth:`_note_own`).
        """
        run = self._executor.run if in_pool else maybeDeferred

        def attempt(wanted: Iterable[int]) -> "Deferred[tuple[list[tuple[int, T]], list[int]]]":
            snap = self._snap
            jobs = [(uid, (os.path.join(self.path, snap.rel(uid)), *args_of(uid))) for uid in wanted
                    if uid in snap.places]
            if own:
                d = self._executor.run(scan.around, self.path, fileops.each, op, jobs).addCallback(self._note_own)
            else:
                d = run(fileops.each, op, jobs)
            return d.addErrback(self._rescan_after)

        def first(outcome: tuple[list[tuple[int, T]], list[int]]) -> "Deferred[list[tuple[int, T]]] | list":
            done, missing = outcome
            if not missing:
                return done
            if not retry:
                self._rescan_wanted = True
                return done
            again = self._rescan().addCallback(lambda _: attempt(missing))
            return again.addCallback(lambda outcome: done + outcome[0])

        return attempt(uids).addCallback(first)

    def _note_own(self, outcome: tuple[scan.OwnChange, T]) -> T:
        """Take the stamps our change left as trusted, if the ones before it were (:class:`_Own`)."""
        change, result = outcome
        if self._scanned is not None and change.before is not None and change.after is not None:
            own = self._own or _Own({self._scanned.stamps}, change.started_ns)
            if change.before in own.stamps:
                own.stamps.add(change.after)
                own.since_ns = min(own.since_ns, change.started_ns)
                self._own = own
        return result

    def _rescan_after(self, failure: Failure) -> Failure:
        self._rescan_wanted = True
        return failure

    def store_flags(self, changes: Sequence[tuple[int, frozenset[str]]]) -> "Deferred[list[MessageInfo]]":
        """Give messages new flags (renaming their files); fires with their infos.

        New keywords are made durable first; an :class:`InvalidFlag` or a
        :class:`KeywordLimit` fails the call before anything changed.
        Messages that are gone are left out of the result.  Listeners hear
        ``flags_changed`` for the messages whose flags changed.
        """
        try:
            wanted = {uid: flag_rules.stored(f) for uid, f in changes}
            new_keywords = set().union(*(flag_rules.keywords_of(f) for f in wanted.values()))
        except InvalidFlag:
            return fail()
        d = self._keywords.ensure(new_keywords)
        return d.addCallback(lambda _: self._rename_for_flags(wanted))

    def _rename_for_flags(self, wanted: dict[int, frozenset[str]]) -> "Deferred[list[MessageInfo]]":
        snap = self._snap
        infos = snap.infos
        present = [uid for uid in wanted if uid in infos]
        names = {uid: "cur/" + self._filename(infos[uid].key, wanted[uid]) for uid in present}
        moves = {uid: names[uid] for uid in present if names[uid] != snap.rel(uid)}

        def renamed(done: set[int]) -> "Deferred[list[MessageInfo]]":
            lost = moves.keys() - done  # gone while we renamed
            kept = [uid for uid in present if uid in infos and uid not in lost]
            d = self._flags_now([(uid, wanted[uid]) for uid in kept if infos[uid].flags != wanted[uid]])
            return d.addCallback(lambda _: [infos[uid] for uid in kept if uid in infos])

        return self._rename_files(moves).addCallback(renamed)

    def _rename_files(self, names: dict[int, str], retry: bool = True) -> "Deferred[set[int]]":
        """Rename each message's file to ``names[uid]`` (in the pool) and record it: the UIDs done."""

        def renamed(done: list[tuple[int, None]]) -> set[int]:
            for uid, _ in done:
                if uid in self._snap.infos:
                    self._set_file(uid, place_of(names[uid], self._snap.infos[uid].key))
            return {uid for uid, _ in done}

        d = self._each_file(sorted(names), os.rename, lambda uid: (os.path.join(self.path, names[uid]),),
                            retry=retry, own=True)
        return d.addCallback(renamed)

    def _flags_now(self, changes: list[tuple[int, frozenset[str]]], own: bool = True) -> "Deferred[None]":
        """Record new flags with a durable new mod-sequence, then announce them.

        Changes made elsewhere (not *own*) keep the modseq ``mailsrv-modseq``
        already gives them, if it does.  The snapshot has the new flags at
        once; the modseq and the news follow the commit.
        """
        infos = self._snap.infos
        known = {}
        for uid, new in changes:
            modseq = None if own else self._recorded_modseq(uid, new, infos[uid].modseq)
            infos[uid] = infos[uid]._replace(flags=new, modseq=modseq or infos[uid].modseq)
            if modseq is not None:
                known[uid] = modseq
        unnumbered = {infos[uid].key: self._letters(new) for uid, new in changes if uid not in known}
        waiting = [uid for uid, _ in changes if uid not in known]
        for uid in waiting:
            self._unnumbered[uid] = self._unnumbered.get(uid, 0) + 1
        d = self._uids.record(unnumbered) if unnumbered else succeed(0)

        def settled(result: object) -> object:
            for uid in waiting:
                self._unnumbered[uid] -= 1
                if not self._unnumbered[uid]:
                    del self._unnumbered[uid]
            return result

        def numbered(modseq: int) -> None:
            shown = []
            for uid, new in changes:
                info = infos.get(uid)
                if info is not None and info.flags == new:
                    infos[uid] = info = info._replace(modseq=max(info.modseq, known.get(uid, modseq)))
                    shown.append(info)
            if shown:
                self._announce("flags_changed", shown)

        return d.addBoth(settled).addCallback(numbered) if changes else succeed(None)

    def claim_recent(self) -> set[int]:
        """Claim the messages in ``new/``: they are \\Recent to the caller only (RFC 3501 2.3.2).

        The claim is made here, at once, so no other session of this process
        gets them too; their files move to ``cur/`` in the disk pool soon
        after (claims made meanwhile share the trip, as deliveries share a
        UID commit).  A file another process moved first stays where it went
        (the next sync finds it).
        """
        in_cur = set(self._recent_cur_uids())  # already in cur/: nothing to move
        if self._recent_in_cur:  # claimed now, or expunged meanwhile; those still arriving wait for the next claim
            arriving = self._arrivals
            self._recent_in_cur = {key: None for key in self._recent_in_cur if key in arriving}
        claimed = self._snap.in_new - self._claiming
        if not claimed:
            return in_cur
        self._claiming |= claimed
        self._unmoved |= claimed
        self._logged(self._moves.run(soon=True), "moving claimed messages to cur/")
        return set(claimed) | in_cur

    def _move_claimed(self) -> "Deferred[set[int]]":
        """Move the claimed files still in ``new/`` to ``cur/``, named for their flags *now*.

        Not for the flags at the claim: a STORE in between (a client's first
        command after SELECT often is one) renamed the file already, and a
        name made at the claim would have taken its flags back off the disk.
        """
        claimed, self._unmoved = self._unmoved, set()
        infos, places = self._snap.infos, self._snap.places
        names = {uid: "cur/" + self._filename(infos[uid].key, infos[uid].flags)
                 for uid in claimed if uid in infos and places[uid].startswith("new/")}

        def settled(result: object) -> object:
            self._claiming -= claimed
            return result

        return self._rename_files(names, retry=False).addBoth(settled)

    def expunge(self, uids: Iterable[int]) -> "Deferred[list[int]]":
        """Remove messages for good; each unlink is atomic. Fires with the UIDs removed."""

        def unlinked(done: list[tuple[int, int]]) -> "Deferred[list[int]] | list[int]":
            if done:
                freed = sum(size for _, size in done)
                self._logged(self._executor.run(maildirsize.record, self._user_root, -freed, -len(done)),
                             "recording expunged messages in maildirsize")
            removed = [uid for uid, _ in done if uid in self._snap.places]
            if not removed:
                return []
            keys = [self._drop(uid) for uid in removed]
            return self._expunged(removed, keys).addCallback(lambda _: removed)

        return self._each_file(sorted(set(uids)), maildirsize.unlink_counted).addCallback(unlinked)

    def _expunged(self, uids: list[int], keys: list[str]) -> "Deferred[None]":
        """Messages gone for good, here or elsewhere: the news, their UIDs forgotten with a new mod-sequence."""
        self._announce("messages_expunged", uids)
        return self._uids.forget(keys, uids).addCallback(lambda _: None)

    def _logged(self, d: "Deferred[object]", what: str) -> None:
        """Log the failure of work nobody waits for (the next sync retries it)."""
        d.addErrback(lambda f: self.log.failure("{folder}: {what} failed", f, folder=self.path, what=what))


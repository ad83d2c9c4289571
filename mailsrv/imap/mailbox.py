"""One SELECTed folder as one IMAP session sees it.

A :class:`Mailbox` is made per SELECT/EXAMINE and holds that session's
message sequence numbers (a sorted list of UIDs: position + 1 is the
sequence number, RFC 3501 2.3.1.2).  The shared store
:class:`~mailsrv.store.Folder` announces every change, whoever made it; the
mailbox queues them and the server drains the queue only when RFC 3501
allows: new messages and flag changes after any command, expunges never
during FETCH, STORE or SEARCH (7.4.1), so a client's sequence numbers never
shift under a command that uses them.  Twisted's ``IMailboxListener`` has no
expunge callback at all, hence :class:`IUpdateListener`.
"""

from __future__ import annotations

import bisect
from typing import Any, Iterable, Iterator, Sequence

from twisted.internet.defer import Deferred
from twisted.mail import imap4
from twisted.logger import Logger
from zope.interface import Interface, implementer

from mailsrv.imap.message import SYSTEM_FLAGS, Message, sort_flags
from mailsrv.message.body import Body
from mailsrv.store import Folder, IFolderListener, MessageInfo


class IUpdateListener(Interface):
    """Told that a mailbox has queued updates for its session."""

    def updatesPending() -> None:
        """Untagged updates wait in :meth:`Mailbox.take_updates`."""


_RECENT = frozenset({"\\Recent"})
_MAX_NUMBER = 2**32 - 1  # RFC 3501 9: nz-number fits 32 bits


def _set_number(token: bytes) -> int | None:
    """One end of a sequence range: ``*`` (None) or a number in range."""
    if token == b"*":
        return None
    if not token.isdigit() or not 0 < int(token) <= _MAX_NUMBER:
        raise imap4.IllegalClientResponse("bad message number")  # no client bytes in replies
    return int(token)


def parse_sequence_set(token: bytes) -> imap4.MessageSet:
    """A ``sequence-set`` (RFC 3501 9) as a MessageSet, built in one pass.

    ``imap4.parseIdList`` re-sorts all ranges after each one it adds, which
    is quadratic in the 10,000-range UID sets some clients send.
    """
    ranges = []
    for part in token.split(b","):
        low, colon, high = part.partition(b":")
        pair = (_set_number(low), _set_number(high) if colon else _set_number(low))
        if pair[0] is None or (pair[1] is not None and pair[1] < pair[0]):
            pair = (pair[1], pair[0])  # "*:4" and "9:2" are the same as "4:*", "2:9"
        ranges.append(pair)
    return imap4.MessageSet(ranges)


def resolve_set(ids: Sequence[int], wanted: imap4.MessageSet) -> list[int]:
    """Positions in the sorted *ids* that *wanted* names (``*`` = the last).

    Works range by range with bisection, so a client's 10,000-range UID set
    against a large mailbox stays cheap.
    """
    wanted.last = ids[-1] if ids else 0
    positions: set[int] = set()
    for low, high in wanted.ranges:
        positions.update(range(bisect.bisect_left(ids, low), bisect.bisect_right(ids, high)))
    return sorted(positions)


@implementer(
    imap4.IMailbox, imap4.IMailboxInfo, imap4.ICloseableMailbox, IFolderListener
)
class Mailbox:
    """A folder opened by one session, read-write (SELECT) or not (EXAMINE)."""

    log = Logger()

    def __init__(self, folder: Folder, writeable: bool) -> None:
        """A view of *folder*, which the caller has just synced (``UserStore.open``)."""
        self.folder = folder
        self._writeable = writeable
        self._uids = [info.uid for info in folder.messages()]
        # RFC 3501 2.3.2: \Recent goes to one session; EXAMINE never claims it.
        self._recent = folder.claim_recent() if writeable else set()
        self._added: list[int] = []
        self._expunged: list[int] = []
        self._flags: dict[int, frozenset[str]] = {}
        self._listeners: list[Any] = []
        self._storing: dict[int, frozenset[str]] = {}  # flags this session is storing: no echo
        self.closed = False
        self.deleted = False
        folder.add_listener(self)

    # -- sequence numbers ----------------------------------------------------

    def _seq(self, uid: int) -> int | None:
        i = bisect.bisect_left(self._uids, uid)
        return i + 1 if i < len(self._uids) and self._uids[i] == uid else None

    def select(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, int]]:
        """``(sequence number, UID)`` for a client's sequence or UID set."""
        ids: Sequence[int] = self._uids if uid else range(1, len(self._uids) + 1)
        positions = resolve_set(ids, messages)
        return [(p + 1, self._uids[p]) for p in positions]

    def message(self, uid: int, info: MessageInfo) -> Message:
        """The session's view of a stored message (with its \\Recent)."""
        flags = info.flags | _RECENT if uid in self._recent else info.flags
        return Message(uid, flags, info.internaldate, info.size)

    def load(self, message: Message) -> "Deferred[None]":
        """Read *message*'s octets from the store (see :class:`~mailsrv.imap.message.NotLoaded`)."""
        return self.folder.read(message.uid).addCallback(message.loaded)

    def fetch(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, Message]]:
        """``(seq, message)`` pairs; messages expunged elsewhere are skipped."""
        result = []
        for seq, u in self.select(messages, uid):
            info = self.folder.get(u)
            if info is not None:
                result.append((seq, self.message(u, info)))
        return result

    def all_messages(self) -> list[tuple[int, Message]]:
        """Every message still present, for SEARCH."""
        get = self.folder.get
        return [(seq, self.message(u, info)) for seq, u in enumerate(self._uids, 1) if (info := get(u)) is not None]

    def _unseen(self) -> Iterator[int]:
        """Sequence numbers of messages without ``\\Seen``, from the store's snapshot."""
        get = self.folder.get
        for seq, u in enumerate(self._uids, 1):
            info = get(u)
            if info is not None and "\\Seen" not in info.flags:
                yield seq

    # -- flags ---------------------------------------------------------------

    def set_flags(self, message: Message, flags: Iterable[str]) -> "Deferred[None]":
        """Store *flags* on *message* without echoing it back as an update."""
        uid = message.uid

        def stored(infos: list[MessageInfo]) -> None:
            if infos:
                message.flags = self.message(uid, infos[0]).flags

        return self._store_flags([(uid, frozenset(flags))]).addCallback(stored)

    def _store_flags(self, changes: list[tuple[int, frozenset[str]]]) -> "Deferred[list[MessageInfo]]":
        """The store's ``store_flags``, with this session's own changes not queued as updates."""
        wanted = {uid: flags - _RECENT for uid, flags in changes}
        self._storing.update(wanted)

        def done(result: Any) -> Any:
            for uid, flags in wanted.items():
                if self._storing.get(uid) == flags:
                    del self._storing[uid]
            return result

        return self.folder.store_flags(list(wanted.items())).addBoth(done)

    def store(
        self, messages: imap4.MessageSet, flags: Sequence[str], mode: int, uid: bool
    ) -> "Deferred[dict[int, list[str]]]":
        """STORE (RFC 3501 6.4.6): *mode* 1 adds, -1 removes, 0 replaces.

        Fires with the flags to report per sequence number.  The store's
        ``InvalidFlag`` and ``KeywordLimit`` fail it before anything was
        changed; messages expunged meanwhile are left out.
        """
        if not self._writeable:
            raise imap4.ReadOnlyMailbox()
        wanted = {normalize_flag(f) for f in flags} - _RECENT
        seqs, changes = {}, []
        for seq, message in self.fetch(messages, uid):
            current = set(message.flags) - _RECENT
            new = current | wanted if mode > 0 else current - wanted if mode < 0 else wanted
            seqs[message.uid] = seq
            changes.append((message.uid, frozenset(new)))

        def report(infos: list[MessageInfo]) -> dict[int, list[str]]:
            return {seqs[info.uid]: self.message(info.uid, info).getFlags() for info in infos}

        return self._store_flags(changes).addCallback(report)

    # -- IFolderListener: queue, never answer directly --------------------------

    def messages_added(self, folder: Folder, infos: list[MessageInfo]) -> None:
        """Queue EXISTS for messages this session has not been told of."""
        known = self._uids[-1] if self._uids else 0
        self._added.extend(i.uid for i in infos if i.uid > known and i.uid not in self._added)
        self._notify()

    def flags_changed(self, folder: Folder, infos: list[MessageInfo]) -> None:
        """Queue ``FETCH (FLAGS ...)`` for changes made by someone else."""
        others = [info for info in infos if self._storing.get(info.uid) != info.flags]
        for info in others:
            self._flags[info.uid] = info.flags
        if others:
            self._notify()

    def messages_expunged(self, folder: Folder, uids: list[int]) -> None:
        """Queue EXPUNGE; a message never announced simply disappears."""
        for uid in uids:
            if uid in self._added:
                self._added.remove(uid)
            elif self._seq(uid) is not None and uid not in self._expunged:
                self._expunged.append(uid)
        self._notify()

    def folder_deleted(self, folder: Folder) -> None:
        """The folder was deleted under us: the session must end (see the server)."""
        self.deleted = True
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            if IUpdateListener.providedBy(listener):
                listener.updatesPending()

    def _apply_expunges(self) -> list[int]:
        """Drop queued expunges from the sequence map; their numbers, in order.

        Each number is valid at the moment it is sent: RFC 3501 7.4.1 has
        the client decrement the numbers above it after every EXPUNGE.
        """
        numbers = []
        for uid in self._expunged:
            seq = self._seq(uid)
            if seq is not None:
                del self._uids[seq - 1]
                self._recent.discard(uid)
                self._flags.pop(uid, None)
                numbers.append(seq)
        self._expunged = []
        return numbers

    def take_updates(self, allow_expunge: bool) -> list[bytes]:
        """The untagged responses owed to the client, applied to the map."""
        if self.closed:
            return []
        lines = [b"%d EXPUNGE" % n for n in self._apply_expunges()] if allow_expunge else []
        if self._added:
            self._uids.extend(sorted(self._added))
            self._added = []
            if self._writeable:
                self._recent |= self.folder.claim_recent()
            lines += [b"%d EXISTS" % len(self._uids), b"%d RECENT" % len(self._recent)]
        for uid, flags in self._flags.items():
            seq = self._seq(uid)
            if seq is not None:
                shown = sort_flags(set(flags) | ({"\\Recent"} if uid in self._recent else set()))
                lines.append(b"%d FETCH (FLAGS (%s))" % (seq, " ".join(shown).encode()))
        self._flags = {}
        return lines

    # -- IMailboxInfo / IMailbox ---------------------------------------------

    def getFlags(self) -> list[str]:
        """The flags the FLAGS response lists (RFC 3501 7.2.6)."""
        return list(SYSTEM_FLAGS)

    def getHierarchicalDelimiter(self) -> str:
        """``/``, as DESIGN.md shows folders over IMAP."""
        return "/"

    def getUIDValidity(self) -> int:
        """UIDVALIDITY of the folder (RFC 3501 2.3.1.1)."""
        return self.folder.uidvalidity

    def getUIDNext(self) -> int:
        """The UID the next message will get."""
        return self.folder.uidnext

    def getUID(self, message: int) -> int:
        """UID of sequence number *message*."""
        return self._uids[message - 1]

    def getMessageCount(self) -> int:
        """EXISTS as this session knows it."""
        return len(self._uids)

    def getRecentCount(self) -> int:
        """RECENT: the messages this session claimed."""
        return len(self._recent)

    def getUnseenCount(self) -> int:
        """Messages without ``\\Seen``."""
        return sum(1 for _ in self._unseen())

    def first_unseen(self) -> int | None:
        """Sequence number of the first message without ``\\Seen`` (7.1 UNSEEN)."""
        return next(self._unseen(), None)

    def isWriteable(self) -> bool:
        """True after SELECT, false after EXAMINE."""
        return self._writeable

    def destroy(self) -> None:
        """Not supported: DELETE goes through the account."""
        raise imap4.MailboxException("use DELETE")

    def requestStatus(self, names: Iterable[str]) -> dict[str, int]:
        """STATUS items for this mailbox (RFC 3501 6.3.10)."""
        return imap4.statusRequestHelper(self, names)

    def addListener(self, listener: Any) -> None:
        """Register the session; it is told through :class:`IUpdateListener`."""
        self._listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        """Forget the session (ignored if unknown)."""
        if listener in self._listeners:
            self._listeners.remove(listener)

    def addMessage(self, message: Any, flags: Iterable[str] = (), date: Any = None) -> "Deferred[int]":
        """APPEND into this folder: the store's Deferred firing with the UID."""
        return self.folder.append(Body.from_wire(message.read()), [normalize_flag(f) for f in flags])

    def expunge(self, uids: imap4.MessageSet | None = None) -> "Deferred[list[int]]":
        """EXPUNGE: remove ``\\Deleted`` messages; fires with every sequence number gone.

        With *uids* (UID EXPUNGE, RFC 4315 2.1) only the ``\\Deleted``
        messages in that UID set go, so a client removing its own deletions
        leaves those another client marked.  Expunges queued from other
        sessions are applied in the same pass so the numbers reported stay
        consistent (RFC 3501 7.4.1).
        """
        if not self._writeable:
            raise imap4.ReadOnlyMailbox()
        candidates = self._uids if uids is None else [u for _, u in self.select(uids, True)]
        doomed = [
            u for u in candidates if (info := self.folder.get(u)) is not None and "\\Deleted" in info.flags
        ]

        def removed(gone: list[int]) -> list[int]:
            for uid in gone:
                if uid not in self._expunged:
                    self._expunged.append(uid)
            return self._apply_expunges()

        return self.folder.expunge(doomed).addCallback(removed)

    def close(self) -> None:
        """Stop listening to the folder (deselect, logout, timeout)."""
        self.closed = True
        self.folder.remove_listener(self)
        self._listeners = []


#: Canonical spelling of the system flags, whatever case the client sent.
_CANONICAL = {f.lower(): f for f in SYSTEM_FLAGS + ("\\Recent",)}


def normalize_flag(flag: str | bytes) -> str:
    """A client flag as stored: system flags in canonical case (RFC 3501 2.3.2)."""
    if isinstance(flag, bytes):
        flag = flag.decode("ascii", "replace")
    return _CANONICAL.get(flag.lower(), flag)

"""One SELECTed folder as one IMAP session sees it: sequence numbers and owed updates.

A :class:`Selection` is made per SELECT/EXAMINE and holds that session's
message sequence numbers (a sorted list of UIDs: position + 1 is the
sequence number, RFC 3501 2.3.1.2).  The shared store
:class:`~mailsrv.store.Folder` announces every change, whoever made it; the
selection queues them and the server drains the queue only when RFC 3501
allows: new messages and flag changes after any command, expunges never
during FETCH, STORE or SEARCH (7.4.1), so a client's sequence numbers never
shift under a command that uses them.  Once the session enabled CONDSTORE
the flag updates carry MODSEQ, and once it enabled QRESYNC they carry the
UID and expunges are sent as ``VANISHED`` (RFC 7162 3.1.8, 3.2.4).
"""

from __future__ import annotations

import bisect
from typing import Callable, Iterable, Iterator, Sequence

from twisted.mail import imap4
from zope.interface import implementer

from mailsrv.imap.modes import Modes
from mailsrv.imap.fetch import View
from mailsrv.imap.flags import RECENT, flags_data, normalize_flag
from mailsrv.imap.sequences import resolve_set, uid_set
from mailsrv.store import Folder, IFolderListener, MessageInfo

#: Messages per trip to the store for one STORE or EXPUNGE, and per reactor turn of a FETCH
#: that needs no file: 30,000 at once kept the reactor thread from every other session for a
#: third of a second.
SLICE = 1000
#: Up to this many expunges are taken out of the sequence map one by one.
_FEW = 32


@implementer(IFolderListener)
class Selection:
    """A folder opened by one session, read-write (SELECT) or not (EXAMINE).

    *notify* is called whenever updates are queued (the server sends them
    at once while the client IDLEs).  The folder must have been synced.
    """

    def __init__(
        self, folder: Folder, writeable: bool, notify: Callable[[], None], modes: Modes | None = None,
    ) -> None:
        self.folder = folder
        self.writeable = writeable
        self.modes = modes or Modes(set())
        self._notify = notify
        self._uids = folder.uids()
        # RFC 3501 2.3.2: \Recent goes to one session; EXAMINE never claims it, nor does an
        # IMAP4rev2 session, which has no \Recent (RFC 9051 2.3.2), so a rev1 session still gets it.
        self._claims_recent = writeable and not self.modes.rev2
        # RFC 3501 6.3.2: EXAMINE answers as SELECT does, \Recent included, but MUST NOT take it away.
        self._peeks_recent = not writeable and not self.modes.rev2
        self._recent = self._take_recent()
        # Ordered sets (dicts): a burst of thousands of changes costs O(1) each.
        self._added: dict[int, None] = {}
        self._expunged: dict[int, None] = {}
        self._flags: dict[int, MessageInfo] = {}
        self._storing = False
        #: The saved search result ``$`` (RFC 5182), as UIDs; every SELECT starts empty.
        self.saved: frozenset[int] = frozenset()
        self.closed = False
        #: The folder was deleted under this session.
        self.deleted = False
        folder.add_listener(self)

    def _take_recent(self) -> set[int]:
        """The \\Recent messages new to this session: claimed (SELECT), seen but left (EXAMINE), or none (rev2)."""
        if self._claims_recent:
            return self.folder.claim_recent()
        return self.folder.unclaimed_recent() if self._peeks_recent else set()

    # -- sequence numbers ----------------------------------------------------

    @property
    def exists(self) -> int:
        """EXISTS as this session knows it."""
        return len(self._uids)

    @property
    def recent(self) -> int:
        """RECENT: the messages this session claimed."""
        return len(self._recent)

    def seq_of(self, uid: int) -> int | None:
        """The sequence number of *uid*, if this session knows it."""
        i = bisect.bisect_left(self._uids, uid)
        return i + 1 if i < len(self._uids) and self._uids[i] == uid else None

    def uid_of(self, seq: int) -> int:
        """The UID of sequence number *seq*."""
        return self._uids[seq - 1]

    def select(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, int]]:
        """``(sequence number, UID)`` for a client's sequence or UID set."""
        return [(p + 1, self._uids[p]) for p in self._positions(messages, uid)]

    def _positions(self, messages: imap4.MessageSet, uid: bool) -> list[int]:
        """Positions in the sequence map of a client's sequence or UID set."""
        ids: Sequence[int] = self._uids if uid else range(1, len(self._uids) + 1)
        return resolve_set(ids, messages)

    def view(self, uid: int, info: MessageInfo) -> View:
        """The session's view of a stored message (with its \\Recent): the store's own info when not recent."""
        return info._replace(flags=info.flags | RECENT) if uid in self._recent else info

    def views(self, pairs: Iterable[tuple[int, int]]) -> tuple[list[tuple[int, View]], list[int]]:
        """Views of ``(seq, uid)`` pairs, and the sequence numbers of those expunged elsewhere."""
        pairs = pairs if isinstance(pairs, list) else list(pairs)
        infos = self.folder.infos_of([uid for _, uid in pairs])
        found, gone = [], []
        for (seq, uid), info in zip(pairs, infos):
            if info is None:
                gone.append(seq)
            else:
                found.append((seq, self.view(uid, info)))
        return found, gone

    def slices(self, messages: imap4.MessageSet, uid: bool) -> Iterator[list[tuple[int, int]]]:
        """:meth:`select`'s pairs, :data:`SLICE` at a time, each made only when asked for.

        FETCH makes each slice's views after a reactor turn, so they are
        the folder as it is when the slice is sent; all 100,000 views made
        at once held the reactor thread from every other session for 0.7 s.
        """
        positions = self._positions(messages, uid)
        for start in range(0, len(positions), SLICE):
            yield [(p + 1, self._uids[p]) for p in positions[start : start + SLICE]]

    def all_views(self) -> list[tuple[int, View]]:
        """Every message still present, for SEARCH."""
        return self.views(enumerate(self._uids, 1))[0]

    def view_slices(self) -> Iterator[tuple[list[int], list[View]]]:
        """:meth:`all_views` as sequence numbers and views side by side, :data:`SLICE` at a time.

        Each slice is made only when asked for: a SEARCH of a big folder
        takes a reactor turn between slices (the 100,000 views of one
        folder made at once held every other session for a quarter of a
        second).  Two lists, not a pair per message (:class:`.Candidates`).
        """
        uids = self._uids
        for start in range(0, len(uids), SLICE):
            part = uids[start : start + SLICE]
            seqs: list[int] = []
            views: list[View] = []
            for seq, uid, info in zip(range(start + 1, start + 1 + len(part)), part, self.folder.infos_of(part)):
                if info is not None:
                    seqs.append(seq)
                    views.append(self.view(uid, info))
            yield seqs, views

    def first_unseen(self) -> int | None:
        """Sequence number of the first message without ``\\Seen`` (RFC 3501 7.1 UNSEEN)."""
        get = self.folder.get
        for seq, uid in enumerate(self._uids, 1):
            info = get(uid)
            if info is not None and "\\Seen" not in info.flags:
                return seq
        return None

    # -- changing ------------------------------------------------------------

    async def set_flags(self, changes: Sequence[tuple[int, frozenset[str]]]) -> dict[int, View]:
        """Store ``(uid, flags)`` changes without echoing them back as updates; UID -> its new view.

        The store's ``InvalidFlag`` and ``KeywordLimit`` propagate (nothing
        was changed then); messages expunged meanwhile are left out.  A big
        STORE goes in slices of :data:`SLICE` messages, each one trip to the
        disk pool, so other sessions are served in between.
        """
        self._storing = True
        stored: dict[int, View] = {}
        try:
            for start in range(0, len(changes), SLICE):
                part = changes[start : start + SLICE]
                infos = await self.folder.store_flags([(uid, flags - RECENT) for uid, flags in part])
                stored.update((info.uid, self.view(info.uid, info)) for info in infos)
        finally:
            self._storing = False
        return stored

    async def store(
        self, messages: imap4.MessageSet, flags: Sequence[str], mode: int, uid: bool,
        unchanged_since: int | None = None,
    ) -> tuple[list[tuple[int, View]], list[int], list[tuple[int, int]]]:
        """STORE (RFC 3501 6.4.6): *mode* 1 adds, -1 removes, 0 replaces.

        With *unchanged_since* (RFC 7162 3.1.3) a message whose modseq is
        higher, or whose last change is still being numbered, is left as
        it is.  ``([(seq, new view)], [seq expunged elsewhere], [(seq, uid)
        left as it was])``.
        """
        wanted = frozenset(normalize_flag(f) for f in flags) - RECENT
        views, gone = self.views(self.select(messages, uid))
        changes, modified = [], []
        for seq, view in views:
            if unchanged_since is not None and (view.modseq > unchanged_since or self.folder.changing(view.uid)):
                modified.append((seq, view.uid))
                continue
            current = view.flags - RECENT
            new = current | wanted if mode > 0 else current - wanted if mode < 0 else wanted
            changes.append((view.uid, new))
        stored = await self.set_flags(changes)
        seqs = {view.uid: seq for seq, view in views}
        done = [(seqs[u], v) for u, v in stored.items()]
        gone += [seqs[u] for u, _ in changes if u not in stored]
        return sorted(done, key=lambda pair: pair[0]), sorted(gone), modified

    async def expunge(self, uids: imap4.MessageSet | None = None) -> list[bytes]:
        """EXPUNGE: remove ``\\Deleted`` messages; the untagged responses saying so, in order.

        With *uids* (UID EXPUNGE, RFC 4315 2.1) only the ``\\Deleted``
        messages in that UID set go.  Expunges queued from other sessions
        are applied in the same pass so the numbers reported stay
        consistent (RFC 3501 7.4.1).
        """
        candidates = self._uids if uids is None else [u for _, u in self.select(uids, True)]
        doomed = [u for u in candidates if (info := self.folder.get(u)) is not None and "\\Deleted" in info.flags]
        return await self.remove(doomed)

    async def remove(self, doomed: Sequence[int]) -> list[bytes]:
        """Expunge exactly the messages *doomed* (UIDs), flagged or not: the responses to send.

        MOVE's second half (RFC 6851 3.3); :meth:`expunge` picks the
        ``\\Deleted`` ones.
        """
        for start in range(0, len(doomed), SLICE):  # as STORE: other sessions run in between
            self._expunged.update(dict.fromkeys(await self.folder.expunge(doomed[start : start + SLICE])))
        return self._apply_expunges()

    # -- IFolderListener: queue, never answer directly ------------------------

    def messages_added(self, folder: Folder, infos: list[MessageInfo]) -> None:
        """Queue EXISTS for messages this session has not been told of."""
        known = self._uids[-1] if self._uids else 0
        self._added.update(dict.fromkeys(i.uid for i in infos if i.uid > known))
        self._notify()

    def flags_changed(self, folder: Folder, infos: list[MessageInfo]) -> None:
        """Queue ``FETCH (FLAGS ...)`` for changes made by someone else."""
        if self._storing:
            return
        for info in infos:
            self._flags[info.uid] = info
        self._notify()

    def messages_expunged(self, folder: Folder, uids: list[int]) -> None:
        """Queue EXPUNGE; a message never announced simply disappears."""
        for uid in uids:
            if uid in self._added:
                del self._added[uid]
            elif self.seq_of(uid) is not None:
                self._expunged[uid] = None
        self._notify()

    def folder_deleted(self, folder: Folder) -> None:
        """The folder was deleted under us: the session must end (see the server)."""
        self.deleted = True
        self._notify()

    def _apply_expunges(self) -> list[bytes]:
        """Drop queued expunges from the sequence map; the responses telling the client, in order.

        ``VANISHED`` with the UIDs once QRESYNC is on (RFC 7162 3.2.10);
        otherwise one ``EXPUNGE`` per message, with numbers lowest first.

        Each number is valid at the moment it is sent: RFC 3501 7.4.1 has
        the client decrement the numbers above it after every EXPUNGE, so a
        run at the top of the mailbox reads ``* 1 EXPUNGE`` again and again.
        A few are taken out one by one; many in one pass over the map (one
        at a time, emptying a 30,000-message folder moved the rest of the
        list 30,000 times).
        """
        gone = sorted(uid for uid in self._expunged if self.seq_of(uid) is not None)
        self._expunged = {}
        for uid in gone:
            self._recent.discard(uid)
            self._flags.pop(uid, None)
        if len(gone) <= _FEW:
            numbers = [seq for seq in map(self.seq_of, gone) if seq is not None]
            for seq in reversed(numbers):
                del self._uids[seq - 1]
        else:
            doomed = set(gone)
            numbers = [pos + 1 for pos, uid in enumerate(self._uids) if uid in doomed]
            self._uids = [uid for uid in self._uids if uid not in doomed]
        if self.modes.qresync:
            return [b"VANISHED " + uid_set(gone)] if gone else []
        return [b"%d EXPUNGE" % (seq - i) for i, seq in enumerate(numbers)]

    @property
    def last_uid(self) -> int:
        """The highest UID this session was told of (0 for none)."""
        return self._uids[-1] if self._uids else 0

    def pairs_after(self, uid: int) -> list[tuple[int, int]]:
        """``(sequence number, UID)`` of the messages above *uid* this session was told of."""
        start = bisect.bisect_right(self._uids, uid)
        return [(p + 1, self._uids[p]) for p in range(start, len(self._uids))]

    def take_updates(self, allow_expunge: bool, flags: bool = True, with_uid: bool = False) -> list[bytes]:
        """The untagged responses owed to the client, applied to the map.

        Without *flags* the flag changes stay owed; *with_uid* puts the UID in
        each (RFC 5465 5.1, for a session that asked NOTIFY for FlagChange).
        """
        if self.closed:
            return []
        lines = self._apply_expunges() if allow_expunge else []
        if self._added:
            self._uids.extend(sorted(self._added))
            self._added = {}
            lines.append(b"%d EXISTS" % len(self._uids))
            self._recent |= self._take_recent()
            if not self.modes.rev2:  # RFC 9051 7.4: IMAP4rev2 has no RECENT response
                lines.append(b"%d RECENT" % len(self._recent))
        if not flags:
            return lines
        for uid, info in self._flags.items():
            seq = self.seq_of(uid)
            if seq is not None:
                lines.append(self.flags_update(seq, self.view(uid, info), with_uid=with_uid))
        self._flags = {}
        return lines

    def flags_update(self, seq: int, view: View, with_uid: bool = False, silent: bool = False) -> bytes:
        """``N FETCH (FLAGS ...)`` for a flag change, with what CONDSTORE and QRESYNC add.

        *silent* (STORE.SILENT under CONDSTORE) leaves out FLAGS but not MODSEQ (RFC 7162 3.1.3).
        """
        items = [] if silent else [b"FLAGS " + flags_data(view.flags)]
        if with_uid or self.modes.qresync:
            items.append(b"UID %d" % view.uid)
        if self.modes.condstore:
            items.append(b"MODSEQ (%d)" % view.modseq)
        return b"%d FETCH (%s)" % (seq, b" ".join(items))

    def close(self) -> None:
        """Stop listening to the folder (deselect, logout)."""
        self.closed = True
        self.folder.remove_listener(self)

"""What one session's NOTIFY SET (RFC 5465) watches, and the responses it owes for mailboxes not selected.

A :class:`Notifications` listens to each folder its request names for
message events (the store's :class:`~mailsrv.store.IFolderListener`, as a
selected folder is listened to, so SMTP delivery, other sessions, POP3
and other programs' changes are all heard) and to the user's folder tree
(:class:`~mailsrv.store.userstore.ITreeListener`: CREATE, DELETE, RENAME,
SUBSCRIBE and SETMETADATA of every session of the user).  What it hears
becomes owed responses: one ``STATUS`` per mailbox however many changes
came (5.2, 5.3: MESSAGES and UIDNEXT, 5.1: UIDVALIDITY and HIGHESTMODSEQ,
HIGHESTMODSEQ always once CONDSTORE is on, and UNSEEN with each), rendered
when sent so its figures are current; ``LIST`` for a mailbox made, deleted (``\\NonExistent``)
or renamed (``OLDNAME``, 5.4) and for a subscription change (5.5);
``METADATA`` with the entry names for an annotation change (5.6, 5.7).
The session sends them (see the server) between commands, in IDLE, and
before any tagged reply.  Changes this session made itself are not told
back to it (5: SHOULD), but its new folders are watched all the same.

The selected mailbox's own events are the selection's (see
:mod:`.selection`); this module only says which it may push.  Every
resource is bounded: at most ``[imap] notify_max_mailboxes`` folders are
watched (more asked for at once is ``NO [NOTIFICATIONOVERFLOW]``, more
later or too many responses owed to a client that does not read ends the
notifications with an untagged ``OK [NOTIFICATIONOVERFLOW]``, 5.8).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from mailsrv.imap import notify
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.folders import quoted_name, status_data
from mailsrv.imap.responses import OK, Result, no
from mailsrv.store import IFolderListener, NoSuchFolder
from mailsrv.store.metadata import SERVER
from mailsrv.store.userstore import ITreeListener

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection
    from mailsrv.store import Folder, MessageInfo

log = Logger()

#: Responses owed to a session beyond which it is told of an overflow rather than queued more.
MAX_OWED = 1000
#: UNSEEN beyond what 5.1-5.3 name, as Dovecot and mox send it: a client's unread count needs it.
_MESSAGE_ITEMS = (b"MESSAGES", b"UIDNEXT", b"UNSEEN")
_FLAG_ITEMS = (b"UIDVALIDITY", b"UNSEEN", b"HIGHESTMODSEQ")
_STATUS_ORDER = (b"MESSAGES", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"HIGHESTMODSEQ")
OVERFLOW = b"OK [NOTIFICATIONOVERFLOW] Too many notifications, NOTIFY is off"


async def do_NOTIFY(server: "Connection", args: Arguments) -> Result:
    """RFC 5465 3.1: replace the session's notifications; with STATUS, each watched mailbox's now."""
    request = notify.parse_notify(args)
    await server.sync()  # 3.1: a NOTIFY SET is a NOOP too; the tagged reply sends what is owed
    if request is None:
        server.stop_notifications()
        return Result(OK, b"NOTIFY completed")
    notifications = Notifications(server, request)
    try:
        watched = await notifications.start(server.ctx.config.imap.notify_max_mailboxes)
    except BaseException:
        notifications.stop()  # a refused NOTIFY SET leaves the one before it in force
        raise
    server.stop_notifications()
    server.notifications = notifications
    selected = server.selection.folder.name if server.selection is not None else None
    if request.status:  # 3.1: before the tagged OK, for every mailbox but the selected one
        items = {*_MESSAGE_ITEMS, b"UIDVALIDITY"} | ({b"HIGHESTMODSEQ"} if server.modes.condstore else set())
        server.write(b"".join(
            b"* " + line + b"\r\n"
            for name in watched if name != selected and (line := notifications.status_line(name, items))
        ))
    return Result(OK, b"NOTIFY completed")


@implementer(IFolderListener)
class _Watch:
    """One watched folder's changes, passed on to its :class:`Notifications`."""

    def __init__(self, owner: "Notifications", folder: "Folder") -> None:
        self.owner = owner
        self.folder = folder

    def messages_added(self, folder: "Folder", infos: "list[MessageInfo]") -> None:
        self.owner.changed(folder, notify.MESSAGE_NEW)

    def messages_expunged(self, folder: "Folder", uids: list[int]) -> None:
        self.owner.changed(folder, notify.MESSAGE_EXPUNGE)

    def flags_changed(self, folder: "Folder", infos: "list[MessageInfo]") -> None:
        self.owner.changed(folder, notify.FLAG_CHANGE)

    def folder_deleted(self, folder: "Folder") -> None:
        self.owner.unwatch(folder.name)


@implementer(ITreeListener)
class Notifications:
    """One session's NOTIFY SET: its watches and what it owes; :meth:`take` hands the responses over."""

    def __init__(self, server: "Connection", request: notify.Request) -> None:
        self.request = request
        self._server = server
        assert server.account is not None
        self._user = server.account.user
        self._limit = 0
        self._watches: dict[str, _Watch] = {}
        self._subscribed: frozenset[str] = frozenset()
        #: Mailbox -> the STATUS items owed for it; rendered when sent.
        self._status: dict[str, set[bytes]] = {}
        self._lines: list[bytes] = []
        self.overflowed = False
        self.stopped = False

    # -- life ----------------------------------------------------------------

    async def start(self, limit: int) -> list[str]:
        """Watch every mailbox the request names for message events; their names, in LIST order."""
        self._limit = limit
        user = self._user
        if self.request.wants_subscriptions:
            self._subscribed = frozenset(await user.subscriptions())
        wanted = [name for name in await user.list_folders() if self._wants_messages(name)]
        if len(wanted) > limit:
            raise no(b"[NOTIFICATIONOVERFLOW] NOTIFY would watch more than %d mailboxes" % limit)
        user.add_tree_listener(self)
        for name in wanted:
            await self._watch(name)
        return [name for name in wanted if name in self._watches]

    def stop(self) -> None:
        """Stop listening (NOTIFY again, logout); nothing more is owed."""
        self.stopped = True
        self._user.remove_tree_listener(self)
        for watch in self._watches.values():
            watch.folder.remove_listener(watch)
        self._watches = {}
        self._status = {}
        self._lines = []

    def _wants_messages(self, name: str) -> bool:
        """Whether *name*, not selected, gets message events (MessageNew comes with MessageExpunge)."""
        return any(
            self.request.event_for(name, event, False, self._subscribed) is not None
            for event in (notify.MESSAGE_NEW, notify.FLAG_CHANGE)
        )

    async def _watch(self, name: str) -> None:
        if name in self._watches or self.stopped:
            return
        try:
            folder = await self._user.open(name)
        except NoSuchFolder:
            return  # gone between the listing and the open
        if name in self._watches or self.stopped:
            return
        if len(self._watches) >= self._limit:
            self._overflow()
            return
        watch = self._watches[name] = _Watch(self, folder)
        folder.add_listener(watch)

    def _watch_soon(self, name: str) -> None:
        if self._wants_messages(name):
            defer.Deferred.fromCoroutine(self._watch(name)).addErrback(
                lambda f: log.failure("NOTIFY: watching {name} failed", f, name=name))

    def unwatch(self, name: str) -> None:
        """Stop watching *name* (deleted, renamed, no longer named by the request)."""
        watch = self._watches.pop(name, None)
        if watch is not None:
            watch.folder.remove_listener(watch)
        self._status.pop(name, None)

    # -- message events of watched folders -----------------------------------

    def changed(self, folder: "Folder", event: str) -> None:
        """A watched folder changed: a STATUS is owed unless it is the selected one (its own updates tell)."""
        selection = self._server.selection
        if self.stopped or (selection is not None and selection.folder is folder):
            return
        if self.request.event_for(folder.name, event, False, self._subscribed) is None:
            return
        items = self._status.setdefault(folder.name, set())
        items.update(_FLAG_ITEMS if event == notify.FLAG_CHANGE else _MESSAGE_ITEMS)
        if self._server.modes.condstore:  # 5.2, 5.3: with CONDSTORE on, HIGHESTMODSEQ too
            items.add(b"HIGHESTMODSEQ")
        self._owe()

    def status_line(self, name: str, items: set[bytes]) -> bytes | None:
        """``STATUS name (...)`` as the watched folder is now; None if it is no longer watched."""
        watch = self._watches.get(name)
        if watch is None:
            return None
        wanted = [item for item in _STATUS_ORDER if item in items]
        return b"STATUS " + self._name(name) + b" " + status_data(watch.folder, wanted, watch.folder.recent_count)

    # -- ITreeListener -------------------------------------------------------

    def folders_created(self, names: list[str], origin: object) -> None:
        for name in names:
            self._mailbox_line(name, b"()", origin)
            self._watch_soon(name)

    def folder_deleted(self, name: str, origin: object) -> None:
        self._mailbox_line(name, b"(\\NonExistent)", origin)
        self.unwatch(name)

    def folders_renamed(self, pairs: list[tuple[str, str]], origin: object) -> None:
        for old, new in pairs:
            self._mailbox_line(new, b"()", origin, b' ("OLDNAME" (' + self._name(old) + b"))")
            if old != "INBOX":  # renaming INBOX moves its mail and leaves it (RFC 3501 6.3.5)
                self.unwatch(old)
            self._watch_soon(new)

    def subscription_changed(self, name: str, subscribed: bool, origin: object) -> None:
        if self.request.wants_subscriptions:
            self._subscribed = self._subscribed | {name} if subscribed else self._subscribed - {name}
            if self._wants_messages(name):
                self._watch_soon(name)
            else:
                self.unwatch(name)
        if origin is self._server or self.stopped:
            return
        if self.request.event_for(name, notify.SUBSCRIPTION_CHANGE, False, self._subscribed) is not None:
            attributes = b"(\\Subscribed)" if subscribed else b"()"
            self._line(b"LIST " + attributes + b' "/" ' + self._name(name))

    def annotations_changed(self, name: str, entries: list[str], origin: object) -> None:
        if origin is self._server or self.stopped:
            return
        event = notify.SERVER_METADATA if name == SERVER else notify.MAILBOX_METADATA
        if self.request.event_for(name, event, False, self._subscribed) is not None:
            mailbox = b'""' if name == SERVER else self._name(name)
            self._line(b"METADATA " + mailbox + b" (" + " ".join(entries).encode("ascii") + b")")

    def _mailbox_line(self, name: str, attributes: bytes, origin: object, extra: bytes = b"") -> None:
        """5.4's LIST for a mailbox made, deleted or renamed by another session."""
        if origin is self._server or self.stopped:
            return
        if self.request.event_for(name, notify.MAILBOX_NAME, False, self._subscribed) is not None:
            self._line(b"LIST " + attributes + b' "/" ' + self._name(name) + extra)

    # -- what is owed --------------------------------------------------------

    def _name(self, name: str) -> bytes:
        return quoted_name(name, self._server.modes.utf8)

    def _line(self, line: bytes) -> None:
        self._lines.append(line)
        self._owe()

    def _owe(self) -> None:
        if len(self._lines) + len(self._status) > MAX_OWED:
            self._overflow()
            return
        self._server.notifications_pending()

    def _overflow(self) -> None:
        """5.8: too much to tell; the session says so once and behaves as after NOTIFY NONE."""
        self.stop()
        self.overflowed = True
        self._server.notifications_pending()

    def take(self) -> list[bytes]:
        """The untagged responses owed (without ``* ``), in order; after an overflow, its one response."""
        if self.overflowed:
            self.overflowed = False
            return [OVERFLOW]
        owed, self._status = self._status, {}
        lines = [line for name, items in owed.items() if (line := self.status_line(name, items)) is not None]
        lines += self._lines
        self._lines = []
        return lines


def selected_group(server: "Connection") -> "notify.Group | None":
    """The session's SELECTED or SELECTED-DELAYED group, when NOTIFY is on."""
    notifications = server.notifications
    return None if notifications is None else notifications.request.selected

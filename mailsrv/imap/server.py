"""The IMAP4rev1 protocol: Twisted's ``IMAP4Server`` with its defects fixed.

Reading commands (lines, limits, one command at a time, argument parsing,
errors) is :mod:`.parsing`'s ``CommandParser``; this subclass decides what
the commands do, and holds the dispatch tables that pair each command with
its handler and parsers.  What it changes (see ``TWISTED-NOTES.md``
section 3):

* TLS: LOGINDISABLED/STARTTLS before TLS, AUTH=PLAIN only after it (or on
  loopback when configured); plaintext pipelined behind STARTTLS is
  discarded (RFC 3501 6.2.1).
* SELECT reports PERMANENTFLAGS, UNSEEN, UIDNEXT; FETCH, SEARCH, COPY,
  APPEND, STATUS, LIST and IDLE are our own (see the modules they use).
* Every store operation returns a Deferred, so the handlers that use one
  answer when it fires (the tagged reply ends the command); CREATE, DELETE,
  RENAME, (UN)SUBSCRIBE and CHECK are ours for that reason alone, with
  Twisted's answers.
* Updates from other sessions (EXISTS, FETCH FLAGS, and EXPUNGE, which
  Twisted cannot express) are sent at the end of commands, or at once
  while IDLE.
"""

from __future__ import annotations

import datetime
from functools import partial
from typing import Any, Callable, Iterator

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import imap4
from twisted.mail.imap4 import IMAP4Server
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.accounts.cred import PlainCredentials
from mailsrv.context import ServerContext
from mailsrv.imap.account import Account
from mailsrv.imap.fetch import needs_seen, render, with_flags
from mailsrv.imap.mailbox import IUpdateListener, Mailbox, normalize_flag
from mailsrv.imap.message import Message, NotLoaded
from mailsrv.imap.parsing import CommandParser, reply_text
from mailsrv.imap.search import SearchError, compile_search
from mailsrv.imap.structure import encode
from mailsrv.message.body import Body
from mailsrv.store import Folder, InvalidFlag, InvalidFolderName, KeywordLimit, MessageGone, NoSuchFolder
from mailsrv.tls import is_secure, uses_tls

log = Logger()

_PERMANENT_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"


def _cooperate(steps: Iterator[Any]) -> defer.Deferred[Any]:
    """Run a long FETCH in time slices so other sessions keep being served."""
    return task.cooperate(steps).whenDone()


class _Outcome:
    """What a Deferred gave, for a cooperative loop: ``yield outcome.done``, then ``outcome.get()``.

    The cooperator waits for a Deferred the loop yields but drops its result.
    """

    def __init__(self, d: defer.Deferred[Any]) -> None:
        self._result: Any = None
        self.done = d.addBoth(self._keep)

    def _keep(self, result: Any) -> None:
        self._result = result

    def get(self) -> Any:
        """The result, or the failure raised."""
        if isinstance(self._result, Failure):
            self._result.raiseException()
        return self._result


def _with_content(mbox: Mailbox, message: Message, compute: Callable[[], Any]) -> Iterator[Any]:
    """``compute()``; if it needs the message's octets, load them first (a step of a cooperative loop).

    Use as ``value = yield from _with_content(...)``.  The octets are let go
    of afterwards, so a FETCH or SEARCH over many messages holds one at a time.
    """
    try:
        return compute()
    except NotLoaded:
        pass
    loading = _Outcome(mbox.load(message))
    yield loading.done
    loading.get()
    try:
        return compute()
    finally:
        message.loaded(None)


class _AuditedPortal:
    """The portal, logging every login attempt with the client IP (DESIGN.md)."""

    def __init__(self, portal: Portal, peer: Callable[[], str]) -> None:
        self._portal = portal
        self._peer = peer

    def login(self, credentials: Any, mind: Any, *interfaces: Any) -> defer.Deferred[Any]:
        user = getattr(credentials, "username", b"")
        user = user.decode("utf-8", "replace") if isinstance(user, bytes) else str(user)
        ip = self._peer()
        if isinstance(credentials, PlainCredentials) and not credentials.acts_as_itself():
            # RFC 4616 2: an authzid the user may not act as MUST fail the
            # login, and nobody may act as another user here.
            log.info("imap login failed user={user} ip={ip}: authzid refused", user=user, ip=ip, outcome="failed")
            return defer.fail(UnauthorizedLogin())

        def ok(result: Any) -> Any:
            log.info("imap login ok user={user} ip={ip}", user=user, ip=ip, outcome="ok")
            return result

        def failed(failure: Failure) -> Failure:
            log.info("imap login failed user={user} ip={ip}", user=user, ip=ip, outcome="failed")
            return failure

        return self._portal.login(credentials, mind, *interfaces).addCallbacks(ok, failed)


def _parse_date(value: bytes) -> float:
    """APPEND date-time ``"17-Jul-1996 02:44:25 -0700"`` (RFC 3501 9) to epoch."""
    text = value.decode("ascii").strip()
    return datetime.datetime.strptime(text, "%d-%b-%Y %H:%M:%S %z").timestamp()


def _mailbox_name(name: str) -> bytes:
    """A folder name on the wire: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    return encode(name.encode("imap4-utf-7"))


def _uid_set(uids: list[int]) -> bytes:
    """A ``uid-set`` (RFC 4315 4) in the order given, runs of +1 as ``a:b``.

    COPYUID pairs its source and destination sets by position, so the
    order must survive; only consecutive ascending UIDs are merged.
    """
    runs: list[list[int]] = []
    for uid in uids:
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return b",".join(b"%d" % low if low == high else b"%d:%d" % (low, high) for low, high in runs)


@implementer(IUpdateListener)
class IMAPServer(CommandParser):
    """One IMAP connection: what its commands do (reading them is :class:`CommandParser`)."""

    IDLE_POLL_SECONDS = 10  # finds changes made by another node (shared store)

    def __init__(
        self, ctx: ServerContext, implicit_tls: bool,
        scheduler: Callable[[Iterator[Any]], defer.Deferred[Any]] = _cooperate,
    ) -> None:
        super().__init__(
            chal={b"PLAIN": PlainCredentials},
            contextFactory=None if implicit_tls else ctx.tls,
            scheduler=scheduler,
        )
        self.config = ctx.config
        self.portal = _AuditedPortal(ctx.portal, self._peer_ip)
        self.MAX_LENGTH = ctx.config.limits.imap_max_line_length
        self.IDENT = ctx.config.hostname.encode("ascii", "replace") + b" IMAP4rev1 ready"
        self._idle_poll: Any = None

    def _peer_ip(self) -> str:
        return str(getattr(self.transport.getPeer(), "host", "?"))

    def _secure(self) -> bool:
        return self.startedTLS or is_secure(self.transport, self.config)

    def connectionMade(self) -> None:
        """Greet; disable Nagle (TWISTED-NOTES 10: 40 ms per small reply)."""
        if ITCPTransport.providedBy(self.transport):
            self.transport.setTcpNoDelay(True)
        super().connectionMade()

    def connectionLost(self, reason: Failure) -> None:
        """Stop listening to the store and release the avatar."""
        self.connected = 0  # store work still running must not select a folder for nobody
        self._stop_idle_poll()
        self._deselect()
        self._lines.clear()
        super().connectionLost(reason)

    # -- capabilities and authentication -----------------------------------------

    def capabilities(self) -> dict[bytes, Any]:
        """RFC 3501 7.2.1: no password mechanism until the channel is safe."""
        caps: dict[bytes, Any] = {}
        if self._secure():
            caps[b"AUTH"] = [b"PLAIN"]
        else:
            if self.ctx and self.canStartTLS:
                caps[b"STARTTLS"] = None
            caps[b"LOGINDISABLED"] = None
        caps[b"IDLE"] = None
        caps[b"NAMESPACE"] = None
        caps[b"UIDPLUS"] = None  # RFC 4315: APPENDUID, COPYUID, UID EXPUNGE
        caps[b"CHILDREN"] = None  # RFC 3348: LIST sends \HasChildren/\HasNoChildren
        return caps

    def do_STARTTLS(self, tag: bytes) -> None:
        """Start TLS, forgetting anything the client pipelined in plaintext."""
        if self.startedTLS or uses_tls(self.transport):
            self.sendNegativeResponse(tag, b"TLS already active")
            return
        if not (self.ctx and self.canStartTLS):
            self.sendNegativeResponse(tag, b"TLS not available")
            return
        # RFC 3501 6.2.1 / RFC 2595 3.1: commands sent after STARTTLS but
        # before the handshake were not protected; a MITM may have added them.
        self.clearLineBuffer()
        self._lines.clear()
        self.sendPositiveResponse(tag, b"Begin TLS negotiation now")
        self.transport.startTLS(self.ctx)
        self.startedTLS = True

    def do_LOGIN(self, tag: bytes, user: bytes, passwd: bytes) -> None:
        """LOGIN, refused before TLS (RFC 3501 6.2.3, LOGINDISABLED)."""
        if not self._secure():
            log.info("imap login refused before TLS ip={ip}", ip=self._peer_ip(), outcome="refused")
            self.sendNegativeResponse(tag, b"[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS")
            return
        super().do_LOGIN(tag, user, passwd)

    def do_AUTHENTICATE(self, tag: bytes, args: bytes) -> None:
        """AUTHENTICATE PLAIN, after TLS only (RFC 3501 6.2.2)."""
        if not self._secure():
            self.sendNegativeResponse(tag, b"[PRIVACYREQUIRED] Authentication is disabled until STARTTLS")
            return
        super().do_AUTHENTICATE(tag, args)

    # -- unsolicited updates ---------------------------------------------------------

    def updatesPending(self) -> None:
        """The store changed the selected folder: tell an idling client now."""
        if self.mbox is not None and self.mbox.deleted and self._running and self._running[1].upper() == b"DELETE":
            self._deselect()  # this session deleted its own selected folder: just deselect, as Dovecot does
        elif self.mbox is not None and self.mbox.deleted and self.parseState == "idle":
            self._selected_gone(NoSuchFolder(self.mbox.folder.name))
        elif self.parseState == "idle":
            self._flush_updates(allow_expunge=True)

    def _flush_updates(self, allow_expunge: bool) -> None:
        if self.mbox is None:
            return
        lines = self.mbox.take_updates(allow_expunge)
        if lines:
            self.transport.write(b"".join(b"* " + line + b"\r\n" for line in lines))

    def _sync(self) -> defer.Deferred[None]:
        """Look for changes made behind the store's back (another node).

        Fails with ``NoSuchFolder`` once the selected folder was deleted;
        :meth:`_failed` then ends the session (:meth:`_selected_gone`).
        """
        if self.mbox is None:
            return defer.succeed(None)
        return self.mbox.folder.sync()

    def _selected_gone(self, error: BaseException) -> bool:
        """Say BYE and hang up if *error* means the selected folder was deleted.

        Another session deleted (or renamed) it, so nothing the client holds
        is valid any more.  RFC 3501 7.1.5 lets the server send BYE and
        close; the text is Dovecot's.  False for any other error.
        """
        if self.mbox is None or not isinstance(error, NoSuchFolder) or error.args[:1] != (self.mbox.folder.name,):
            return False
        log.info("imap selected mailbox {name} was deleted; disconnecting", name=self.mbox.folder.name)
        self._stop_idle_poll()
        self._deselect()
        self._lines.clear()
        self._running = None
        self.state = "logout"
        self.sendUntaggedResponse(b"BYE Selected mailbox was deleted, have to disconnect.")
        self.transport.loseConnection()
        return True

    def do_NOOP(self, tag: bytes) -> None:
        """NOOP: the polling point for updates (RFC 3501 6.1.2)."""
        self._answer(self._sync(), tag, b"NOOP", lambda _: self.sendPositiveResponse(tag, b"NOOP completed"))

    def do_CHECK(self, tag: bytes) -> None:
        """CHECK (RFC 3501 6.4.1): the store is always durable; just resync."""
        self._answer(self._sync(), tag, b"CHECK", lambda _: self.sendPositiveResponse(tag, b"CHECK completed"))

    def do_IDLE(self, tag: bytes) -> None:
        """IDLE (RFC 2177): push updates until the client says DONE."""

        def idle(_: None) -> None:
            self.sendContinuationRequest(b"idling")
            self.parseTag = tag
            self.lastState = self.parseState
            self.parseState = "idle"
            self._flush_updates(allow_expunge=True)
            self._idle_poll = self.callLater(self.IDLE_POLL_SECONDS, self._poll)
            self._pump()  # a DONE sent meanwhile waited behind the command

        self._answer(self._sync(), tag, b"IDLE", idle)

    def _poll(self) -> None:
        self._idle_poll = None

        def again(_: object) -> None:
            if self.parseState == "idle" and self._idle_poll is None:
                self._idle_poll = self.callLater(self.IDLE_POLL_SECONDS, self._poll)

        def failed(failure: Failure) -> None:
            if not self._selected_gone(failure.value):
                log.failure("imap IDLE poll failed", failure)
                again(None)

        self._sync().addCallbacks(again, failed)

    def _stop_idle_poll(self) -> None:
        if self._idle_poll is not None and self._idle_poll.active():
            self._idle_poll.cancel()
        self._idle_poll = None

    def parse_idle(self, line: bytes) -> None:
        """Only ``DONE`` ends IDLE (RFC 2177 3); Twisted ends on any line."""
        if line.strip().upper() != b"DONE":
            self.sendBadResponse(None, b"Expected DONE")
            return
        self._stop_idle_poll()
        self.parseState = self.lastState
        del self.lastState
        self.sendPositiveResponse(self.parseTag, b"IDLE terminated")
        del self.parseTag

    # -- mailboxes ---------------------------------------------------------------

    def _deselect(self) -> None:
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox.close()
            self.mbox = None
            self.state = "auth"

    def _folder(self, tag: bytes, name: bytes, missing: bytes) -> defer.Deferred[Folder | None]:
        """The store folder named by the client, synced, or None after a tagged NO."""

        def refused(failure: Failure) -> Failure | None:
            if failure.check(NoSuchFolder):
                self.sendNegativeResponse(tag, missing)
            elif failure.check(InvalidFolderName):
                self.sendNegativeResponse(tag, b"[CANNOT] Invalid mailbox name")
            else:
                return failure
            return None

        return self.account.folder(imap4._parseMbox(name)).addErrback(refused)

    def _answer(self, d: defer.Deferred[Any], tag: bytes, command: bytes, then: Callable[[Any], Any]) -> None:
        """Go on with *then* once *d* fires; any failure is answered by :meth:`_failed`.

        The tagged reply *then* sends ends the command (:mod:`.parsing`),
        however long after the handler returned.
        """
        d.addCallback(then).addErrback(self._failed, tag, command)

    def _in_folder(
        self, tag: bytes, name: bytes, missing: bytes, command: bytes, then: Callable[[Folder], Any]
    ) -> None:
        """Run ``then(folder)`` for the folder the client named, unless it was refused."""
        self._answer(self._folder(tag, name, missing), tag, command, lambda folder: folder and then(folder))

    @staticmethod
    def _permanent_flags(folder: Any, rw: int) -> bytes:
        """RFC 3501 7.1: ``\\*`` only while the folder can take another keyword."""
        if not rw:
            return b"()"
        return _PERMANENT_FLAGS if folder.can_add_keywords() else _PERMANENT_FLAGS.replace(b" \\*", b"")

    def _selectWork(self, tag: bytes, name: bytes, rw: int, cmdName: bytes) -> None:
        """SELECT/EXAMINE with every response RFC 3501 6.3.1 lists."""
        self._deselect()  # 6.3.1: even a failed SELECT leaves none selected
        selected = partial(self._selected, tag, rw, cmdName)
        self._in_folder(tag, name, b"[NONEXISTENT] No such mailbox", cmdName, selected)

    def _selected(self, tag: bytes, rw: int, cmdName: bytes, folder: Folder) -> None:
        if not self.connected:
            return
        mbox = Mailbox(folder, bool(rw))
        mbox.addListener(self)
        self.mbox, self.state = mbox, "select"
        lines = [
            b"FLAGS (" + " ".join(mbox.getFlags()).encode() + b")",
            b"OK [PERMANENTFLAGS " + self._permanent_flags(folder, rw) + b"] Flags permitted",
            b"%d EXISTS" % mbox.getMessageCount(),
            b"%d RECENT" % mbox.getRecentCount(),
        ]
        unseen = mbox.first_unseen()
        if unseen is not None:
            lines.append(b"OK [UNSEEN %d] First unseen" % unseen)
        lines += [
            b"OK [UIDVALIDITY %d] UIDs valid" % mbox.getUIDValidity(),
            b"OK [UIDNEXT %d] Predicted next UID" % mbox.getUIDNext(),
        ]
        self.transport.write(b"".join(b"* " + line + b"\r\n" for line in lines))
        mode = b"[READ-WRITE]" if rw else b"[READ-ONLY]"
        self.sendPositiveResponse(tag, mode + b" " + cmdName + b" completed")

    def _listWork(self, tag: bytes, ref: bytes, mbox: bytes, sub: int, cmdName: bytes) -> None:
        """LIST/LSUB (RFC 3501 6.3.8-9) with ``/`` and RFC 3348 child flags."""
        reference, pattern = imap4._parseMbox(ref), imap4._parseMbox(mbox)

        def listed(lines: list[bytes]) -> None:
            self.transport.write(b"".join(b"* " + line + b"\r\n" for line in lines))
            self.sendPositiveResponse(tag, cmdName + b" completed")

        if not sub and not pattern:
            # 6.3.8: an empty pattern asks for the hierarchy delimiter.
            listed([b'LIST (\\Noselect) "/" ""'])
        elif sub:
            d = self.account.listSubscribed(reference, pattern)
            self._answer(d, tag, cmdName, lambda found: listed([b'LSUB () "/" ' + _mailbox_name(n) for n in found]))
        else:
            d = self.account.listMailboxes(reference, pattern)
            self._answer(d, tag, cmdName, lambda found: listed([
                b"LIST (" + " ".join(flags).encode() + b') "/" ' + _mailbox_name(n) for n, flags in found
            ]))

    def do_STATUS(self, tag: bytes, mailbox: bytes, names: list[bytes]) -> None:
        """STATUS (RFC 3501 6.3.10) straight from the folder, no SELECT."""
        self._in_folder(tag, mailbox, b"[NONEXISTENT] No such mailbox", b"STATUS", partial(self._status, tag, names))

    def _status(self, tag: bytes, names: list[bytes], folder: Folder) -> None:
        infos = folder.messages()
        selected = self.mbox is not None and self.mbox.folder is folder
        values = {
            b"MESSAGES": len(infos),
            b"RECENT": self.mbox.getRecentCount() if selected else folder.recent_count(),
            b"UIDNEXT": folder.uidnext,
            b"UIDVALIDITY": folder.uidvalidity,
            b"UNSEEN": sum(1 for i in infos if "\\Seen" not in i.flags),
        }
        wanted = [n.upper() for n in names]
        unknown = [n for n in wanted if n not in values]
        if unknown:
            self.sendBadResponse(tag, b"Unknown STATUS item " + unknown[0][:20])
            return
        items = b" ".join(b"%s %d" % (n, values[n]) for n in wanted)
        self.sendUntaggedResponse(b"STATUS " + _mailbox_name(folder.name) + b" (" + items + b")")
        self.sendPositiveResponse(tag, b"STATUS completed")

    def do_APPEND(
        self, tag: bytes, mailbox: bytes, flags: list[bytes] | None, date: bytes | None, message: Any
    ) -> None:
        """APPEND (RFC 3501 6.3.11): byte-exact, durable before the OK."""
        append = partial(self._append, tag, flags, date, message)
        self._in_folder(tag, mailbox, b"[TRYCREATE] No such mailbox", b"APPEND", append)

    def _append(self, tag: bytes, flags: list[bytes] | None, date: bytes | None, message: Any, folder: Folder) -> Any:
        try:
            internaldate = _parse_date(date) if date else None
        except (UnicodeDecodeError, ValueError):
            self.sendBadResponse(tag, b"Invalid date-time")
            return
        data = message.read()
        if not data:
            # POP3 cannot list an empty message, so the two protocols would
            # disagree on the mailbox; Dovecot refuses it in these words.
            self.sendNegativeResponse(tag, b"Can't save a zero byte message")
            return
        d = folder.append(Body.from_wire(data), [normalize_flag(f) for f in flags or ()], internaldate)
        # RFC 4315 3: APPENDUID <uidvalidity> <uid> of the new message.
        return d.addCallback(
            lambda uid: self.sendPositiveResponse(
                tag, b"[APPENDUID %d %d] APPEND completed" % (folder.uidvalidity, uid)
            )
        )

    def _refuse_flags(self, tag: bytes, error: Exception) -> None:
        """Answer a flag the store would not keep; nothing was changed."""
        if isinstance(error, KeywordLimit):
            # RFC 5530 3 LIMIT: Maildir has 26 keyword letters per folder.
            self.sendNegativeResponse(tag, b"[LIMIT] Too many keywords in mailbox")
        else:
            # RFC 3501 2.3.2: clients cannot invent system flags; a keyword is an atom.
            self.sendBadResponse(tag, b"Invalid flag: " + reply_text(error))

    def _failed(self, failure: Failure, tag: bytes, command: bytes) -> None:
        """The tagged answer to a command whose store work failed."""
        if self._selected_gone(failure.value):
            return
        if failure.check(InvalidFlag, KeywordLimit):
            self._refuse_flags(tag, failure.value)
            return
        log.failure("imap {command} failed", failure, command=command)
        self.sendNegativeResponse(tag, command + b" failed: server error")

    # -- selected state ----------------------------------------------------------

    def _in_range(self, tag: bytes, messages: imap4.MessageSet, uid: int) -> bool:
        """Whether *messages* names only existing sequence numbers; else a BAD.

        RFC 3501 9 (seq-number): a sequence number above EXISTS, or ``*``
        in an empty mailbox, is answered with BAD.  UIDs that do not exist
        are simply not there (6.4.8).
        """
        if uid:
            return True
        count = self.mbox.getMessageCount()
        numbers = [n for pair in messages.ranges for n in pair]  # None is "*"
        if any(count == 0 if n is None else n > count for n in numbers):
            self.sendBadResponse(tag, b"Invalid messageset: no such message")
            return False
        return True

    def do_FETCH(self, tag: bytes, messages: imap4.MessageSet, query: list[Any], uid: int = 0) -> None:
        """FETCH (RFC 3501 6.4.5); non-PEEK body fetches set \\Seen."""
        if not self._in_range(tag, messages, uid):
            return
        mbox = self.mbox
        mark_seen = mbox.isWriteable() and needs_seen(query)
        items = with_flags(query) if mark_seen else list(query)
        pairs = mbox.fetch(messages, bool(uid))

        def produce() -> Iterator[Any]:
            for seq, message in pairs:
                try:
                    if mark_seen and "\\Seen" not in message.flags:
                        seen = _Outcome(mbox.set_flags(message, set(message.flags) | {"\\Seen"}))
                        yield seen.done
                        seen.get()
                    data = yield from _with_content(mbox, message, partial(render, seq, message, items, bool(uid)))
                except MessageGone:
                    continue  # expunged by another session meanwhile
                self.transport.write(data)
                yield None

        fetched = self._scheduler(produce())
        self._answer(fetched, tag, b"FETCH", lambda _: self.sendPositiveResponse(tag, b"FETCH completed"))

    def do_STORE(self, tag: bytes, messages: imap4.MessageSet, mode: bytes, flags: list[bytes], uid: int = 0) -> None:
        """STORE (RFC 3501 6.4.6); refused in a mailbox opened with EXAMINE.

        Not Twisted's: its errback turns every store error into ``BAD
        Server error``, where a bad flag is the client's BAD and a full
        keyword table our NO, and a deleted folder ends the session.
        """
        if not self._in_range(tag, messages, uid):
            return
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] Mailbox is read-only")
            return
        item = mode.upper()
        silent = item.endswith(b".SILENT")
        item = item.removesuffix(b".SILENT")
        if item not in (b"FLAGS", b"+FLAGS", b"-FLAGS"):  # RFC 3501 9: store-att-flags
            self.sendBadResponse(tag, b"Invalid STORE data item")
            return
        sign = {b"+": 1, b"-": -1}.get(item[:1], 0)
        mbox = self.mbox

        def stored(changed: dict[int, list[str]]) -> None:
            if not silent:
                for seq, shown in changed.items():
                    # RFC 3501 6.4.8: UID STORE responses include the UID.
                    tail = b" UID %d" % mbox.getUID(seq) if uid else b""
                    self.sendUntaggedResponse(b"%d FETCH (FLAGS (%s)%s)" % (seq, " ".join(shown).encode(), tail))
            self.sendPositiveResponse(tag, b"STORE completed")

        self._answer(mbox.store(messages, flags, sign, bool(uid)), tag, b"STORE", stored)

    def do_EXPUNGE(self, tag: bytes, messages: imap4.MessageSet | None = None, uid: int = 0) -> None:
        """EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1).

        Not Twisted's, which has no UID form and answers a store error with
        ``BAD``.  Resyncs first, so a folder deleted meanwhile ends the
        session rather than answering OK.
        """
        if (messages is None) == bool(uid):
            self.sendBadResponse(tag, b"UID EXPUNGE needs a UID set; EXPUNGE takes no arguments")
            return
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] Mailbox is read-only")
            return
        mbox = self.mbox

        def expunged(numbers: list[int]) -> None:
            for number in numbers:
                self.sendUntaggedResponse(b"%d EXPUNGE" % number)
            self.sendPositiveResponse(tag, b"EXPUNGE completed")

        d = self._sync().addCallback(lambda _: mbox.expunge(messages))
        self._answer(d, tag, b"EXPUNGE", expunged)

    def do_CLOSE(self, tag: bytes) -> None:
        """CLOSE (RFC 3501 6.4.2): silent expunge unless EXAMINEd, then deselect."""

        def closed(_: object) -> None:
            self._deselect()
            self.sendPositiveResponse(tag, b"CLOSE completed")

        mbox = self.mbox
        if not mbox.isWriteable():
            closed(None)
            return
        self._answer(self._sync().addCallback(lambda _: mbox.expunge()), tag, b"CLOSE", closed)

    def do_UID(self, tag: bytes, command: bytes, line: bytes) -> None:
        """UID COPY/FETCH/STORE/SEARCH, and UID EXPUNGE (RFC 4315 2.1)."""
        command = command.upper()
        if command not in (b"COPY", b"FETCH", b"STORE", b"SEARCH", b"EXPUNGE"):
            raise imap4.IllegalClientResponse("Unknown UID command")
        self.dispatchCommand(tag, command, line, uid=1)

    def do_SEARCH(self, tag: bytes, charset: bytes | None, query: list[Any], uid: int = 0) -> None:
        """SEARCH (RFC 3501 6.4.4); ``* SEARCH`` is sent even with no match."""
        if charset is not None and charset.upper() not in (b"UTF-8", b"US-ASCII"):
            self.sendNegativeResponse(tag, b"[BADCHARSET (UTF-8 US-ASCII)] Unsupported charset")
            return
        mbox = self.mbox
        count = mbox.getMessageCount()
        try:
            matches = compile_search(query, count, mbox.getUID(count) if count else 0)
        except SearchError as e:
            self.sendBadResponse(tag, b"Invalid search: " + str(e).encode("ascii", "replace"))
            return
        hits: list[int] = []

        def scan() -> Iterator[Any]:
            for seq, message in mbox.all_messages():
                try:
                    if (yield from _with_content(mbox, message, partial(matches, seq, message))):
                        hits.append(message.uid if uid else seq)
                except MessageGone:
                    continue

        def found(_: object) -> None:
            self.sendUntaggedResponse(b" ".join([b"SEARCH"] + [b"%d" % h for h in hits]))
            self.sendPositiveResponse(tag, b"SEARCH completed")

        self._answer(self._scheduler(scan()), tag, b"SEARCH", found)

    def do_COPY(self, tag: bytes, messages: imap4.MessageSet, mailbox: bytes, uid: int = 0) -> None:
        """COPY (RFC 3501 6.4.7): ``[TRYCREATE]`` when the target is missing."""
        if not self._in_range(tag, messages, uid):
            return
        mbox = self.mbox

        def copy(target: Folder) -> defer.Deferred[None]:
            # Sync first: copying out of a folder deleted meanwhile would "succeed" empty.
            d = self._sync()
            d.addCallback(lambda _: mbox.folder.copy([u for _, u in mbox.select(messages, bool(uid))], target))
            return d.addCallback(
                lambda pairs: self.sendPositiveResponse(
                    tag, self._copyuid(target.uidvalidity, pairs) + b"COPY completed"
                )
            )

        self._in_folder(tag, mailbox, b"[TRYCREATE] No such mailbox", b"COPY", copy)

    @staticmethod
    def _copyuid(uidvalidity: int, pairs: list[tuple[int, int]]) -> bytes:
        """``[COPYUID v src dst] `` (RFC 4315 3), or nothing when nothing was copied.

        A uid-set needs at least one UID, so an empty copy has no code.
        """
        if not pairs:
            return b""
        src, dst = _uid_set([s for s, _ in pairs]), _uid_set([d for _, d in pairs])
        return b"[COPYUID %d %s %s] " % (uidvalidity, src, dst)

    # -- the folder tree: the account's Deferreds -----------------------------------

    def do_CREATE(self, tag: bytes, name: bytes) -> None:
        """CREATE (RFC 3501 6.3.3)."""
        d = self.account.create(imap4._parseMbox(name))
        self._tree_command(d, tag, b"Mailbox created", b"creating mailbox")

    def do_DELETE(self, tag: bytes, name: bytes) -> None:
        """DELETE (RFC 3501 6.3.4); never INBOX."""
        folder = imap4._parseMbox(name)
        if folder.lower() == "inbox":
            self.sendNegativeResponse(tag, b"You cannot delete the inbox")
            return
        self._tree_command(self.account.delete(folder), tag, b"Mailbox deleted", b"deleting mailbox")

    def do_RENAME(self, tag: bytes, oldname: bytes, newname: bytes) -> None:
        """RENAME (RFC 3501 6.3.5); INBOX is neither renamed nor a new name, as in Twisted."""
        old, new = imap4._parseMbox(oldname), imap4._parseMbox(newname)
        if old.lower() == "inbox" or new.lower() == "inbox":
            self.sendNegativeResponse(tag, b"You cannot rename the inbox, or rename another mailbox to inbox.")
            return
        self._tree_command(self.account.rename(old, new), tag, b"Mailbox renamed", b"renaming mailbox")

    def do_SUBSCRIBE(self, tag: bytes, name: bytes) -> None:
        """SUBSCRIBE (RFC 3501 6.3.6)."""
        d = self.account.subscribe(imap4._parseMbox(name))
        self._tree_command(d, tag, b"Subscribed", b"subscribing to mailbox")

    def do_UNSUBSCRIBE(self, tag: bytes, name: bytes) -> None:
        """UNSUBSCRIBE (RFC 3501 6.3.7)."""
        d = self.account.unsubscribe(imap4._parseMbox(name))
        self._tree_command(d, tag, b"Unsubscribed", b"unsubscribing from mailbox")

    def _tree_command(self, d: defer.Deferred[Any], tag: bytes, done: bytes, doing: bytes) -> None:
        """OK *done*, the account's ``NO [CODE] text``, or BAD for a server fault (Twisted's answers)."""

        def failed(failure: Failure) -> None:
            if failure.check(imap4.MailboxException):
                self.sendNegativeResponse(tag, reply_text(failure.value))
            else:
                log.failure("imap {doing} failed", failure, doing=doing.decode())
                self.sendBadResponse(tag, b"Server error encountered while " + doing)

        d.addCallbacks(lambda _: self.sendPositiveResponse(tag, done), failed)

    # -- dispatch tables: Twisted looks handlers up as <state>_<COMMAND> ---------

    A, P = IMAP4Server, CommandParser  # Twisted's parsers and handlers; ours (parsing.py)
    unauth_STARTTLS = (do_STARTTLS,)
    unauth_LOGIN = (do_LOGIN, P.arg_astring, A.arg_finalastring)
    unauth_AUTHENTICATE = (do_AUTHENTICATE, A.arg_atom)
    unauth_NOOP = auth_NOOP = select_NOOP = logout_NOOP = (do_NOOP,)
    select_CHECK = (do_CHECK,)
    auth_IDLE = select_IDLE = (do_IDLE,)
    auth_SELECT = select_SELECT = (_selectWork, P.arg_mailbox, 1, b"SELECT")
    auth_EXAMINE = select_EXAMINE = (_selectWork, P.arg_mailbox, 0, b"EXAMINE")
    auth_CREATE = select_CREATE = (do_CREATE, P.arg_mailbox)
    auth_DELETE = select_DELETE = (do_DELETE, P.arg_mailbox)
    auth_RENAME = select_RENAME = (do_RENAME, P.arg_mailbox, P.arg_mailbox)
    auth_SUBSCRIBE = select_SUBSCRIBE = (do_SUBSCRIBE, P.arg_mailbox)
    auth_UNSUBSCRIBE = select_UNSUBSCRIBE = (do_UNSUBSCRIBE, P.arg_mailbox)
    auth_LIST = select_LIST = (_listWork, P.arg_mailbox, P.arg_mailbox, 0, b"LIST")
    auth_LSUB = select_LSUB = (_listWork, P.arg_mailbox, P.arg_mailbox, 1, b"LSUB")
    auth_STATUS = select_STATUS = (do_STATUS, P.arg_mailbox, P.arg_plist)
    auth_APPEND = select_APPEND = (do_APPEND, P.arg_mailbox, A.opt_plist, A.opt_datetime, P.arg_literal)
    select_FETCH = (do_FETCH, P.arg_seqset, P.arg_fetchatt)
    select_STORE = (do_STORE, P.arg_seqset, A.arg_atom, A.arg_flaglist)
    select_SEARCH = (do_SEARCH, P.opt_charset, P.arg_searchkeys)
    select_COPY = (do_COPY, P.arg_seqset, P.arg_mailbox)
    select_EXPUNGE = (do_EXPUNGE, P.opt_uidset)
    select_CLOSE = (do_CLOSE,)
    select_UID = (do_UID, A.arg_atom, A.arg_line)
    del A, P


def make_factory(ctx: ServerContext, kind: str) -> ServerFactory:
    """The factory for an ``imap`` (STARTTLS) or ``imaps`` (implicit TLS) listener."""
    if kind not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener kind: {kind!r}")
    return ServerFactory.forProtocol(partial(IMAPServer, ctx, kind == "imaps"))


def account_factory(ctx: ServerContext) -> Callable[[str], Account]:
    """What the realm calls for ``imap4.IAccount``: address -> avatar."""
    return lambda address: Account(ctx.store.user(address))

"""The IMAP4rev1 protocol: Twisted's ``IMAP4Server`` with its defects fixed.

Twisted parses commands; this subclass decides what they do.  What it
changes (see ``TWISTED-NOTES.md`` section 3):

* TLS: LOGINDISABLED/STARTTLS before TLS, AUTH=PLAIN only after it (or on
  loopback when configured); plaintext pipelined behind STARTTLS is
  discarded (RFC 3501 6.2.1).
* Commands run one at a time, so replies and unsolicited updates never
  interleave with a command still in progress; lines received meanwhile
  wait (and the socket is paused if too many wait).
* Lines up to ``limits.imap_max_line_length`` (Twisted drops the connection
  past 16 KiB); longer ones get BAD.  APPEND literals over
  ``limits.imap_max_literal_size`` are refused before the ``+``.
* SELECT reports PERMANENTFLAGS, UNSEEN, UIDNEXT; FETCH, SEARCH, COPY,
  APPEND, STATUS, LIST and IDLE are our own (see the modules they use).
* Updates from other sessions (EXISTS, FETCH FLAGS, and EXPUNGE, which
  Twisted cannot express) are sent at the end of commands, or at once
  while IDLE.
"""

from __future__ import annotations

import datetime
from collections import deque
from functools import partial
from typing import Any, Callable, Iterator

from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import ISSLTransport, ITCPTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import imap4
from twisted.mail.imap4 import IMAP4Server
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.context import ServerContext
from mailsrv.imap.account import Account
from mailsrv.imap.fetch import needs_seen, render, with_flags
from mailsrv.imap.mailbox import IUpdateListener, Mailbox, normalize_flag, parse_sequence_set
from mailsrv.imap.search import SearchError, compile_search
from mailsrv.imap.structure import encode
from mailsrv.store import InvalidFolderName, MessageGone, NoSuchFolder
from mailsrv.tls import is_secure

log = Logger()

#: Commands that use sequence numbers: no EXPUNGE may follow them
#: (RFC 3501 7.4.1), unless given as UID commands.
_NO_EXPUNGE_AFTER = frozenset({b"FETCH", b"STORE", b"SEARCH", b"COPY"})
#: Lines queued behind a running command before we stop reading the socket.
_MAX_QUEUED_LINES = 1000
_PERMANENT_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"


def _cooperate(steps: Iterator[Any]) -> defer.Deferred[Any]:
    """Run a long FETCH in time slices so other sessions keep being served."""
    return task.cooperate(steps).whenDone()


class _AuditedPortal:
    """The portal, logging every login attempt with the client IP (DESIGN.md)."""

    def __init__(self, portal: Portal, peer: Callable[[], str]) -> None:
        self._portal = portal
        self._peer = peer

    def login(self, credentials: Any, mind: Any, *interfaces: Any) -> defer.Deferred[Any]:
        user = getattr(credentials, "username", b"")
        user = user.decode("utf-8", "replace") if isinstance(user, bytes) else str(user)
        ip = self._peer()

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


@implementer(IUpdateListener)
class IMAPServer(IMAP4Server):
    """One IMAP connection."""

    IDLE_POLL_SECONDS = 10  # finds changes made by another node (shared store)

    def __init__(
        self, ctx: ServerContext, implicit_tls: bool,
        scheduler: Callable[[Iterator[Any]], defer.Deferred[Any]] = _cooperate,
    ) -> None:
        super().__init__(
            chal={b"PLAIN": imap4.PLAINCredentials},
            contextFactory=None if implicit_tls else ctx.tls,
            scheduler=scheduler,
        )
        self.config = ctx.config
        self.portal = _AuditedPortal(ctx.portal, self._peer_ip)
        self.MAX_LENGTH = ctx.config.limits.imap_max_line_length
        self.IDENT = ctx.config.hostname.encode("ascii", "replace") + b" IMAP4rev1 ready"
        self._lines: deque[bytes] = deque()
        self._running: tuple[bytes, bytes, bool] | None = None
        self._pumping = False
        self._discarding = False
        self._reparse = False
        self._command_tag: bytes | None = None
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
        return caps

    def do_STARTTLS(self, tag: bytes) -> None:
        """Start TLS, forgetting anything the client pipelined in plaintext."""
        if self.startedTLS or ISSLTransport.providedBy(self.transport):
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

    # -- reading lines: limits and one command at a time ---------------------------

    def dataReceived(self, data: bytes) -> None:
        """Line splitting, plus the tail of an over-long line thrown away."""
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
        super().dataReceived(data)
        while self._reparse:
            self._reparse = False
            super().dataReceived(b"")

    def lineLengthExceeded(self, line: bytes) -> None:
        """BAD for a line over the limit; the connection survives (not so in Twisted)."""
        tag = line.split(b" ", 1)[0]
        self.sendBadResponse(tag if 0 < len(tag) <= 64 else None, b"Command line too long")
        end = line.find(b"\n")
        if end < 0:
            self._discarding = True
        else:
            self._buffer = line[end + 1 :]  # what followed the long line
            self._reparse = True

    def lineReceived(self, line: bytes) -> None:
        """Queue the line; it runs when no other command is running."""
        self._lines.append(line)
        if len(self._lines) > _MAX_QUEUED_LINES:
            self.pauseProducing()
        self._pump()

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            # A running command may itself wait for a line (an AUTHENTICATE
            # response, IDLE's DONE, a literal): those go through.
            while self._lines and (self._running is None or self.parseState != "command"):
                super().lineReceived(self._lines.popleft())
        finally:
            self._pumping = False
        if self.paused and len(self._lines) < _MAX_QUEUED_LINES // 2:
            self.resumeProducing()

    def parse_command(self, line: bytes) -> Any:
        """Remember the tag for replies sent while arguments are parsed."""
        self._command_tag = line.split(None, 1)[0] if line.strip() else None
        return super().parse_command(line)

    def lookupCommand(self, cmd: bytes) -> Any:
        """Wrap each handler so the session knows a command is running."""
        entry = super().lookupCommand(cmd)
        if entry is None:
            return None
        handler = entry[0]

        def run(server: IMAPServer, tag: bytes, *args: Any, **kwargs: Any) -> Any:
            server._running = (tag, cmd, bool(kwargs.get("uid")))
            try:
                return handler(server, tag, *args, **kwargs)
            except (imap4.IllegalClientResponse, imap4.IllegalOperation, imap4.IllegalMailboxEncoding):
                raise  # Twisted answers these with a tagged BAD/NO
            except Exception:
                log.failure("imap command {cmd} failed", cmd=cmd)
                server.sendBadResponse(tag, b"Server error")

        return (run,) + tuple(entry[1:])

    def _tagged(self, state: bytes, tag: bytes | None, message: bytes) -> None:
        """A tagged reply: owed updates first, then the next queued command."""
        finishing = tag is not None and self._running is not None and tag == self._running[0]
        if finishing:
            assert self._running is not None
            _, cmd, uid = self._running
            self._flush_updates(allow_expunge=uid or cmd not in _NO_EXPUNGE_AFTER)
        self._respond(state, tag, message)
        if finishing:
            self._running = None
            self._pump()

    def sendPositiveResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        self._tagged(b"OK", tag, message)

    def sendNegativeResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        self._tagged(b"NO", tag, message)

    def sendBadResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        self._tagged(b"BAD", tag, message)

    def sendContinuationRequest(self, msg: bytes = b"Ready for additional command text") -> None:
        """``+ text``: RFC 3501 9 requires the space even for an empty challenge."""
        self.sendLine(b"+ " + (msg or b""))

    def _fileLiteral(self, size: int) -> defer.Deferred[Any]:
        """Refuse an APPEND literal over the limit before asking for it."""
        if size > self.config.limits.imap_max_literal_size:
            # RFC 3501 7.5: a NO instead of "+" tells the client not to send
            # the literal; RFC 7889/4469 name the code.  The command ends
            # here, so the Deferred Twisted waits on is never fired.
            self.sendNegativeResponse(self._command_tag, b"[TOOBIG] Message too large")
            return defer.Deferred()
        return super()._fileLiteral(size)

    def arg_seqset(self, line: bytes) -> tuple[imap4.MessageSet, bytes]:
        """A sequence set, parsed in linear time (see ``parse_sequence_set``)."""
        token, _, rest = line.partition(b" ")
        return parse_sequence_set(token), rest

    def arg_fetchatt(self, line: bytes) -> tuple[list[Any], bytes]:
        """FETCH items; Twisted's parser raises bare exceptions: make them BAD."""
        try:
            return super().arg_fetchatt(line)
        except imap4.IllegalClientResponse:
            raise
        except Exception as e:
            raise imap4.IllegalClientResponse(f"bad fetch attribute: {e}") from None

    # -- unsolicited updates ---------------------------------------------------------

    def updatesPending(self) -> None:
        """The store changed the selected folder: tell an idling client now."""
        if self.parseState == "idle":
            self._flush_updates(allow_expunge=True)

    def _flush_updates(self, allow_expunge: bool) -> None:
        if self.mbox is None:
            return
        lines = self.mbox.take_updates(allow_expunge)
        if lines:
            self.transport.write(b"".join(b"* " + line + b"\r\n" for line in lines))

    def _sync(self) -> None:
        """Look for changes made behind the store's back (another node)."""
        if self.mbox is not None:
            self.mbox.folder.sync()

    def do_NOOP(self, tag: bytes) -> None:
        """NOOP: the polling point for updates (RFC 3501 6.1.2)."""
        self._sync()
        self.sendPositiveResponse(tag, b"NOOP completed")

    def checkpoint(self) -> None:
        """CHECK (RFC 3501 6.4.1): the store is always durable; just resync."""
        self._sync()

    def do_IDLE(self, tag: bytes) -> None:
        """IDLE (RFC 2177): push updates until the client says DONE."""
        self._sync()
        self.sendContinuationRequest(b"idling")
        self.parseTag = tag
        self.lastState = self.parseState
        self.parseState = "idle"
        self._flush_updates(allow_expunge=True)
        self._idle_poll = self.callLater(self.IDLE_POLL_SECONDS, self._poll)

    def _poll(self) -> None:
        self._sync()
        self._idle_poll = self.callLater(self.IDLE_POLL_SECONDS, self._poll)

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

    def _folder(self, tag: bytes, name: bytes, missing: bytes) -> Any:
        """The store folder named by the client, or None after a tagged NO."""
        try:
            return self.account.folder(imap4._parseMbox(name))
        except NoSuchFolder:
            self.sendNegativeResponse(tag, missing)
        except InvalidFolderName:
            self.sendNegativeResponse(tag, b"[CANNOT] Invalid mailbox name")
        return None

    def _selectWork(self, tag: bytes, name: bytes, rw: int, cmdName: bytes) -> None:
        """SELECT/EXAMINE with every response RFC 3501 6.3.1 lists."""
        self._deselect()  # 6.3.1: even a failed SELECT leaves none selected
        folder = self._folder(tag, name, b"[NONEXISTENT] No such mailbox")
        if folder is None:
            return
        mbox = Mailbox(folder, bool(rw))
        mbox.addListener(self)
        self.mbox, self.state = mbox, "select"
        lines = [
            b"FLAGS (" + " ".join(mbox.getFlags()).encode() + b")",
            b"OK [PERMANENTFLAGS " + (_PERMANENT_FLAGS if rw else b"()") + b"] Flags permitted",
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
        if not sub and not pattern:
            # 6.3.8: an empty pattern asks for the hierarchy delimiter.
            lines = [b'LIST (\\Noselect) "/" ""']
        elif sub:
            lines = [b'LSUB () "/" ' + _mailbox_name(n) for n in self.account.listSubscribed(reference, pattern)]
        else:
            lines = [
                b"LIST (" + " ".join(flags).encode() + b') "/" ' + _mailbox_name(n)
                for n, flags in self.account.listMailboxes(reference, pattern)
            ]
        self.transport.write(b"".join(b"* " + line + b"\r\n" for line in lines))
        self.sendPositiveResponse(tag, cmdName + b" completed")

    def do_STATUS(self, tag: bytes, mailbox: bytes, names: list[bytes]) -> None:
        """STATUS (RFC 3501 6.3.10) straight from the folder, no SELECT."""
        folder = self._folder(tag, mailbox, b"[NONEXISTENT] No such mailbox")
        if folder is None:
            return
        folder.sync()
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

    def do_APPEND(self, tag: bytes, mailbox: bytes, flags: list[bytes] | None, date: bytes | None, message: Any) -> None:
        """APPEND (RFC 3501 6.3.11): byte-exact, durable before the OK."""
        folder = self._folder(tag, mailbox, b"[TRYCREATE] No such mailbox")
        if folder is None:
            return
        try:
            internaldate = _parse_date(date) if date else None
        except (UnicodeDecodeError, ValueError):
            self.sendBadResponse(tag, b"Invalid date-time")
            return
        d = folder.append(message.read(), [normalize_flag(f) for f in flags or ()], internaldate)
        d.addCallbacks(
            lambda uid: self.sendPositiveResponse(tag, b"APPEND completed"),
            lambda f: self._failed(f, tag, b"APPEND"),
        )

    def _failed(self, failure: Failure, tag: bytes, command: bytes) -> None:
        log.failure("imap {command} failed", failure, command=command)
        self.sendNegativeResponse(tag, command + b" failed: server error")

    # -- selected state ----------------------------------------------------------

    def do_FETCH(self, tag: bytes, messages: imap4.MessageSet, query: list[Any], uid: int = 0) -> None:
        """FETCH (RFC 3501 6.4.5); non-PEEK body fetches set \\Seen."""
        mbox = self.mbox
        mark_seen = mbox.isWriteable() and needs_seen(query)
        items = with_flags(query) if mark_seen else list(query)
        pairs = mbox.fetch(messages, bool(uid))

        def produce() -> Iterator[None]:
            for seq, message in pairs:
                try:
                    if mark_seen and "\\Seen" not in message.flags:
                        mbox.set_flags(message, set(message.flags) | {"\\Seen"})
                    data = render(seq, message, items, bool(uid))
                except MessageGone:
                    continue  # expunged by another session meanwhile
                self.transport.write(data)
                yield None

        self._scheduler(produce()).addCallbacks(
            lambda _: self.sendPositiveResponse(tag, b"FETCH completed"),
            lambda f: self._failed(f, tag, b"FETCH"),
        )

    def do_STORE(self, tag: bytes, messages: imap4.MessageSet, mode: bytes, flags: list[bytes], uid: int = 0) -> None:
        """STORE (RFC 3501 6.4.6); refused in a mailbox opened with EXAMINE."""
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] Mailbox is read-only")
            return
        super().do_STORE(tag, messages, mode, flags, uid=uid)

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
        hits = []
        for seq, message in mbox.all_messages():
            try:
                if matches(seq, message):
                    hits.append(message.uid if uid else seq)
            except MessageGone:
                continue
        self.sendUntaggedResponse(b" ".join([b"SEARCH"] + [b"%d" % h for h in hits]))
        self.sendPositiveResponse(tag, b"SEARCH completed")

    def do_COPY(self, tag: bytes, messages: imap4.MessageSet, mailbox: bytes, uid: int = 0) -> None:
        """COPY (RFC 3501 6.4.7): ``[TRYCREATE]`` when the target is missing."""
        target = self._folder(tag, mailbox, b"[TRYCREATE] No such mailbox")
        if target is None:
            return
        uids = [u for _, u in self.mbox.select(messages, bool(uid))]
        self.mbox.folder.copy(uids, target).addCallbacks(
            lambda pairs: self.sendPositiveResponse(tag, b"COPY completed"),
            lambda f: self._failed(f, tag, b"COPY"),
        )

    # -- dispatch tables: Twisted looks handlers up as <state>_<COMMAND> ---------

    A = IMAP4Server
    unauth_STARTTLS = (do_STARTTLS,)
    unauth_LOGIN = (do_LOGIN, A.arg_astring, A.arg_finalastring)
    unauth_AUTHENTICATE = (do_AUTHENTICATE, A.arg_atom)
    unauth_NOOP = auth_NOOP = select_NOOP = logout_NOOP = (do_NOOP,)
    auth_IDLE = select_IDLE = (do_IDLE,)
    auth_SELECT = select_SELECT = (_selectWork, A.arg_astring, 1, b"SELECT")
    auth_EXAMINE = select_EXAMINE = (_selectWork, A.arg_astring, 0, b"EXAMINE")
    auth_LIST = select_LIST = (_listWork, A.arg_astring, A.arg_astring, 0, b"LIST")
    auth_LSUB = select_LSUB = (_listWork, A.arg_astring, A.arg_astring, 1, b"LSUB")
    auth_STATUS = select_STATUS = (do_STATUS, A.arg_astring, A.arg_plist)
    auth_APPEND = select_APPEND = (do_APPEND, A.arg_astring, A.opt_plist, A.opt_datetime, A.arg_literal)
    select_FETCH = (do_FETCH, arg_seqset, arg_fetchatt)
    select_STORE = (do_STORE, arg_seqset, A.arg_atom, A.arg_flaglist)
    select_SEARCH = (do_SEARCH, A.opt_charset, A.arg_searchkeys)
    select_COPY = (do_COPY, arg_seqset, A.arg_finalastring)
    del A


def make_factory(ctx: ServerContext, kind: str) -> ServerFactory:
    """The factory for an ``imap`` (STARTTLS) or ``imaps`` (implicit TLS) listener."""
    if kind not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener kind: {kind!r}")
    return ServerFactory.forProtocol(partial(IMAPServer, ctx, kind == "imaps"))


def account_factory(ctx: ServerContext) -> Callable[[str], Account]:
    """What the realm calls for ``imap4.IAccount``: address -> avatar."""
    return lambda address: Account(ctx.store.user(address))

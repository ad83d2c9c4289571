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
* Arguments are parsed by our own dispatcher and parsers (``syntax.py``,
  ``search.SearchParser``): tags and command names must be 7-bit atoms,
  literal sizes plain digits, quoted strings unescape ``\\"``/``\\\\``,
  mailbox names canonical modified UTF-7 (else ``NO [CANNOT]``), SEARCH
  nesting is capped; errors never echo Python reprs or log tracebacks.
* SELECT reports PERMANENTFLAGS, UNSEEN, UIDNEXT; FETCH, SEARCH, COPY,
  APPEND, STATUS, LIST and IDLE are our own (see the modules they use).
* Updates from other sessions (EXISTS, FETCH FLAGS, and EXPUNGE, which
  Twisted cannot express) are sent at the end of commands, or at once
  while IDLE.
"""

from __future__ import annotations

import datetime
import re
from collections import deque
from functools import partial
from typing import Any, Callable, Iterator

from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.interfaces import ISSLTransport, ITCPTransport
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
from mailsrv.imap.mailbox import IUpdateListener, Mailbox, normalize_flag, parse_sequence_set
from mailsrv.imap.search import SearchError, SearchParser, compile_search
from mailsrv.imap.structure import encode
from mailsrv.imap.syntax import is_atom, is_tag, literal_size, mailbox_name, read_quoted
from mailsrv.store import InvalidFlag, InvalidFolderName, KeywordLimit, MessageGone, NoSuchFolder
from mailsrv.tls import is_secure

log = Logger()

#: Commands that use sequence numbers: no EXPUNGE may follow them
#: (RFC 3501 7.4.1), unless given as UID commands.
_NO_EXPUNGE_AFTER = frozenset({b"FETCH", b"STORE", b"SEARCH", b"COPY"})
#: Lines queued behind a running command before we stop reading the socket.
_MAX_QUEUED_LINES = 1000
_PERMANENT_FLAGS = b"(\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)"
#: RFC 3501 9: partial = "<" number "." nz-number ">" (it follows a "]").
_PARTIAL = re.compile(rb"\]<([^>]*)>")
_PARTIAL_SPEC = re.compile(rb"[0-9]+\.[1-9][0-9]*")


def _reply_text(error: Exception) -> bytes:
    """An exception's message for a reply: printable ASCII, never a ``b'...'`` repr."""
    text = error.args[0] if error.args else ""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return re.sub(r"[^ -~]", "?", str(text))[:200].encode("ascii")


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
class IMAPServer(IMAP4Server):
    """One IMAP connection."""

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
        caps[b"UIDPLUS"] = None  # RFC 4315: APPENDUID, COPYUID, UID EXPUNGE
        caps[b"CHILDREN"] = None  # RFC 3348: LIST sends \HasChildren/\HasNoChildren
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
        """Check tag and command name, and remember the tag for replies sent
        while arguments are parsed.

        RFC 3501 9: both are 7-bit (a command name is an atom); Twisted
        decodes the name as ASCII and answers other bytes with ``* BAD
        Server error`` and a traceback.
        """
        words = line.split(None, 2)
        self._command_tag = words[0] if words else None
        if words and not is_tag(words[0]):
            self.sendBadResponse(None, b"Invalid tag")  # nothing we may echo as a tag
            return None
        if len(words) > 1 and not is_atom(words[1]):
            self.sendBadResponse(words[0], b"Invalid command name")
            return None
        return super().parse_command(line)

    def dispatchCommand(self, tag: bytes, cmd: bytes, rest: bytes | None, uid: int | None = None) -> None:
        """Parse the arguments of *cmd*, then run it (Twisted's, minus its faults).

        Twisted's dispatcher puts ``repr()`` of the client's bytes into its
        BAD texts and answers any other exception a parser raises with
        ``BAD Server error: <text>`` and a traceback in the log.  Here
        syntax errors get a plain BAD (RFC 3501 7.1.5), bad mailbox names
        ``NO [CANNOT]``, and only real faults are logged.
        """
        entry = self.lookupCommand(cmd)
        if entry is None:
            self.sendBadResponse(tag, b"Unsupported command")
            return
        self._parse_arguments(tag, entry[0], [self, tag], list(entry[1:]), rest or b"", uid)

    def _parse_arguments(
        self, tag: bytes, handler: Callable[..., Any], args: list[Any], parsers: list[Any], line: bytes,
        uid: int | None,
    ) -> None:
        """Run the dispatch table's parsers over *line*, then the handler.

        A parser returns ``(value, rest)``, or a Deferred of that when it
        must first ask for a literal; parsing resumes when it fires.
        """
        try:
            while parsers:
                parser = parsers.pop(0)
                if not callable(parser):
                    args.append(parser)  # a constant argument from the table
                    continue
                parsed = parser(self, line)
                if isinstance(parsed, defer.Deferred):
                    parsed.addCallback(self._parsed_later, tag, handler, args, parsers, uid)
                    parsed.addErrback(self._refuse, tag)
                    return
                value, line = parsed
                args.append(value)
            if line:
                raise imap4.IllegalClientResponse("Too many arguments")
            if uid is None:
                handler(*args)
            else:
                handler(*args, uid=uid)
        except Exception:
            self._refuse(Failure(), tag)

    def _parsed_later(
        self, parsed: tuple[Any, bytes], tag: bytes, handler: Callable[..., Any], args: list[Any],
        parsers: list[Any], uid: int | None,
    ) -> None:
        value, line = parsed
        args.append(value)
        self._parse_arguments(tag, handler, args, parsers, line, uid)

    def _refuse(self, failure: Failure, tag: bytes) -> None:
        """The tagged answer to a command whose parsing or handler raised."""
        error = failure.value
        if isinstance(error, imap4.IllegalMailboxEncoding):
            self.sendNegativeResponse(tag, b"[CANNOT] Invalid mailbox name")  # RFC 3501 5.1.3
        elif isinstance(error, imap4.IllegalClientResponse):
            self.sendBadResponse(tag, b"Illegal syntax: " + _reply_text(error))
        elif isinstance(error, imap4.IllegalOperation):
            self.sendNegativeResponse(tag, b"Illegal operation: " + _reply_text(error))
        else:
            log.failure("imap command failed", failure)
            self.sendBadResponse(tag, b"Server error")

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
                raise  # _refuse answers these with a tagged BAD/NO
            except Exception as e:
                if server._selected_gone(e):
                    return None
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

    def arg_astring(self, line: bytes, final: bool = False) -> Any:
        """An astring (RFC 3501 9): quoted, literal or atom.

        Twisted ends a quoted string at the first ``"`` even after a
        backslash and keeps the backslashes; here ``\\"`` and ``\\\\`` are
        unescaped.  A literal's size must be plain digits (``{-1}`` is BAD).
        """
        line = line.strip()
        if not line:
            raise imap4.IllegalClientResponse("Missing argument")
        if line[:1] == b'"':
            value, end = read_quoted(line)
            rest = line[end:]
            if rest[:1] not in (b"", b" "):
                raise imap4.IllegalClientResponse("Missing space after quoted string")
            return value, rest[1:]
        if line[:1] == b"{":
            size = literal_size(line)
            if final and not size:
                return b"", b""  # as Twisted (twisted #9207)
            return self._stringLiteral(size)
        value, _, rest = line.partition(b" ")
        return value, rest

    def arg_mailbox(self, line: bytes) -> Any:
        """A mailbox name: an astring in canonical modified UTF-7 (RFC 3501 5.1.3).

        Checked before Twisted's ``_parseMbox`` sees it, which logs a
        traceback for raw 8-bit or broken ``&...-`` names.
        """
        parsed = self.arg_astring(line)
        if isinstance(parsed, defer.Deferred):
            return parsed.addCallback(lambda result: (mailbox_name(result[0]), result[1]))
        return mailbox_name(parsed[0]), parsed[1]

    def arg_literal(self, line: bytes) -> Any:
        """APPEND's message literal: ``{number}``, number = 1*DIGIT (RFC 3501 9)."""
        if not line:
            raise imap4.IllegalClientResponse("Missing argument")
        return self._fileLiteral(literal_size(line))

    def arg_plist(self, line: bytes) -> tuple[list[Any], bytes]:
        """A flat parenthesized list; a malformed one is BAD, not a server error."""
        try:
            return super().arg_plist(line)
        except (imap4.MismatchedNesting, imap4.MismatchedQuoting):
            raise imap4.IllegalClientResponse("Malformed list") from None

    def opt_charset(self, line: bytes) -> Any:
        """SEARCH's ``[CHARSET SP astring]``, then at least one key (RFC 3501 6.4.4, 9).

        Twisted slices ``None`` (a TypeError) for a bare ``SEARCH``.
        """
        if not line:
            raise imap4.IllegalClientResponse("Missing search criteria")
        if line[:8].upper() == b"CHARSET ":
            return self.arg_astring(line[8:])
        return None, line

    def arg_searchkeys(self, line: bytes) -> Any:
        """Search keys as nested token lists, depth-capped (``SearchParser``)."""
        return self._more_search_keys(SearchParser(), line)

    def _more_search_keys(self, parser: SearchParser, line: bytes) -> Any:
        """Feed *line*; if it ends in a literal, ask for it and go on after it."""
        try:
            size = parser.feed(line)
            if size is None:
                return parser.result(), b""
        except SearchError as e:
            raise imap4.IllegalClientResponse(str(e)) from None

        def literal(result: tuple[bytes, bytes]) -> Any:
            data, rest = result
            parser.add_literal(data)
            return self._more_search_keys(parser, rest)

        return self._stringLiteral(size).addCallback(literal)

    def arg_seqset(self, line: bytes) -> tuple[imap4.MessageSet, bytes]:
        """A sequence set, parsed in linear time (see ``parse_sequence_set``)."""
        token, _, rest = line.partition(b" ")
        return parse_sequence_set(token), rest

    def arg_fetchatt(self, line: bytes) -> tuple[list[Any], bytes]:
        """FETCH items, checked where Twisted's parser is lax (RFC 3501 9).

        Its errors are bare exceptions quoting the client's bytes; it takes
        ``<-1.5>`` as a partial and ``HEADER.FIELDS ()`` as a header list.
        """
        try:
            items, rest = super().arg_fetchatt(line)
        except imap4.IllegalClientResponse:
            raise
        except Exception:
            raise imap4.IllegalClientResponse("Invalid FETCH attribute") from None
        if any(not _PARTIAL_SPEC.fullmatch(m.group(1)) for m in _PARTIAL.finditer(line)):
            raise imap4.IllegalClientResponse("Invalid partial")  # "<" number "." nz-number ">"
        for item in items:
            header = getattr(item, "header", None)
            # header-list = "(" header-fld-name *(SP header-fld-name) ")".
            # Twisted gives a plain HEADER the fields () and a list a list.
            if header is not None and isinstance(header.fields, list) and not header.fields:
                raise imap4.IllegalClientResponse("Empty header list")
        return items, rest

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

    def _sync(self) -> None:
        """Look for changes made behind the store's back (another node).

        Raises ``NoSuchFolder`` once the selected folder was deleted; the
        command wrapper then ends the session (:meth:`_selected_gone`).
        """
        if self.mbox is not None:
            self.mbox.folder.sync()

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
        try:
            self._sync()
        except NoSuchFolder as e:
            if self._selected_gone(e):
                return
            raise
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

    @staticmethod
    def _permanent_flags(folder: Any, rw: int) -> bytes:
        """RFC 3501 7.1: ``\\*`` only while the folder can take another keyword."""
        if not rw:
            return b"()"
        return _PERMANENT_FLAGS if folder.can_add_keywords() else _PERMANENT_FLAGS.replace(b" \\*", b"")

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
        data = message.read()
        if not data:
            # POP3 cannot list an empty message, so the two protocols would
            # disagree on the mailbox; Dovecot refuses it in these words.
            self.sendNegativeResponse(tag, b"Can't save a zero byte message")
            return
        try:
            d = folder.append(data, [normalize_flag(f) for f in flags or ()], internaldate)
        except (InvalidFlag, KeywordLimit) as e:
            self._refuse_flags(tag, e)
            return
        d.addCallbacks(
            # RFC 4315 3: APPENDUID <uidvalidity> <uid> of the new message.
            lambda uid: self.sendPositiveResponse(
                tag, b"[APPENDUID %d %d] APPEND completed" % (folder.uidvalidity, uid)
            ),
            lambda f: self._failed(f, tag, b"APPEND"),
        )

    def _refuse_flags(self, tag: bytes, error: Exception) -> None:
        """Answer a flag the store would not keep; nothing was changed."""
        if isinstance(error, KeywordLimit):
            # RFC 5530 3 LIMIT: Maildir has 26 keyword letters per folder.
            self.sendNegativeResponse(tag, b"[LIMIT] Too many keywords in mailbox")
        else:
            # RFC 3501 2.3.2: clients cannot invent system flags; a keyword is an atom.
            self.sendBadResponse(tag, b"Invalid flag: " + _reply_text(error))

    def _failed(self, failure: Failure, tag: bytes, command: bytes) -> None:
        if self._selected_gone(failure.value):
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
        try:
            changed = self.mbox.store(messages, flags, sign, bool(uid))
        except (InvalidFlag, KeywordLimit) as e:
            self._refuse_flags(tag, e)
            return
        if not silent:
            for seq, shown in changed.items():
                # RFC 3501 6.4.8: UID STORE responses include the UID.
                tail = b" UID %d" % self.mbox.getUID(seq) if uid else b""
                self.sendUntaggedResponse(b"%d FETCH (FLAGS (%s)%s)" % (seq, " ".join(shown).encode(), tail))
        self.sendPositiveResponse(tag, b"STORE completed")

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
        self._sync()
        for number in self.mbox.expunge(messages):
            self.sendUntaggedResponse(b"%d EXPUNGE" % number)
        self.sendPositiveResponse(tag, b"EXPUNGE completed")

    def opt_uidset(self, line: bytes) -> tuple[imap4.MessageSet | None, bytes]:
        """The UID set of UID EXPUNGE; EXPUNGE alone has none."""
        if not line:
            return None, line
        return self.arg_seqset(line)

    def do_CLOSE(self, tag: bytes) -> None:
        """CLOSE (RFC 3501 6.4.2): silent expunge unless EXAMINEd, then deselect."""
        if self.mbox.isWriteable():
            self._sync()
            self.mbox.expunge()
        self._deselect()
        self.sendPositiveResponse(tag, b"CLOSE completed")

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
        if not self._in_range(tag, messages, uid):
            return
        target = self._folder(tag, mailbox, b"[TRYCREATE] No such mailbox")
        if target is None:
            return
        self._sync()  # copying out of a folder deleted meanwhile would "succeed" empty
        uids = [u for _, u in self.mbox.select(messages, bool(uid))]
        try:
            d = self.mbox.folder.copy(uids, target)
        except (InvalidFlag, KeywordLimit) as e:
            self._refuse_flags(tag, e)
            return
        d.addCallbacks(
            lambda pairs: self.sendPositiveResponse(tag, self._copyuid(target.uidvalidity, pairs) + b"COPY completed"),
            lambda f: self._failed(f, tag, b"COPY"),
        )

    @staticmethod
    def _copyuid(uidvalidity: int, pairs: list[tuple[int, int]]) -> bytes:
        """``[COPYUID v src dst] `` (RFC 4315 3), or nothing when nothing was copied.

        A uid-set needs at least one UID, so an empty copy has no code.
        """
        if not pairs:
            return b""
        src, dst = _uid_set([s for s, _ in pairs]), _uid_set([d for _, d in pairs])
        return b"[COPYUID %d %s %s] " % (uidvalidity, src, dst)

    # -- dispatch tables: Twisted looks handlers up as <state>_<COMMAND> ---------

    A = IMAP4Server
    unauth_STARTTLS = (do_STARTTLS,)
    unauth_LOGIN = (do_LOGIN, arg_astring, A.arg_finalastring)
    unauth_AUTHENTICATE = (do_AUTHENTICATE, A.arg_atom)
    unauth_NOOP = auth_NOOP = select_NOOP = logout_NOOP = (do_NOOP,)
    auth_IDLE = select_IDLE = (do_IDLE,)
    auth_SELECT = select_SELECT = (_selectWork, arg_mailbox, 1, b"SELECT")
    auth_EXAMINE = select_EXAMINE = (_selectWork, arg_mailbox, 0, b"EXAMINE")
    # Twisted's own handlers, with mailbox names checked by arg_mailbox.
    auth_CREATE = select_CREATE = (A.do_CREATE, arg_mailbox)
    auth_DELETE = select_DELETE = (A.do_DELETE, arg_mailbox)
    auth_RENAME = select_RENAME = (A.do_RENAME, arg_mailbox, arg_mailbox)
    auth_SUBSCRIBE = select_SUBSCRIBE = (A.do_SUBSCRIBE, arg_mailbox)
    auth_UNSUBSCRIBE = select_UNSUBSCRIBE = (A.do_UNSUBSCRIBE, arg_mailbox)
    auth_LIST = select_LIST = (_listWork, arg_mailbox, arg_mailbox, 0, b"LIST")
    auth_LSUB = select_LSUB = (_listWork, arg_mailbox, arg_mailbox, 1, b"LSUB")
    auth_STATUS = select_STATUS = (do_STATUS, arg_mailbox, arg_plist)
    auth_APPEND = select_APPEND = (do_APPEND, arg_mailbox, A.opt_plist, A.opt_datetime, arg_literal)
    select_FETCH = (do_FETCH, arg_seqset, arg_fetchatt)
    select_STORE = (do_STORE, arg_seqset, A.arg_atom, A.arg_flaglist)
    select_SEARCH = (do_SEARCH, opt_charset, arg_searchkeys)
    select_COPY = (do_COPY, arg_seqset, arg_mailbox)
    select_EXPUNGE = (do_EXPUNGE, opt_uidset)
    select_CLOSE = (do_CLOSE,)
    select_UID = (do_UID, A.arg_atom, A.arg_line)
    del A


def make_factory(ctx: ServerContext, kind: str) -> ServerFactory:
    """The factory for an ``imap`` (STARTTLS) or ``imaps`` (implicit TLS) listener."""
    if kind not in ("imap", "imaps"):
        raise ValueError(f"not an IMAP listener kind: {kind!r}")
    return ServerFactory.forProtocol(partial(IMAPServer, ctx, kind == "imaps"))


def account_factory(ctx: ServerContext) -> Callable[[str], Account]:
    """What the realm calls for ``imap4.IAccount``: address -> avatar."""
    return lambda address: Account(ctx.store.user(address))

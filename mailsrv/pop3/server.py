"""The POP3 server: RFC 1939, CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034).

Built on :mod:`mailsrv.net` rather than ``twisted.mail.pop3.POP3``, every
command of which had to be replaced: it has no STLS, advertises joke
capabilities, accepts clear-text passwords before TLS, passes ``DELE 0``
to the mailbox as index -1, and misses dot-stuffing at the first line and
at 16 KiB boundaries (docs/twisted-notes.rst, "POP3").  RETR and TOP stream
the message from its file with back-pressure (:meth:`CommandPump.drain`),
so a 50 MiB message costs one read buffer, and STAT/LIST/RSET come from the
maildrop's running totals.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterator

from twisted.cred.credentials import UsernamePassword
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.accounts.cred import PlainCredentials
from mailsrv.listeners import Kind
from mailsrv.message.wire import CHUNK, wire_chunks
from mailsrv.net import sasl
from mailsrv.net.lines import Line
from mailsrv.net.login import IUser, LoginFailed, login
from mailsrv.net.server import ProtocolFactory, ServerProtocol
from mailsrv.pop3 import replies, wire
from mailsrv.pop3.maildrop import Maildrop, MessageDeleted, NoSuchMessage, unique_id
from mailsrv.store import MessageGone, StoreError

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

log = Logger()

AUTHORIZATION = "AUTHORIZATION"
TRANSACTION = "TRANSACTION"
BOTH = (AUTHORIZATION, TRANSACTION)

_VERB = re.compile(rb"[A-Za-z]{1,20}\Z")
#: Message numbers and TOP line counts: plain decimal, no sign, no "1_0".
_NUMBER = re.compile(rb"[0-9]{1,9}\Z")
_MECHANISMS = {b"PLAIN": PlainCredentials}


@dataclass(frozen=True)
class _Syntax:
    """Where a command is valid and how its arguments are split."""

    states: tuple[str, ...]
    min_args: int = 0
    max_args: int = 0
    #: Pass everything after the verb as one argument (passwords hold spaces).
    raw: bool = False


def verb(*states: str, args: tuple[int, int] = (0, 0), raw: bool = False) -> Callable[[Any], Any]:
    """Mark a ``do_*`` method as a command valid in *states* with *args* (min, max) arguments."""

    def mark(method: Any) -> Any:
        method.pop3_syntax = _Syntax(states, args[0], args[1], raw)
        return method

    return mark


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class POP3Server(ServerProtocol):
    """One POP3 connection (listener kind ``pop3`` or ``pop3s``)."""

    protocol_name = "pop3"

    def __init__(self, ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> None:
        limits = ctx.config.limits
        super().__init__(ctx, kind, limits.max_line_length, lf_tolerant=True, idle_timeout=limits.pop3_timeout,
                         clock=clock)
        self.maildrop: Maildrop | None = None
        self._user: bytes | None = None  # from USER, waiting for PASS

    # -- replies -------------------------------------------------------------

    def ok(self, text: bytes = b"") -> None:
        """``+OK text``."""
        self.write(b"+OK " + text + b"\r\n" if text else b"+OK\r\n")

    def err(self, text: bytes) -> None:
        """``-ERR text``."""
        self.write(b"-ERR " + text + b"\r\n")

    def multiline(self, first: bytes, body: bytes) -> None:
        """``+OK first`` and an already framed body, in one write (one TCP segment when small)."""
        self.write((b"+OK " + first + b"\r\n" if first else b"+OK\r\n") + body)

    # -- connection hooks ----------------------------------------------------

    def welcome(self) -> None:
        """RFC 1939 4, without an APOP timestamp: APOP needs clear-text passwords stored."""
        self.ok(replies.GREETING)

    def refuse(self, reason: str) -> None:
        """Too many connections: a temporary error instead of the greeting."""
        self.err(replies.TOO_MANY_CONNECTIONS)

    def timed_out(self) -> None:
        """RFC 1939 3: the autologout timer closes without entering the UPDATE state."""
        self.close()

    def goodbye(self) -> None:
        """The server is shutting down: ``-ERR`` and close, without the UPDATE state (RFC 1939 6).

        Messages marked for deletion stay, as after any session that ends without QUIT.
        """
        self.err(replies.SHUTTING_DOWN)

    def line_too_long(self) -> None:
        """One ``-ERR`` per over-long line, at once."""
        self.err(replies.LINE_TOO_LONG)

    def command_failed(self, failure: Failure) -> None:
        """A bug or a disk error: ``-ERR [SYS/TEMP]``, and the session goes on."""
        log.failure("POP3 command failed", failure, client_ip=self.session.peer_ip)
        self.err(replies.TEMPORARY)

    def ended(self, reason: Failure) -> None:
        """End without the UPDATE state: DELE marks are forgotten (RFC 1939 6); the base logs out."""
        self.maildrop = None
        super().ended(reason)

    # -- dispatch ------------------------------------------------------------

    @property
    def state(self) -> str:
        """RFC 1939 3: AUTHORIZATION until a login opened the maildrop, then TRANSACTION."""
        return TRANSACTION if self.maildrop is not None else AUTHORIZATION

    async def command(self, line: bytes) -> None:
        """Check one line and run its command; any error ends as ``-ERR``, never a drop."""
        if b"\0" in line or not _is_utf8(line):
            self.err(replies.INVALID_CHARACTERS)
            return
        verb, _, rest = line.partition(b" ")
        handler = getattr(self, "do_" + verb.upper().decode(), None) if _VERB.match(verb) else None
        syntax: _Syntax | None = getattr(handler, "pop3_syntax", None)
        if handler is None or syntax is None:
            self.err(replies.UNKNOWN_COMMAND)
            return
        if self.state not in syntax.states:
            self.err(replies.WRONG_STATE)
            return
        args = ([rest] if rest else []) if syntax.raw else rest.split()
        if not syntax.min_args <= len(args) <= syntax.max_args:
            self.err(replies.WRONG_ARGUMENTS)
            return
        result = handler(*args)
        if result is not None:
            await result

    # -- AUTHORIZATION state ---------------------------------------------------

    @verb(*BOTH)
    def do_CAPA(self) -> None:
        """RFC 2449 5; the list is the same in both states, as it requires."""
        caps = [b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING"]
        if self.passwords_allowed():  # RFC 2595 2.3: no clear-text logins before TLS
            caps += [b"USER", b"SASL PLAIN"]
        if self.can_start_tls():
            caps.append(b"STLS")
        caps.append(b"IMPLEMENTATION mailsrv")
        self.multiline(replies.CAPABILITIES, b"".join(c + b"\r\n" for c in caps) + wire.TERMINATOR)

    @verb(AUTHORIZATION)
    def do_STLS(self) -> None:
        """RFC 2595 4."""
        if not self.can_start_tls():
            self.err(replies.TLS_ACTIVE)
            return
        self.ok(replies.BEGIN_TLS)
        self.start_tls()
        self._user = None

    @verb(AUTHORIZATION, args=(1, 1))
    def do_USER(self, name: bytes) -> None:
        """RFC 1939 7."""
        if not self.passwords_allowed():
            self._refuse_plaintext(name, "USER")
            return
        self._user = name
        self.ok(replies.SEND_PASS)

    @verb(AUTHORIZATION, args=(1, 1), raw=True)
    def do_PASS(self, password: bytes) -> Awaitable[None] | None:
        """RFC 1939 7; the password is the rest of the line, spaces and all."""
        user, self._user = self._user, None
        if not self.passwords_allowed():
            self._refuse_plaintext(user or b"", "USER")
            return None
        if user is None:
            self.err(replies.USER_FIRST)
            return None
        return self._login(UsernamePassword(user, password), "USER")

    @verb(AUTHORIZATION, args=(0, 2))
    def do_AUTH(self, mechanism: bytes | None = None, initial: bytes | None = None) -> Awaitable[None] | None:
        """RFC 5034; a bare ``AUTH`` lists the mechanisms, as Outlook expects."""
        if not self.passwords_allowed():
            self._refuse_plaintext(b"", "AUTH")
            return None
        if mechanism is None:
            self.multiline(b"", b"PLAIN\r\n" + wire.TERMINATOR)
            return None
        if mechanism.upper() not in _MECHANISMS:
            self.err(replies.UNSUPPORTED_MECHANISM)
            return None
        return self._sasl(mechanism.upper(), initial)

    def _refuse_plaintext(self, user: bytes, mechanism: str) -> None:
        if user:
            self.ctx.audit.login(self.session, user, mechanism, "refused", "no TLS")
        self.err(replies.PLAINTEXT_REFUSED)

    async def _ask(self, challenge: bytes) -> Line:
        # RFC 5034 4: "+" SP base64 challenge; PLAIN's is empty.
        self.write(b"+ " + base64.b64encode(challenge) + b"\r\n")
        return await self.read_line()

    async def _sasl(self, mechanism: bytes, initial: bytes | None) -> None:
        try:
            credentials = await sasl.exchange(_MECHANISMS, mechanism, initial, self._ask)
        except sasl.SaslCancelled:
            self.err(replies.AUTH_CANCELLED)  # RFC 5034 4
            return
        except sasl.SaslMalformed:
            self.err(replies.MALFORMED_PLAIN)
            return
        await self._login(credentials, mechanism.decode("ascii"))

    async def _login(self, credentials: UsernamePassword, mechanism: str) -> None:
        try:
            avatar, logout = await login(self.ctx.portal, self.ctx.audit, self.session, credentials, IUser, mechanism,
                                         self.ctx.throttle, self.clock)
        except LoginFailed as e:
            self.err(replies.LOCKED_OUT if e.locked else replies.TEMPORARY if e.temporary else replies.BAD_CREDENTIALS)
            return
        try:
            maildrop = await Maildrop.open(self.ctx.store.user(avatar.address))
        except Exception:
            logout()
            log.failure("POP3 maildrop not opened", user=avatar.address)
            self.err(replies.MAILDROP_UNAVAILABLE)
            return
        if self.hold_login(logout):
            self.maildrop = maildrop
            self.ok(replies.LOGGED_IN)

    @verb(*BOTH)
    async def do_QUIT(self) -> None:
        """RFC 1939 6: after login, QUIT enters the UPDATE state."""
        if self.maildrop is not None:
            try:
                await self.maildrop.update()
            except (OSError, StoreError):
                log.failure("POP3 UPDATE failed", client_ip=self.session.peer_ip)
                self.err(replies.NOT_ALL_REMOVED)
                self.close()
                return
        self.ok(replies.BYE)
        self.close()

    # -- TRANSACTION state -----------------------------------------------------

    def _number(self, arg: bytes) -> int | None:
        """The message number *arg* of a message not marked deleted, or None after ``-ERR``."""
        assert self.maildrop is not None
        number = int(arg) if _NUMBER.match(arg) else 0
        try:
            self.maildrop.info(number)
        except NoSuchMessage:
            self.err(replies.NO_SUCH_MESSAGE)
            return None
        except MessageDeleted:
            self.err(replies.ALREADY_DELETED % number)  # RFC 1939 5
            return None
        return number

    @verb(TRANSACTION)
    def do_STAT(self) -> None:
        """RFC 1939 5 (drop listing), from the maildrop's running totals."""
        assert self.maildrop is not None
        self.ok(b"%d %d" % (self.maildrop.count, self.maildrop.octets))

    def _listing(self, arg: bytes | None, header: bytes, value: Callable[[Any], bytes]) -> None:
        """LIST and UIDL: ``number value`` for message *arg*, else every message not marked deleted."""
        assert self.maildrop is not None
        if arg is not None:
            number = self._number(arg)
            if number is not None:
                self.ok(b"%d %s" % (number, value(self.maildrop.info(number))))
            return
        lines = b"".join(b"%d %s\r\n" % (n, value(info)) for n, info in self.maildrop.listing())
        self.multiline(header, lines + wire.TERMINATOR)

    @verb(TRANSACTION, args=(0, 1))
    def do_LIST(self, arg: bytes | None = None) -> None:
        """RFC 1939 5 (scan listings)."""
        assert self.maildrop is not None
        header = replies.SCAN_LISTING % (self.maildrop.count, self.maildrop.octets)
        self._listing(arg, header, lambda info: b"%d" % info.size)

    @verb(TRANSACTION, args=(0, 1))
    def do_UIDL(self, arg: bytes | None = None) -> None:
        """RFC 1939 7 (unique-id listings)."""
        self._listing(arg, b"", lambda info: unique_id(info.key))

    @verb(TRANSACTION, args=(1, 1))
    async def do_RETR(self, arg: bytes) -> None:
        """RFC 1939 5; the octet count is the exact wire size."""
        number = self._number(arg)
        if number is not None:
            assert self.maildrop is not None
            size = self.maildrop.info(number).size
            await self._send(number, replies.OCTETS % size, wire.stuffed)

    @verb(TRANSACTION, args=(2, 2))
    async def do_TOP(self, arg: bytes, lines: bytes) -> None:
        """RFC 1939 7."""
        if not _NUMBER.match(lines):
            self.err(replies.INVALID_LINE_COUNT)
            return
        number = self._number(arg)
        if number is not None:
            count = int(lines)
            await self._send(number, replies.TOP_FOLLOWS, lambda chunks: wire.stuffed(wire.top(chunks, count)))

    async def _send(self, number: int, first: bytes, frame: Callable[[Iterator[bytes]], Iterator[bytes]]) -> None:
        """Stream message *number*, framed by *frame*, after ``+OK first``.

        Pieces are gathered into writes of about one chunk (a small message
        and its status line go out in one write, one TCP segment), and each
        write waits until the client has read enough (back-pressure).
        """
        assert self.maildrop is not None
        try:
            stored = await self.maildrop.open_message(number)
        except MessageGone:
            self.err(replies.REMOVED_ELSEWHERE % number)
            return
        with stored:
            pending = [b"+OK " + first + b"\r\n"]
            size = 0
            for piece in frame(wire_chunks(stored.file)):
                pending.append(piece)
                size += len(piece)
                if size >= CHUNK:
                    self.write(b"".join(pending))
                    pending, size = [], 0
                    await self.drain()
            self.write(b"".join(pending))

    @verb(TRANSACTION, args=(1, 1))
    def do_DELE(self, arg: bytes) -> None:
        """RFC 1939 5: only marks; removal happens at QUIT."""
        number = self._number(arg)
        if number is not None:
            assert self.maildrop is not None
            self.maildrop.delete(number)
            self.ok(replies.DELETED % number)

    @verb(TRANSACTION)
    def do_RSET(self) -> None:
        """RFC 1939 5: unmark every message."""
        assert self.maildrop is not None
        self.maildrop.reset()
        self.ok(replies.RESET % (self.maildrop.count, self.maildrop.octets))

    @verb(TRANSACTION)
    def do_NOOP(self) -> None:
        """RFC 1939 5."""
        self.ok()


def make_factory(ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> ProtocolFactory:
    """The factory for a pop3 listener *kind* (implicit-TLS kinds are wrapped by the caller)."""
    return ProtocolFactory(POP3Server, ctx, kind, clock)

"""The POP3 commands: RFC 1939, CAPA (RFC 2449), STLS (RFC 2595), AUTH PLAIN (RFC 5034).

:class:`POP3Server` replaces every command of ``twisted.mail.pop3.POP3``
because of its defects (``../shared/TWISTED-NOTES.md`` section 2): no STLS,
joke capabilities, broken APOP, plaintext passwords before TLS, ``DELE 0``
reaching the mailbox as index -1, and dot-stuffing that misses the first
line and 16 KiB boundaries.  Line handling is in :mod:`.session`, framing
in :mod:`.wire`, the mailbox in :mod:`.maildrop`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginDenied, UnauthorizedLogin
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import pop3
from twisted.mail.imap4 import IllegalClientResponse
from twisted.python.failure import Failure

from mailsrv import tls
from mailsrv.accounts.cred import PlainCredentials
from mailsrv.pop3 import wire
from mailsrv.pop3.session import AUTHORIZATION, BOTH, TEMPORARY, TRANSACTION, CommandSession, client_ip, command
from mailsrv.store import MessageGone

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

log = Logger()

#: Message numbers and TOP line counts: plain decimal, no sign, no "1_0".
_NUMBER = re.compile(rb"[0-9]{1,9}\Z")

# RFC 3206 section 4 / RFC 2449 section 8 response codes.
_PLAINTEXT_REFUSED = b"[AUTH] Plaintext authentication disallowed on non-secure connections"
_BAD_CREDENTIALS = b"[AUTH] Invalid credentials"


class POP3Server(CommandSession):
    """One POP3 session."""

    def __init__(self, ctx: "ServerContext", offer_stls: bool) -> None:
        super().__init__(ctx.config.limits.max_line_length)
        self.ctx = ctx
        self.timeOut = ctx.config.limits.pop3_timeout
        self._offer_stls = offer_stls
        self._tls_started = False  # by STLS
        self._user: bytes | None = None  # from USER, waiting for PASS

    def connectionMade(self) -> None:
        """Greet without an APOP timestamp: APOP is not offered (it needs
        clear-text passwords stored, and Twisted's is broken on Python 3)."""
        if ITCPTransport.providedBy(self.transport):
            # Nagle's algorithm meets delayed ACKs after a small final write:
            # 44 ms per RETR (TWISTED-NOTES section 10).
            self.transport.setTcpNoDelay(True)
        self.successResponse(b"mailsrv ready.")
        self.setTimeout(self.timeOut)

    def _passwords_allowed(self) -> bool:
        # RFC 2595 section 2.3: refuse clear-text logins unless TLS is active.
        # _tls_started covers transports behind a ProtocolWrapper (haproxy:),
        # which copy the interfaces they provide once, before STLS.
        return self._tls_started or tls.is_secure(self.transport, self.ctx.config)

    def _stls_available(self) -> bool:
        return self._offer_stls and not self._tls_started and not tls.uses_tls(self.transport)

    # -- AUTHORIZATION state --------------------------------------------------

    @command(*BOTH)
    def do_CAPA(self) -> None:
        """RFC 2449 section 5; the list is the same in both states, as it requires."""
        caps = [b"TOP", b"UIDL", b"RESP-CODES", b"PIPELINING"]
        if self._passwords_allowed():
            caps += [b"USER", b"SASL PLAIN"]
        if self._stls_available():
            caps.append(b"STLS")
        caps.append(b"IMPLEMENTATION mailsrv")
        self.multiline(b"Capability list follows", b"".join(c + b"\r\n" for c in caps) + b".\r\n")

    @command(AUTHORIZATION)
    def do_STLS(self) -> None:
        """RFC 2595 section 4."""
        if not self._stls_available():
            self.failResponse(b"Command not permitted when TLS active")
            return
        self.successResponse(b"Begin TLS negotiation")
        self.transport.startTLS(self.ctx.tls)
        self._tls_started = True
        # Whatever followed STLS in the same packet came in clear text and
        # must not be run as if it came through TLS (command injection).
        self.discard_input()
        self._user = None

    @command(AUTHORIZATION, args=(1, 1))
    def do_USER(self, name: bytes) -> None:
        """RFC 1939 section 7."""
        if not self._passwords_allowed():
            self.failResponse(_PLAINTEXT_REFUSED)
            return
        self._user = name
        self.successResponse(b"Send PASS")

    @command(AUTHORIZATION, args=(1, 1), raw=True)
    def do_PASS(self, password: bytes) -> Deferred | None:
        """RFC 1939 section 7; the password is the rest of the line, spaces and all."""
        if not self._passwords_allowed():
            self.failResponse(_PLAINTEXT_REFUSED)
            return None
        user, self._user = self._user, None
        if user is None:
            self.failResponse(b"USER first")
            return None
        return self._login(user, password, "USER")

    @command(AUTHORIZATION, args=(0, 2))
    def do_AUTH(self, mechanism: bytes | None = None, initial: bytes | None = None) -> Deferred | None:
        """RFC 5034; bare ``AUTH`` lists the mechanisms as Outlook expects."""
        if not self._passwords_allowed():
            self.failResponse(_PLAINTEXT_REFUSED)
            return None
        if mechanism is None:
            self.multiline(b"", b"PLAIN\r\n.\r\n")
            return None
        if mechanism.upper() != b"PLAIN":
            self.failResponse(b"Unsupported authentication mechanism")
            return None
        if initial is None:
            self.continuation = self._finish_plain
            self.transport.write(b"+ \r\n")
            return None
        # RFC 5034 section 4: "=" is an empty initial response.
        return self._finish_plain(b"" if initial == b"=" else initial)

    def _finish_plain(self, response: bytes) -> Deferred | None:
        """Decode ``authzid NUL authcid NUL passwd`` (RFC 4616 section 2) and log in."""
        if response == b"*":
            # RFC 5034 section 4: the client cancelled the exchange.
            self.failResponse(b"Authentication cancelled")
            return None
        credentials = PlainCredentials()
        try:
            credentials.setResponse(base64.b64decode(response, validate=True))
        except (binascii.Error, IllegalClientResponse):
            self.failResponse(b"Malformed PLAIN response")
            return None
        if not credentials.acts_as_itself():
            self._log_login(credentials.username, "PLAIN", False)
            self.failResponse(_BAD_CREDENTIALS)
            return None
        return self._login(credentials.username, credentials.password, "PLAIN")

    def _login(self, user: bytes, password: bytes, mechanism: str) -> Deferred:
        d = self.ctx.portal.login(UsernamePassword(user, password), None, pop3.IMailbox)
        d.addCallback(_avatar_ready)
        d.addCallbacks(self._logged_in, self._login_failed, (user, mechanism), None, (user, mechanism))
        return d

    def _logged_in(self, result: tuple[Any, Any, Callable[[], None]], user: bytes, mechanism: str) -> None:
        _, avatar, logout = result
        if self._gone:
            logout()
            return
        self.mbox = avatar
        self._onLogout = logout
        self._log_login(user, mechanism, True)
        self.successResponse(b"Logged in.")

    def _login_failed(self, failure: Failure, user: bytes, mechanism: str) -> None:
        if failure.check(UnauthorizedLogin, LoginDenied):
            self._log_login(user, mechanism, False)
            message = _BAD_CREDENTIALS
        else:
            log.failure("POP3 login error", failure, user=_text(user), client_ip=client_ip(self.transport))
            message = TEMPORARY
        if not self._gone:
            self.failResponse(message)

    def _log_login(self, user: bytes, mechanism: str, success: bool) -> None:
        log.info(
            "POP3 login {outcome} for {user} from {client_ip} ({mechanism})",
            outcome="succeeded" if success else "failed",
            success=success,
            user=_text(user),
            client_ip=client_ip(self.transport),
            mechanism=mechanism,
            protocol="pop3",
        )

    @command(*BOTH)
    def do_QUIT(self) -> Deferred | None:
        """RFC 1939 section 6: after login, QUIT enters the UPDATE state."""
        if self.mbox is None:
            self._bye()
            return None

        def failed(failure: Failure) -> None:
            log.failure("POP3 UPDATE failed", failure, client_ip=client_ip(self.transport))
            self.failResponse(b"[SYS/TEMP] Some deleted messages not removed")
            self.transport.loseConnection()

        return self.mbox.sync().addCallbacks(lambda _: self._bye(), failed)

    def _bye(self) -> None:
        self.successResponse(b"Bye.")
        self.transport.loseConnection()

    # -- TRANSACTION state ----------------------------------------------------

    def _live(self) -> list[tuple[int, int]]:
        """(number, size) of every message not marked deleted."""
        return [(n, size) for n, size in enumerate(self.mbox.listMessages(), 1) if size]

    def _totals(self) -> tuple[int, int]:
        """Message count and octets, deleted messages not counted (RFC 1939 section 5)."""
        sizes = [size for _, size in self._live()]
        return len(sizes), sum(sizes)

    def _message(self, arg: bytes) -> int | None:
        """The 0-based index for message-number *arg*, or None after ``-ERR``.

        RFC 1939 section 5: a number may not refer to a deleted message.
        """
        number = int(arg) if _NUMBER.match(arg) else 0
        try:
            size = self.mbox.listMessages(number - 1) if number > 0 else None
        except ValueError:
            size = None
        if size is None:
            self.failResponse(b"No such message")
            return None
        if size == 0:
            self.failResponse(b"Message %d already deleted" % number)
            return None
        return number - 1

    def _read(self, index: int | None, then: Callable[[bytes], None]) -> Deferred | None:
        """Read message *index* (None: already refused) and pass its octets to *then*."""
        if index is None:
            return None

        def failed(failure: Failure) -> None:
            if failure.check(MessageGone):
                self.failResponse(b"Message %d was removed by another session" % (index + 1))
            else:
                log.failure("POP3 read failed", failure, client_ip=client_ip(self.transport))
                self.failResponse(TEMPORARY)

        return self.mbox.getMessage(index).addCallback(lambda f: then(f.read())).addErrback(failed)

    @command(TRANSACTION)
    def do_STAT(self) -> None:
        """RFC 1939 section 5 (drop listing)."""
        self.successResponse(b"%d %d" % self._totals())

    def _listing(self, arg: bytes | None, header: bytes, value: Callable[[int], bytes]) -> None:
        """LIST and UIDL: "number value" for message *arg*, else a multi-line
        listing under *header* of every message not marked deleted.

        *value* gets a 0-based index (RFC 1939 sections 5 and 7).
        """
        if arg is not None:
            index = self._message(arg)
            if index is not None:
                self.successResponse(b"%d %s" % (index + 1, value(index)))
            return
        lines = b"".join(b"%d %s\r\n" % (n, value(n - 1)) for n, _ in self._live())
        self.multiline(header, lines + b".\r\n")

    @command(TRANSACTION, args=(0, 1))
    def do_LIST(self, arg: bytes | None = None) -> None:
        """RFC 1939 section 5 (scan listings)."""
        header = b"%d messages (%d octets)" % self._totals()
        self._listing(arg, header, lambda index: b"%d" % self.mbox.listMessages(index))

    @command(TRANSACTION, args=(0, 1))
    def do_UIDL(self, arg: bytes | None = None) -> None:
        """RFC 1939 section 7 (unique-id listings)."""
        self._listing(arg, b"", self.mbox.getUidl)

    @command(TRANSACTION, args=(1, 1))
    def do_RETR(self, arg: bytes) -> Deferred | None:
        """RFC 1939 section 5; the octet count is the exact wire size."""
        return self._read(
            self._message(arg), lambda data: self.multiline(b"%d octets" % len(data), wire.multiline(data))
        )

    @command(TRANSACTION, args=(2, 2))
    def do_TOP(self, arg: bytes, lines: bytes) -> Deferred | None:
        """RFC 1939 section 7."""
        if not _NUMBER.match(lines):
            self.failResponse(b"Invalid line count")
            return None
        return self._read(
            self._message(arg),
            lambda data: self.multiline(b"Top of message follows", wire.multiline(wire.top(data, int(lines)))),
        )

    @command(TRANSACTION, args=(1, 1))
    def do_DELE(self, arg: bytes) -> None:
        """RFC 1939 section 5: only marks; removal happens at QUIT."""
        index = self._message(arg)
        if index is not None:
            self.mbox.deleteMessage(index)
            self.successResponse(b"Message %d deleted" % (index + 1))

    @command(TRANSACTION)
    def do_RSET(self) -> None:
        """RFC 1939 section 5: unmark every message."""
        self.mbox.undeleteMessages()
        self.successResponse(b"Maildrop has %d messages (%d octets)" % self._totals())

    @command(TRANSACTION)
    def do_NOOP(self) -> None:
        """RFC 1939 section 5."""
        self.successResponse(b"")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _avatar_ready(result: tuple[Any, Any, Callable[[], None]]) -> Deferred:
    """The realm's ``(interface, avatar, logout)`` once the avatar itself is ready.

    The maildrop factory answers with a Deferred (opening the INBOX lists
    it in a thread), which twisted.cred hands through as the avatar.
    """
    interface, avatar, logout = result
    return maybeDeferred(lambda: avatar).addCallback(lambda ready: (interface, ready, logout))


class POP3Factory(ServerFactory):
    """Builds one :class:`POP3Server` per connection."""

    noisy = False

    def __init__(self, ctx: "ServerContext", offer_stls: bool) -> None:
        self.ctx = ctx
        self.offer_stls = offer_stls

    def buildProtocol(self, addr: Any) -> POP3Server:
        protocol = POP3Server(self.ctx, self.offer_stls)
        protocol.factory = self
        return protocol


def make_factory(ctx: "ServerContext", kind: str) -> ServerFactory:
    """The factory for a ``pop3`` (STLS offered) or ``pop3s`` (already TLS) listener."""
    if kind not in ("pop3", "pop3s"):
        raise ValueError(f"not a POP3 listener kind: {kind!r}")
    return POP3Factory(ctx, offer_stls=kind == "pop3")

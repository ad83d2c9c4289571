"""The base of the SMTP, POP3 and IMAP servers: context, session, connection limits.

Everything here is the same for the three protocols: the shared
:class:`~mailsrv.context.ServerContext`, one :class:`~mailsrv.net.session.Session`
per connection, admission by :class:`~mailsrv.net.limits.ConnectionLimits`
before the greeting, whether a password may be sent, the switch to TLS and
holding a login until the session ends, and being counted among the open
connections that a stopping server closes (:mod:`mailsrv.net.shutdown`).
What a protocol adds is its greeting, its refusal, its goodbye and its
commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable

from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.listeners import Kind
from mailsrv.net.pump import CommandPump
from mailsrv.net.session import Session

if TYPE_CHECKING:
    from mailsrv.context import ServerContext


@implementer(IHandshakeListener)
class ServerProtocol(CommandPump):
    """One client connection of listener *kind*; subclasses give :meth:`welcome`,
    :meth:`refuse` and the :class:`~mailsrv.net.pump.CommandPump` hooks
    (:meth:`~mailsrv.net.pump.CommandPump.goodbye` among them)."""

    #: ``Kind.protocol`` of the listeners this protocol serves.
    protocol_name = ""

    def __init__(
        self, ctx: "ServerContext", kind: Kind, max_line: int, lf_tolerant: bool, idle_timeout: float | None,
        clock: IReactorTime | None = None,
    ) -> None:
        super().__init__(max_line, lf_tolerant, idle_timeout, clock)
        self.ctx = ctx
        self.kind = kind
        self.session: Session = Session(kind, None)
        self._admitted_ip: str | None = None
        self._logout: Callable[[], None] | None = None

    def welcome(self) -> "Awaitable[None] | None":
        """Send the protocol's greeting (may wait for connect-time checks)."""
        raise NotImplementedError

    def refuse(self, reason: str) -> None:
        """Send the protocol's refusal in place of a greeting (the connection then closes)."""
        raise NotImplementedError

    def connectionMade(self) -> None:
        """Start the session; admission is decided in :meth:`greet`."""
        self.session = Session(self.kind, self.transport)
        self.ctx.sessions.add(self)
        super().connectionMade()

    def greet(self) -> "Awaitable[None] | None":
        """Admit the connection within the limits and welcome it, or refuse it."""
        ip = self.session.peer_ip
        refusal = self.ctx.connections.admit(ip)
        if refusal is not None:
            self.ctx.audit.rejection(self.session, "connect", ip, refusal)
            self.refuse(refusal)
            self.close()
            return None
        self._admitted_ip = ip
        return self.welcome()

    # -- TLS and logins ------------------------------------------------------

    def passwords_allowed(self) -> bool:
        """Whether a password may be sent now: after TLS, or on loopback if the admin allows it."""
        return self.session.may_send_password(self.ctx.config.auth.allow_plaintext_auth_on_loopback)

    def can_start_tls(self) -> bool:
        """Whether STARTTLS/STLS may run now: a listener that offers it, not yet in TLS."""
        return self.kind.offers_starttls and not self.session.tls_active

    def start_tls(self) -> None:
        """Switch to TLS after the protocol's "go ahead" reply was written.

        Input pipelined behind the command came in clear text and is thrown
        away, never run inside TLS (RFC 3207 6, RFC 2595 3.1: command
        injection).
        """
        self.discard_input()
        self.transport.startTLS(self.ctx.tls)
        self.session.tls_started = True

    def handshakeCompleted(self) -> None:
        """The TLS handshake finished (TLSMemoryBIOProtocol calls this, for implicit TLS and STARTTLS alike).

        Told to the open sessions, where the metrics count handshakes by
        version as they happen rather than when the connection ends.
        """
        self.session.tls_handshaken = True
        self.ctx.sessions.handshake(self)

    def hold_login(self, logout: Callable[[], None]) -> bool:
        """Keep a successful login until :meth:`release_login` or the end of the connection.

        False when the connection closed while the login was checked: the
        login is released at once and the session must not use it.
        """
        if self.closing:
            logout()
            return False
        self._logout = logout
        return True

    def release_login(self) -> None:
        """Log out (STARTTLS in SMTP forgets a login; every session at its end)."""
        self.session.user = None
        logout, self._logout = self._logout, None
        if logout is not None:
            logout()

    def ended(self, reason: Failure) -> None:
        """Release the login and give the connection's place back to the limits."""
        self.ctx.sessions.discard(self)
        self.release_login()
        if self._admitted_ip is not None:
            self.ctx.connections.release(self._admitted_ip)
            self._admitted_ip = None


class ProtocolFactory(ServerFactory):
    """Builds one *protocol* per connection of a listener of *kind*, the same for every protocol.

    *protocol* is a :class:`ServerProtocol` subclass taking ``(ctx, kind,
    clock)``; *clock* is the reactor unless a test passes a ``task.Clock``.
    """

    noisy = False

    def __init__(
        self, protocol: type[ServerProtocol], ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None
    ) -> None:
        if kind.protocol != protocol.protocol_name:
            raise ValueError(f"not a {protocol.protocol_name} listener kind: {kind.label}")
        self.protocol_class = protocol
        self.ctx = ctx
        self.kind = kind
        self.clock = clock

    def buildProtocol(self, addr: Any) -> ServerProtocol:
        """A new session."""
        protocol = self.protocol_class(self.ctx, self.kind, self.clock)
        protocol.factory = self
        return protocol

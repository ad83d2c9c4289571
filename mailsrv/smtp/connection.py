"""What the SMTP command modules need of the connection they serve, and its transaction state.

:mod:`.transaction` and :mod:`.auth` implement commands for
:class:`~mailsrv.smtp.server.SMTPServer`, which imports them; the
:class:`Connection` protocol is their side of that contract, so they need
not import the server (and the package has no import circle).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from mailsrv.address import Mailbox
from mailsrv.delivery.bounce import Action
from mailsrv.delivery.envelope import Envelope
from mailsrv.delivery.queuedir import Recipient
from mailsrv.listeners import Kind
from mailsrv.message.body import BodyWriter
from mailsrv.net.lines import Line
from mailsrv.net.pump import RawReader
from mailsrv.net.session import Session
from mailsrv.smtp.chunks import ChunkedBody
from mailsrv.smtp.params import MailParams
from mailsrv.smtp.replies import Reply

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

    from mailsrv.context import ServerContext


@dataclass
class Transaction:
    """One mail transaction, from MAIL to the end of DATA."""

    params: MailParams
    envelope: Envelope
    recipients: list[Mailbox] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    size: int = 0
    #: Header lines policy checks asked to add, from MAIL and RCPT (data-stage ones come later).
    headers: list[bytes] = field(default_factory=list)
    #: The body being received, while DATA runs.
    writer: BodyWriter | None = None
    #: Disk octets of our trace headers at the top of the body (data-stage fields go after them).
    trace_size: int = 0
    #: Recipients whose NOTIFY asks for success reports, by the report's action, sent once the message is
    #: stored: "delivered" here (RFC 3461 5.2.3), "expanded" by an alias to several addresses (5.2.7.3).
    notices: dict[Action, list[Recipient]] = field(default_factory=dict)
    #: The body so far of a BDAT transaction (RFC 3030 2), from its first chunk; its writer is ``writer``.
    chunks: ChunkedBody | None = None

    def abort(self) -> None:
        """Throw away a body being received or already complete."""
        if self.writer is not None:
            self.writer.abort()
            self.writer = None
        if self.envelope.body is not None:
            self.envelope.body.discard()
            self.envelope.body = None


@dataclass
class SessionCounts:
    """What one connection has done so far, for the ``[limits] smtp_*`` per-connection limits."""

    #: False for a client in ``[limits] rates_exempt_networks``: no message or recipient limit per connection.
    limited: bool = True
    messages: int = 0
    recipients: int = 0
    #: Recipients refused (unknown users, relaying): a dictionary attack shows here.
    failed_recipients: int = 0


class Connection(Protocol):
    """One SMTP connection, as a command sees it."""

    ctx: "ServerContext"
    kind: Kind
    session: Session
    #: The HELO/EHLO name, ``None`` before one.
    helo: str | None
    esmtp: bool
    #: The open mail transaction, between MAIL and the end of DATA.
    transaction: "Transaction | None"
    counts: SessionCounts
    #: The reactor, or a test's ``task.Clock``.
    clock: "IReactorTime"

    @property
    def headers(self) -> tuple[bytes, ...]:
        """Header lines the connect and HELO checks asked to add to every message."""

    def write(self, data: bytes) -> None:
        """Send octets as they are."""

    def answer(self, reply: Reply) -> None:
        """Send a reply (and count it if it is a protocol error)."""

    def read_line(self) -> "Deferred[Line]":
        """The client's next line (a SASL response)."""

    def read_raw(self, reader: RawReader) -> "Deferred[None]":
        """Hand input to *reader* until it is finished (the DATA body)."""

    def read_octets(self, count: int, write: Callable[[bytes], None]) -> "Deferred[None]":
        """Hand exactly *count* octets of input to *write* as they arrive (a BDAT chunk)."""

    def reject(self, stage: str, subject: str, reply: Reply) -> None:
        """Audit a policy refusal."""

    def log_transaction(self, transaction: "Transaction", result: int | str) -> None:
        """The audit line of a finished transaction."""

    def hold_login(self, logout: Callable[[], None]) -> bool:
        """AUTH succeeded; hold the login (False when the connection closed meanwhile)."""

    def passwords_allowed(self) -> bool:
        """Whether a password may be sent over this connection now."""

    def auth_offered(self) -> bool:
        """AUTH is offered here now (RFC 4954 5 then obliges MAIL to take ``AUTH=``)."""

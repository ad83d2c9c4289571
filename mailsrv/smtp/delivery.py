"""Who may send to whom, and one store write per transaction.

:class:`LocalDelivery` is the ``IMessageDelivery`` of one connection: it
accepts only recipients in our local domains (this server relays nothing),
requires AUTH on the submission ports, and builds the trace headers.

Twisted asks ``validateTo`` for one ``IMessage`` per recipient and feeds each
of them the whole message.  Here every recipient of a transaction gets the
*same* :class:`Transaction`, the protocol feeds each distinct message once,
and the transaction makes a single ``store.deliver`` call for all
recipients (the store hard-links one file into every INBOX), with a
:class:`~mailsrv.message.body.Body` it discards once the store is done.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Callable, Sequence

from twisted.internet import defer
from twisted.mail.interfaces import IMessageDelivery, IMessageSMTP
from zope.interface import implementer

from mailsrv.message.body import Body
from mailsrv.smtp.address import Mailbox
from mailsrv.smtp.received import trace_headers, with_protocol
from mailsrv.smtp.replies import Rejection
from mailsrv.smtp.session import Session
from mailsrv.store import Target

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

_QUEUE_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"


_QUEUE_ID_LENGTH = 12
_QUEUE_IDS = len(_QUEUE_ID_ALPHABET) ** _QUEUE_ID_LENGTH


def new_queue_id() -> str:
    """A short random id naming one transaction in replies, trace header and log.

    Twelve uniform symbols of the alphabet, from one ``secrets`` call (one
    ``secrets.choice`` per symbol cost twelve reads of the system RNG).
    """
    n = secrets.randbelow(_QUEUE_IDS)
    base = len(_QUEUE_ID_ALPHABET)
    out = []
    for _ in range(_QUEUE_ID_LENGTH):
        n, digit = divmod(n, base)
        out.append(_QUEUE_ID_ALPHABET[digit])
    return "".join(out)


@implementer(IMessageSMTP)
class Transaction:
    """The message of one MAIL transaction, shared by all its recipients."""

    def __init__(self, store: object, queue_id: str) -> None:
        self.queue_id = queue_id
        self._store = store
        self._addresses: dict[str, None] = {}  # ordered set of canonical addresses
        self._chunks: list[bytes] = []

    @property
    def addresses(self) -> list[str]:
        """Canonical local addresses the message will be delivered to."""
        return list(self._addresses)

    def add(self, addresses: Sequence[str]) -> "Transaction":
        """Add one recipient's resolved addresses (duplicates collapse)."""
        self._addresses.update(dict.fromkeys(addresses))
        return self

    def lineReceived(self, line: bytes) -> None:
        """One dot-unstuffed line; CRLF is restored so the data stays byte-exact."""
        self._chunks.append(line + b"\r\n")

    def linesReceived(self, lines: bytes) -> None:
        """Several dot-unstuffed lines at once, each already ending in CRLF.

        The same octets as one :meth:`lineReceived` per line (the protocol's
        chunked DATA path uses this).
        """
        self._chunks.append(lines)

    def eomReceived(self) -> "defer.Deferred[str]":
        """Write the message once for every recipient; fires with the queue id when durable."""
        body = Body.from_wire(b"".join(self._chunks))
        self._chunks = []
        targets = [Target(address) for address in self.addresses]
        d = defer.maybeDeferred(self._store.deliver, targets, body)  # type: ignore[attr-defined]

        def stored(result: object) -> object:
            body.discard()
            return result

        return d.addBoth(stored).addCallback(lambda _: self.queue_id)

    def connectionLost(self) -> None:
        """The transaction failed or the client left: drop the data."""
        self._chunks = []


@implementer(IMessageDelivery)
class LocalDelivery:
    """Recipient policy and message construction for one connection.

    ``origin``/``user`` arguments are this package's :class:`Mailbox`
    (``None`` for the null reverse-path) rather than Twisted's ``Address``,
    which hides source routes and routing characters from policy code.
    """

    def __init__(self, ctx: "ServerContext", session: Session) -> None:
        self._ctx = ctx
        self._session = session
        self.transaction: Transaction | None = None

    def validateFrom(self, helo: object, origin: Mailbox | None) -> Mailbox | None:
        """Start a transaction; submission needs an authenticated user first."""
        if self._session.is_submission and self._session.user is None:
            raise Rejection(530, "5.7.0 Authentication required")  # RFC 4954 6, RFC 6409 4.3
        self.transaction = Transaction(self._ctx.store, new_queue_id())
        return origin

    def validateTo(self, user: Mailbox) -> Callable[[], Transaction]:
        """Accept *user* if it is a mailbox of ours, else say why not."""
        assert self.transaction is not None, "RCPT before a successful MAIL"
        if user.routes_elsewhere:
            raise Rejection(554, f"5.7.1 <{user}>: Relay access denied")
        directory = self._ctx.directory
        if user.is_literal or not directory.is_local_domain(user.domain):
            # A source route to a remote mailbox asks us to relay even on
            # submission, where a plain remote address is only "not yet".
            if self._session.is_submission and not user.routed:
                raise Rejection(550, "5.7.0 Remote delivery is not available on this server yet")
            raise Rejection(554, f"5.7.1 <{user}>: Relay access denied")
        # RFC 5321 4.1.1.3 / appendix C: a source route to one of our own
        # mailboxes is ignored and the mailbox used.
        addresses = directory.resolve(user.plain)
        if not addresses:
            raise Rejection(550, f"5.1.1 <{user}>: Recipient address rejected: User unknown")
        transaction = self.transaction.add(addresses)
        return lambda: transaction

    def receivedHeader(self, helo: object, origin: Mailbox | None, recipients: Sequence[Mailbox]) -> bytes:
        """``Return-Path`` and ``Received``, as one "line" the way Twisted feeds it (no final CRLF)."""
        assert self.transaction is not None
        session = self._session
        headers = trace_headers(
            sender="" if origin is None else str(origin),
            helo=session.helo or session.client_ip,
            client_ip=session.client_ip,
            hostname=self._ctx.config.hostname,
            protocol=with_protocol(session.esmtp, session.tls, session.user is not None),
            queue_id=self.transaction.queue_id,
            tls=session.tls_details,
            recipient=str(recipients[0]) if len(recipients) == 1 else None,
        )
        return headers[:-2]

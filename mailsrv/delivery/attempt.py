"""One attempt to hand a message to another server: the contract between the queue and the sender.

The queue (:mod:`mailsrv.delivery.queue`) decides *when* a message goes and
what becomes of each recipient afterwards (done, retried later, bounced);
an :class:`IRemoteDelivery` decides *how*: which hosts, TLS, the SMTP
dialogue.  It never fails its Deferred: every problem, from a DNS timeout
to a ``550`` for one recipient, is a :class:`RecipientResult`, so the queue
has one thing to read.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred
from zope.interface import Interface

from mailsrv.delivery.dsnrequest import RecipientRequest
from mailsrv.message.body import Body


class Outcome(enum.Enum):
    """What became of one recipient in one attempt."""

    #: A server took responsibility for it (2xx after the message data).
    DELIVERED = "delivered"
    #: Try again later: a 4xx reply, no host reachable, DNS trouble, a TLS policy not met yet.
    DEFERRED = "deferred"
    #: Give up and bounce: a 5xx reply, a null MX (RFC 7505), no such domain, or a message the
    #: peer cannot take unchanged (8BITMIME or SMTPUTF8 it does not offer).
    FAILED = "failed"


@dataclass(frozen=True)
class RecipientResult:
    """One recipient's outcome, with what the queue logs and a bounce quotes."""

    recipient: str
    outcome: Outcome
    #: The server's reply (``"550 5.1.1 <bob@example.org>: no such user"``) or, when none was
    #: reached, our own account of why (``"connection refused by [192.0.2.1]:25"``).
    reply: str
    #: The host that gave the reply, as named by the MX record or the relay setting ("" if none).
    host: str = ""
    #: Its address ("" if none was reached).
    ip: str = ""
    #: Protocol and cipher of the connection (``"TLSv1.3 TLS_AES_256_GCM_SHA384"``), "" without TLS;
    #: then the TLSA record that authenticated the peer, if DANE did (``"... DANE-EE 3 1 1"``).
    tls: str = ""
    #: The server offered DSN, so it got NOTIFY and ORCPT and reports from here on (RFC 3461 5.2.2).
    peer_dsn: bool = False
    #: Deferred after the message data went out with no reply to it: the server may have taken it,
    #: so no other host is offered it now (RFC 5321 6.1).  Any other deferral may go to the next MX.
    maybe_taken: bool = False

    @property
    def next_host_may_take(self) -> bool:
        """Deferred by a reply that says this host did not take the message (a 4xx): another MX may."""
        return self.outcome is Outcome.DEFERRED and not self.maybe_taken


@dataclass(frozen=True)
class Options:
    """What the sender asked of the delivery beyond the envelope.

    The RFC 3461 parameters to pass on to a server that offers DSN (*ret*,
    *envid*, and each recipient's NOTIFY and ORCPT in *requests*, by
    address), and the RFC 8689 TLS demands: *require_tls* (verified TLS to a
    server that offers REQUIRETLS, or no delivery) or *tls_optional*
    (``TLS-Required: No``: a TLS policy that fails does not stop it);
    *smtputf8*: the sender or header is UTF-8 (RFC 6531), so only a server
    that offers SMTPUTF8 may take it.
    """

    ret: str = ""
    envid: str = ""
    requests: Mapping[str, RecipientRequest] = field(default_factory=dict)
    require_tls: bool = False
    tls_optional: bool = False
    smtputf8: bool = False


class IRemoteDelivery(Interface):
    """Sends one message to the servers of one destination."""

    def deliver(
        queue_id: str, sender: str, recipients: Sequence[str], body: Body, options: Options,
    ) -> "Deferred[list[RecipientResult]]":
        """Send *body* from *sender* (``""``: the null sender) to *recipients* in one SMTP transaction.

        *options* is what the sender asked of it (DSN parameters, REQUIRETLS).

        All recipients share one domain (the queue groups them), or all go to
        the configured relay.  Fires with one result per recipient, in their
        order, and never fails.  *body* is the disk form the store and the
        spool use (:mod:`mailsrv.message.wire`); it stays the caller's.
        """

    def close() -> "Deferred[None]":
        """End whatever is kept open between messages (the queue is stopping); fires once it is closed."""

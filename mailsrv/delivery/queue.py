"""The seam where the durable queue for remote delivery will go.

Remote recipients of an authenticated submission are accepted only when a
queue is configured (``ServerContext.queue``); there is no implementation
yet, so in a running server SMTP refuses them with a clear "not available
yet" (``mailsrv.smtp.transaction``).  An implementation writes the envelope
and the body to disk, durably, *before* the Deferred fires, because the
SMTP 250 depends on it (RFC 5321 6.1); the body is discarded by the caller
after that.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from zope.interface import Interface

from mailsrv.delivery.envelope import Envelope

if TYPE_CHECKING:
    from mailsrv.delivery.bounce import Action
    from mailsrv.delivery.queuedir import Recipient, Record
    from mailsrv.message.body import Body


class IQueue(Interface):
    """Accepts messages for remote recipients and delivers them later; sends the DSNs."""

    def enqueue(envelope: Envelope) -> "Deferred[str]":
        """Store the message for ``envelope.remote`` durably; fires with its queue id."""

    def report(record: "Record", recipients: "Sequence[Recipient]", action: "Action", body: "Body") -> Awaitable[None]:
        """Send ``record.sender`` (never ``""``) one DSN of *action* about *recipients*, quoting *body*."""

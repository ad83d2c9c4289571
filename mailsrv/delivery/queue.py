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

from twisted.internet.defer import Deferred
from zope.interface import Interface

from mailsrv.delivery.envelope import Envelope


class IQueue(Interface):
    """Accepts messages for remote recipients and delivers them later."""

    def enqueue(envelope: Envelope) -> "Deferred[str]":
        """Store the message for ``envelope.remote`` durably; fires with its queue id."""

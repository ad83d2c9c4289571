"""The seam where the durable queue for remote delivery will go.

Remote recipients are accepted only when a queue is configured
(``ServerContext.queue``); there is none yet, so SMTP refuses them with a
clear "not available yet".  An implementation writes the envelope and the
body to disk, durably, *before* the Deferred fires, because the SMTP 250
depends on it (RFC 5321 6.1).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from zope.interface import Interface

from mailsrv.delivery.envelope import Envelope


class IQueue(Interface):
    """Accepts messages for remote recipients and delivers them later."""

    def enqueue(envelope: Envelope, recipients: "list[str]") -> "Deferred[str]":
        """Store the message for *recipients* (remote addresses) durably; fires with its queue id."""

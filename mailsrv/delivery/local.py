"""Delivery into the store: one durable write for every local recipient of a message.

Twisted's SMTP gives each recipient its own ``IMessage`` and feeds each the
whole message; here one :class:`~mailsrv.delivery.envelope.Envelope` names
all local mailboxes and the store writes the body once, hard-linking it
into every INBOX (docs/internals.rst, Store).  The Deferred fires only when
the message is durable for all of them: SMTP's 250 waits for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.internet import defer

from mailsrv.delivery.envelope import Envelope
from mailsrv.net.audit import Audit
from mailsrv.store import Target
from mailsrv.store.maildir import unique_part

if TYPE_CHECKING:
    from mailsrv.store import Store

#: What a policy check's folder is for (:attr:`Envelope.folder`): a user who renamed it keeps getting it there.
_CHECKS_FOLDER_USE = "\\Junk"


def _targets(envelope: Envelope) -> list[Target]:
    """One target per local user: their INBOX, or the Junk folder a policy check chose."""
    if envelope.folder is None:
        return [Target(user) for user in envelope.local_users]
    return [Target(user, envelope.folder, use=_CHECKS_FOLDER_USE) for user in envelope.local_users]


class LocalDelivery:
    """Delivers envelopes to local mailboxes through *store*, logging each attempt."""

    def __init__(self, store: "Store", audit: Audit) -> None:
        self._store = store
        self._audit = audit

    async def deliver(self, envelope: Envelope) -> str:
        """Store *envelope*'s body for its local users; the queue id once durable.

        A failed delivery is the client's to retry (the SMTP reply is a 451).
        The caller discards the body afterwards (the stored copies are hard
        links of their own).
        """
        body = envelope.body
        assert body is not None, "deliver() needs a finished body"
        recipients = envelope.local_users
        try:
            stored_as = await defer.maybeDeferred(self._store.deliver, _targets(envelope), body)
        except Exception as e:
            # The store logged the failure with its traceback; this is the audit line.
            self._audit.delivery(envelope.queue_id, recipients, body.wire_size, "failed", reason=type(e).__name__)
            raise
        # The unique part finds the file; the sizes in the full name would need percent-encoding.
        self._audit.delivery(envelope.queue_id, recipients, body.wire_size, "stored", file=unique_part(stored_as))
        return envelope.queue_id

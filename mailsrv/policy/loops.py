"""Mail loops: a message that has passed too many hosts is refused (RFC 5321 6.3).

Forwarding makes loops easy to build by accident (an alias here naming a
mailbox elsewhere that forwards back), and every pass adds a ``Received:``
field, so counting them ends the loop.  Registered last in
:func:`mailsrv.tap.assemble`, on every listener.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.message.fields import field_values, read_header
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.smtp import replies

if TYPE_CHECKING:
    from mailsrv.delivery.envelope import Envelope
    from mailsrv.message.body import Body

#: ``Received:`` fields a message may carry (ours included); Postfix's default ``hopcount_limit``.
MAX_HOPS = 50


def _hops(body: "Body") -> int:
    """The ``Received:`` fields in *body*'s header; blocking for a spooled body."""
    return len(field_values(read_header(body), b"received"))


class HopLimit(Check):
    """554 5.4.6 at the end of DATA for a message with more than :data:`MAX_HOPS` ``Received:`` fields."""

    async def data(self, ctx: CheckContext, envelope: "Envelope") -> Verdict:
        """Refuse a looping message: nothing is stored or forwarded."""
        hops = await ctx.read(_hops, envelope.body)
        if hops > MAX_HOPS:
            return reject(replies.TOO_MANY_HOPS)
        return ACCEPT

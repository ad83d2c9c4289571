"""Rate limits on port 25: connections per minute, messages and recipients per hour, per client address.

A spam run or a flood shows as volume from one address; these limits make
such a client wait (``421 4.7.0``: RFC 5321 3.8 lets a server close with it,
and a real MTA queues and retries, so no mail is lost) while every other
client is served.  Clients in ``rates_exempt_networks`` (loopback by
default) are not counted.  Submission is not limited here: its users log in, and
the login throttle (:mod:`mailsrv.net.throttle`) guards that.  Addresses
are counted as the login throttle counts them (an IPv6 /64 as one).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime

from mailsrv.config.limits import LimitsConfig
from mailsrv.net.rates import RateTable
from mailsrv.net.session import Networks
from mailsrv.net.throttle import address_key
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.smtp import replies

if TYPE_CHECKING:
    from mailsrv.address import Mailbox


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> Networks:
    return Networks(cidrs)


def exempt(limits: LimitsConfig, ip: str) -> bool:
    """Whether a client at *ip* is in ``[limits] rates_exempt_networks``."""
    return ip in _networks(tuple(limits.rates_exempt_networks))


class RateLimits(Check):
    """The ``[limits] smtp_*_per_ip_*`` keys, counted on *clock*."""

    def __init__(self, limits: LimitsConfig, clock: IReactorTime) -> None:
        self.clock = clock
        self.connections = RateTable(0, 60, 0)
        self.messages = RateTable(0, 3600, 0)
        self.recipients = RateTable(0, 3600, 0)
        self.configure(limits)

    def configure(self, limits: LimitsConfig) -> None:
        """Count by *limits* (made and SIGHUP); what was counted so far keeps counting."""
        self.limits = limits
        for table, limit in ((self.connections, limits.smtp_connections_per_ip_minute),
                             (self.messages, limits.smtp_messages_per_ip_hour),
                             (self.recipients, limits.smtp_recipients_per_ip_hour)):
            table.limit = limit
            table.capacity = limits.rates_tracked

    def _count(self, ctx: CheckContext, table: RateTable, reply: replies.Reply) -> Verdict:
        session = ctx.session
        if session.kind.submission or exempt(self.limits, session.peer_ip):
            return ACCEPT
        if table.admit(address_key(session.peer_ip), self.clock.seconds()):
            return ACCEPT
        return reject(reply)

    def connect(self, ctx: CheckContext) -> Verdict:
        """A new connection from an address that opened too many this minute gets 421 instead of 220."""
        return self._count(ctx, self.connections, replies.CONNECTION_RATE)

    def mail(self, ctx: CheckContext, sender: "Mailbox | None") -> Verdict:
        """One more message from the client's address this hour."""
        return self._count(ctx, self.messages, replies.MESSAGE_RATE)

    def rcpt(self, ctx: CheckContext, recipient: "Mailbox") -> Verdict:
        """One more recipient from the client's address this hour."""
        return self._count(ctx, self.recipients, replies.RECIPIENT_RATE)

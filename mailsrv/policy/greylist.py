"""Greylisting (RFC 6647): a new (client network, sender, recipient) triplet is asked to come back later.

Spam software that fires and forgets never retries a temporary failure; a
real MTA does, after minutes.  So the first RCPT of a triplet gets ``451
4.7.1``; the same triplet retried after ``greylist_delay`` and within
``greylist_retry_window`` is accepted, and then passes at once for
``greylist_pass_for`` seconds after it was last seen.  Off by default
(``[limits] greylist``): it delays all first mail from a new sender.

The triplet's client part is the /24 (IPv4) or /64 (IPv6) network, since
large senders retry from another host of the same farm.
Submission, ``rates_exempt_networks`` and clients a DNS allowlist knows
(``[policy] dnswl``, :mod:`mailsrv.policy.dnsbl`) are not greylisted.  The table
is in memory and bounded (``rates_tracked``): after a restart, or once a
triplet is dropped, a sender is greylisted once more, which only delays
its mail.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Callable

from twisted.internet.interfaces import IReactorTime

from mailsrv.config.limits import LimitsConfig
from mailsrv.net.aging import forget_old, trim
from mailsrv.net.session import client_network
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.policy.rates import exempt
from mailsrv.smtp import replies

if TYPE_CHECKING:
    from mailsrv.address import Mailbox
    from mailsrv.net.session import Session


def _last_seen(entry: tuple[float, bool]) -> float:
    return entry[0]


class Greylist(Check):
    """The RCPT stage of RFC 6647 greylisting, timed on *clock*."""

    def __init__(self, limits: LimitsConfig, clock: IReactorTime, welcome: "Callable[[Session], bool]") -> None:
        self.limits = limits  # replaced by a SIGHUP (mailsrv.config.live); the triplets stay
        self.clock = clock
        #: Whether a session's client is known good (on a DNS allowlist): it is not greylisted.
        self.welcome = welcome
        #: triplet -> (first seen, passed); ordered by last use, oldest first.
        self._triplets: OrderedDict[tuple[str, str, str], tuple[float, bool]] = OrderedDict()
        #: The sender of each session's open transaction, from MAIL (gone with the session).
        self._senders: "weakref.WeakKeyDictionary[Session, str]" = weakref.WeakKeyDictionary()

    def mail(self, ctx: CheckContext, sender: "Mailbox | None") -> Verdict:
        """Remember the transaction's sender for its RCPTs."""
        self._senders[ctx.session] = "" if sender is None else str(sender).lower()
        return ACCEPT

    def rcpt(self, ctx: CheckContext, recipient: "Mailbox") -> Verdict:
        """451 4.7.1 for a triplet not seen before, or retried too soon or too late."""
        limits, session = self.limits, ctx.session
        if not limits.greylist or session.kind.submission or exempt(limits, session.peer_ip) or self.welcome(session):
            return ACCEPT
        now = self.clock.seconds()
        key = (client_network(session.peer_ip, 24, 64), self._senders.get(session, ""), str(recipient).lower())
        self._expire(now)
        seen = self._triplets.pop(key, None)
        if seen is not None:
            first, passed = seen
            if passed and now - first < limits.greylist_pass_for:
                self._triplets[key] = (now, True)  # a known triplet stays known while it is used
                return ACCEPT
            if not passed and limits.greylist_delay <= now - first < limits.greylist_retry_window:
                self._triplets[key] = (now, True)
                return ACCEPT
            if not passed and now - first < limits.greylist_delay:
                self._triplets[key] = seen  # too soon: the clock keeps running from the first attempt
                return reject(replies.GREYLISTED)
        self._triplets[key] = (now, False)
        trim(self._triplets, limits.rates_tracked)
        return reject(replies.GREYLISTED)

    def _expire(self, now: float) -> None:
        """Forget triplets unused for longer than any of them can matter (oldest first)."""
        keep = max(self.limits.greylist_pass_for, self.limits.greylist_retry_window)
        forget_old(self._triplets, now, keep, _last_seen)

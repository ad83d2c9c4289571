"""DNS blocklists and allowlists (RFC 5782) for port 25 clients: ``[policy] dnsbl`` and ``dnswl``.

Every list is asked about the client's address as soon as it connects, all
in parallel in the ``dns`` pool, each within ``dnsbl_timeout``.  The weights
of the entries that hit (:mod:`mailsrv.dnslist`) add up to the client's
score, allowlist entries counting negative, as Postfix's postscreen scores;
a score of ``dnsbl_threshold`` or more refuses the client with ``554 5.7.1``
naming the lists:

* at RCPT by default (``dnsbl_at = "rcpt"``): every recipient but
  postmaster is refused, so a listed sender can still write to postmaster
  about it (RFC 5321 4.5.1), and the lookups had the EHLO and MAIL
  round trips to finish in.  Postfix refuses its ``reject_rbl_client`` at
  RCPT for the same reasons (``smtpd_delay_reject``);
* or instead of the greeting (``"connect"``): the session then takes only
  QUIT (RFC 5321 3.1, :mod:`mailsrv.smtp.server`).

A list that fails or does not answer in time counts as not listing the
client (logged): a DNS problem never refuses mail.  Trusted networks,
submission and logged-in clients are not looked up.  What the lists said
of an address is kept for the shortest TTL of their answers (at most
:data:`KEEP_MAX` seconds, :data:`KEEP_MISS` when nothing was listed) in a
table of at most :data:`TRACKED` addresses, so a client that reconnects
costs no lookup; a result with a failed list is not kept.  A client the
lists know of is logged once per connection (:meth:`mailsrv.net.audit.Audit.listed`),
in a line a fail2ban filter can match (``etc/fail2ban/filter.d/mailsrv-dnsbl.conf``).
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from mailsrv.dnslist import DNSList, lookup, query_name
from mailsrv.net.aging import forget_old, trim
from mailsrv.net.session import Networks
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.smtp import replies

if TYPE_CHECKING:
    from mailsrv.address import Mailbox
    from mailsrv.config.policy import PolicyConfig
    from mailsrv.net.audit import Audit
    from mailsrv.net.session import Session

log = Logger()

#: Longest a result is kept, whatever the TTLs say (seconds).
KEEP_MAX = 3600
#: How long an address no list knows of is kept (seconds): NXDOMAIN carries no TTL of its own here.
KEEP_MISS = 300
#: Addresses whose results are kept; past that the oldest is forgotten.
TRACKED = 10000


@dataclass(frozen=True)
class Listing:
    """What the lists say of one address: each entry that hit, with the answer it matched."""

    hits: tuple[tuple[DNSList, str], ...] = ()

    @property
    def score(self) -> int:
        """The weights of the hits added up (allowlist entries are negative)."""
        return sum(entry.weight for entry, _ in self.hits)

    @property
    def blocking(self) -> tuple[str, ...]:
        """The blocklist zones that hit, in the configured order, each once."""
        return tuple(dict.fromkeys(entry.zone for entry, _ in self.hits if entry.weight > 0))

    @property
    def allowlisted(self) -> bool:
        """An allowlist knows the address."""
        return any(entry.weight < 0 for entry, _ in self.hits)


NOT_LISTED = Listing()


class Blocklists(Check):
    """The ``[policy] dnsbl`` / ``dnswl`` check; results are kept and lookups timed on *clock*."""

    def __init__(self, policy: "PolicyConfig", audit: "Audit", clock: IReactorTime) -> None:
        self._audit = audit
        self._clock = clock
        #: address -> (when found, seconds to keep, listing), oldest first.
        self._kept: OrderedDict[str, tuple[float, float, Listing]] = OrderedDict()
        self.configure(policy)
        #: Addresses being looked up -> the Deferreds waiting for them.
        self._waiting: dict[str, list[defer.Deferred[Listing]]] = {}
        #: What the lists said of each session's client (read by the RCPTs and :meth:`welcome`).
        self._sessions: "weakref.WeakKeyDictionary[Session, Listing]" = weakref.WeakKeyDictionary()
        #: The sessions whose hits were logged (once per connection).
        self._logged: "weakref.WeakSet[Session]" = weakref.WeakSet()

    def configure(self, policy: "PolicyConfig") -> None:
        """Judge the clients that connect from now on by *policy* (made and SIGHUP).

        The listings kept were asked of the old lists, so they go; the
        sessions already judged keep their verdict.
        """
        self._kept.clear()
        self._lists = policy.dns_lists()
        self._zones = tuple(dict.fromkeys(entry.zone for entry in self._lists))
        self._threshold = policy.dnsbl_threshold
        self._at_connect = policy.dnsbl_at == "connect"
        self._timeout = policy.dnsbl_timeout
        self._trusted = Networks(policy.networks())

    def _exempt(self, ctx: CheckContext) -> bool:
        session = ctx.session
        return (not self._lists or ctx.dns is None or session.kind.submission or session.user is not None
                or session.peer_ip in self._trusted)

    def connect(self, ctx: CheckContext) -> "Verdict | defer.Deferred[Verdict]":
        """Start the lookups; with ``dnsbl_at = "connect"`` wait for them and judge."""
        if self._exempt(ctx):
            return ACCEPT
        listing = self.listing(ctx)
        if not self._at_connect:
            return ACCEPT  # the answers come in while the client says EHLO and MAIL
        return defer.Deferred.fromCoroutine(self._judge(ctx.session, listing))

    async def rcpt(self, ctx: CheckContext, recipient: "Mailbox") -> Verdict:
        """With ``dnsbl_at = "rcpt"``: 554 5.7.1 for a listed client, except to postmaster."""
        if self._at_connect or self._exempt(ctx) or recipient.local.lower() == "postmaster":  # RFC 5321 4.5.1
            return ACCEPT
        return await self._judge(ctx.session, self.listing(ctx))

    def welcome(self, session: "Session") -> bool:
        """Whether an allowlist knows the client of *session* (greylisting lets it through)."""
        listing = self._sessions.get(session)
        return listing is not None and listing.allowlisted

    async def _judge(self, session: "Session", pending: "defer.Deferred[Listing]") -> Verdict:
        listing = await pending
        refused = listing.score >= self._threshold
        if listing.hits and session not in self._logged:
            self._logged.add(session)
            self._audit.listed(session, [f"{entry.zone}:{answer}" for entry, answer in listing.hits],
                               listing.score, refused)
        if not refused:
            return ACCEPT
        return reject(replies.BLOCKLISTED(ip=session.peer_ip, lists=", ".join(listing.blocking)))

    def listing(self, ctx: CheckContext) -> "defer.Deferred[Listing]":
        """What the lists say of the session's client (never fails).

        The session's own answer if it has one (a listing with a failed
        list is not kept for others, but holds for the whole connection),
        else a kept one, else the one being looked up, else a new lookup.
        """
        session = ctx.session
        known = self._sessions.get(session)
        if known is not None:
            return defer.succeed(known)
        return self._for_address(ctx).addCallback(self._remember, session)

    def _remember(self, listing: Listing, session: "Session") -> Listing:
        self._sessions[session] = listing
        return listing

    def _for_address(self, ctx: CheckContext) -> "defer.Deferred[Listing]":
        ip = ctx.session.peer_ip
        now = self._clock.seconds()
        forget_old(self._kept, now, KEEP_MAX, _found_at)
        kept = self._kept.get(ip)
        if kept is not None and now - kept[0] < kept[1]:
            return defer.succeed(kept[2])
        waiter: defer.Deferred[Listing] = defer.Deferred()
        if ip in self._waiting:
            self._waiting[ip].append(waiter)
            return waiter
        self._waiting[ip] = [waiter]
        looked_up = defer.Deferred.fromCoroutine(self._look_up(ctx, ip))
        looked_up.addErrback(self._bug, ip)
        looked_up.addCallback(self._answer, ip)
        return waiter

    async def _look_up(self, ctx: CheckContext, ip: str) -> tuple[Listing, float]:
        """Ask every zone at once; the listing and how long to keep it (0: not at all)."""
        results = await defer.gatherResults([self._ask(ctx, zone, ip) for zone in self._zones])
        answers = dict(zip(self._zones, results))
        keep: float = KEEP_MAX
        for answer in answers.values():
            keep = 0 if answer is None else min(keep, answer[1] if answer[0] else KEEP_MISS)
        hits: list[tuple[DNSList, str]] = []
        for entry in self._lists:
            answer = answers[entry.zone]
            matched = [address for address in (answer[0] if answer else ()) if entry.matches(address)]
            if matched:
                hits.append((entry, matched[0]))  # an entry counts once, however many answers match
        return Listing(tuple(hits)), keep

    def _ask(self, ctx: CheckContext, zone: str, ip: str) -> "defer.Deferred[tuple[tuple[str, ...], int] | None]":
        """One zone's answer in the ``dns`` pool, ``None`` (logged) if it failed or took too long."""
        name = query_name(ip, zone)
        if name is None:
            return defer.succeed(None)
        assert ctx.dns is not None
        # A Deferred of our own to time out: the pool's job, which the resolver's lifetime bounds, is
        # left to end by itself (a job waiting in a busy pool counts against the timeout too).
        answer: defer.Deferred[Any] = defer.Deferred()
        ctx.dns.run(lookup, ctx.resolver, name, self._timeout).addBoth(answer.callback)
        answer.addTimeout(self._timeout, self._clock)

        def failed(failure: Any) -> None:
            log.warn("DNS list {zone} gave no answer about {client_ip}: {error}; not counted", zone=zone,
                     client_ip=ip, error=failure.getErrorMessage() or failure.type.__name__)

        return answer.addErrback(failed)

    def _bug(self, failure: Any, ip: str) -> tuple[Listing, float]:
        log.failure("DNS list lookup of {client_ip} failed", failure, client_ip=ip)
        return NOT_LISTED, 0

    def _answer(self, result: tuple[Listing, float], ip: str) -> None:
        """Keep the listing (as long as it may be kept) and hand it to every waiter."""
        listing, keep = result
        if keep > 0:
            self._kept.pop(ip, None)
            self._kept[ip] = (self._clock.seconds(), keep, listing)
            trim(self._kept, TRACKED)
        for waiter in self._waiting.pop(ip, []):
            waiter.callback(listing)


def _found_at(entry: tuple[float, float, Listing]) -> float:
    return entry[0]

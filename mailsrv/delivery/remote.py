"""Delivery to other servers: MX hosts or a smarthost, under the TLS policy and connection caps.

:class:`RemoteDelivery` is the :class:`~mailsrv.delivery.attempt.IRemoteDelivery`
the queue calls.  For one message and one destination it picks the route
(:mod:`.routing`) and the TLS policy (:mod:`.tlspolicy`: a per-domain rule,
MTA-STS or the default), finds the hosts (:mod:`.mx`, in the ``dns`` pool),
tries each address of each host in order until one takes the transaction
(:mod:`.dialogue`), and turns every problem into per-recipient results.  A host that refuses the connection,
times out, breaks off or fails the TLS policy only moves it on to the next;
DEFERRED comes back once every host was tried.  Where an MX host has
validated TLSA records, DANE (:mod:`.dane`) sets its TLS policy instead of
MTA-STS or the default (RFC 8461 2); a per-domain rule's ``tls``, the
relay and ``none`` keep theirs.  A session that ended its transaction
well is kept open for the next message to the same destination
(:mod:`.reuse`), which then needs no DNS lookup and no handshake.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial

from twisted.internet import defer
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from zope.interface import implementer

from mailsrv.config import Config, ConfigError
from mailsrv.config.delivery import DeliveryConfig
from mailsrv.delivery import clienttls, dane, mx, requiretls, reuse, routing
from mailsrv.delivery.attempt import IRemoteDelivery, Options, Outcome, RecipientResult
from mailsrv.delivery.dialogue import (
    RequireTLSUnsupported, Transaction, TLSBroken, TLSPolicy, TryNextHost, mail_transaction, open_session,
)
from mailsrv.delivery.mtasts.cache import PolicyStore
from mailsrv.delivery.mtasts.discovery import Policies
from mailsrv.delivery.mtasts.fetch import Fetcher
from mailsrv.delivery.smtpclient import ClientConnection
from mailsrv.delivery.tlsaudit import AuditContext
from mailsrv.delivery.tlspolicy import Decision, TLSPolicies
from mailsrv.dns import make_resolver
from mailsrv.message.body import Body
from mailsrv.workers import Workers

log = Logger()

#: Seconds a TCP connection may take to open before the next address is tried.
CONNECT_TIMEOUT = 30.0
#: The relay port that speaks TLS from the first octet (RFC 8314 submissions).
IMPLICIT_TLS_PORT = 465


class _Slots:
    """At most *total* transactions at once, and at most *each* per destination.

    A slot given back goes to the first message waiting for one, unless a
    message waits for a destination that has a session parked
    (*parked*: those destinations): that one goes first, onto the parked
    session.  Strictly first come, a slot went to a destination without one,
    whose new connection then had to end a parked session elsewhere to stay
    within ``max_connections``, whose next message needed a new connection
    in turn: with as many busy destinations as slots, three connections
    in four were new, a TLS handshake each.
    """

    def __init__(self, total: int, each: int, parked: Callable[[], Iterable[str]] = tuple) -> None:
        self._free = total
        self._each = each
        self._parked = parked
        self._by_destination: dict[str, defer.DeferredSemaphore] = {}
        #: Waiting for the total, first come first: all of them, and each destination's.
        self._queue: deque[tuple[str, defer.Deferred[None]]] = deque()
        self._waiting: dict[str, deque[defer.Deferred[None]]] = {}
        #: Transactions under way (both slots held) per destination.
        self._running: dict[str, int] = {}

    async def acquire(self, destination: str) -> None:
        """Wait for a slot for *destination*."""
        semaphore = self._by_destination.setdefault(destination, defer.DeferredSemaphore(self._each))
        await semaphore.acquire()
        if self._free and not self._queue:
            self._free -= 1
        else:
            turn: defer.Deferred[None] = defer.Deferred()
            self._queue.append((destination, turn))
            self._waiting.setdefault(destination, deque()).append(turn)
            try:
                await turn
            except BaseException:  # cancelled (the queue stops): the turn is skipped when reached
                semaphore.release()
                self._forget_if_unused(destination)
                raise
        self._running[destination] = self._running.get(destination, 0) + 1

    def others(self, destination: str) -> int:
        """Transactions to *destination* under way besides the caller's (not those still waiting for a slot)."""
        return self._running.get(destination, 1) - 1

    @property
    def free(self) -> int:
        """Transactions that could start now without waiting for the total."""
        return self._free

    def release(self, destination: str) -> None:
        """Give the slot back; a destination nobody uses any more is forgotten.

        The destination's own waiter, if any, is let in to wait for the
        total first, so that it can take the session just parked.
        """
        running = self._running[destination] - 1
        if running:
            self._running[destination] = running
        else:
            del self._running[destination]
        self._by_destination[destination].release()
        self._give()
        self._forget_if_unused(destination)

    def _forget_if_unused(self, destination: str) -> None:
        semaphore = self._by_destination[destination]
        if semaphore.tokens == self._each and not semaphore.waiting:
            del self._by_destination[destination]

    def _give(self) -> None:
        """The freed total slot: to a waiter for a parked session's destination, else the first in line."""
        for destination in self._parked():
            turn = self._next_turn(destination)
            if turn is not None:
                turn.callback(None)
                return
        while self._queue:
            destination, turn = self._queue.popleft()
            if not turn.called:
                self._next_turn(destination)  # *turn*: the first of its destination's too
                turn.callback(None)
                return
        self._free += 1

    def _next_turn(self, destination: str) -> "defer.Deferred[None] | None":
        """Take the first turn still waiting for *destination* out of its line, or None."""
        line = self._waiting.get(destination)
        while line:
            turn = line.popleft()
            if not turn.called:
                if not line:
                    del self._waiting[destination]
                return turn
        self._waiting.pop(destination, None)
        return None


@dataclass(frozen=True)
class Settings:
    """How :class:`RemoteDelivery` sends (from ``[delivery]``, see :func:`make_remote_delivery`)."""

    helo: str
    mx_port: int
    #: The CAs a verified certificate must chain to.
    trust: object
    #: ``[delivery]``: the relay and the per-domain routes (:func:`mailsrv.delivery.routing.route`).
    delivery: DeliveryConfig
    #: AUTH at ``[delivery] relay`` (no other server gets them).
    credentials: tuple[str, str] | None = None
    implicit_tls_port: int = IMPLICIT_TLS_PORT


@implementer(IRemoteDelivery)
class RemoteDelivery:
    """Sends by MX or through the relay, at most *max_connections* at once, *per_domain* to each destination."""

    def __init__(
        self, settings: Settings, reactor: object, workers: Workers, resolver: object, policies: TLSPolicies,
        max_connections: int = 20, per_domain: int = 3,
    ) -> None:
        self._settings = settings
        self._reactor = reactor
        self._dns = workers.dns
        self._resolver = resolver
        self._policies = policies
        self._unverified = clienttls.Unverified()
        self._audit = AuditContext(settings.trust)
        self._idle = reuse.IdleSessions(reactor)
        self._slots = _Slots(max_connections, per_domain, self._idle.destinations)

    def deliver(
        self, queue_id: str, sender: str, recipients: Sequence[str], body: Body, options: Options = Options(),
    ) -> "defer.Deferred[list[RecipientResult]]":
        """See :meth:`IRemoteDelivery.deliver`."""
        domain = recipients[0].rpartition("@")[2].lower()
        route = routing.route(self._settings.delivery, domain)
        tx = Transaction(self._settings.helo, sender, recipients, body,
                         self._settings.credentials if route.configured else None, options)
        d = defer.Deferred.fromCoroutine(self._deliver(queue_id, tx, domain, route))

        def unexpected(failure: object) -> list[RecipientResult]:
            log.failure("delivery of {queue_id} failed unexpectedly", failure, queue_id=queue_id)
            return [RecipientResult(r, Outcome.DEFERRED, "451 4.3.0 internal error while sending") for r in recipients]

        return d.addErrback(unexpected)

    def close(self) -> "defer.Deferred[None]":
        """See :meth:`IRemoteDelivery.close`: the sessions kept for reuse end with QUIT."""
        return self._idle.close()

    async def _deliver(self, queue_id: str, tx: Transaction, domain: str, route: routing.Route) -> list[RecipientResult]:
        # Slots and kept sessions are per relay (the configured one apart: its sessions are logged in) or domain.
        destination = f"{'relay' if route.configured else 'route'} {route.relay}" if route.relay else domain
        await self._slots.acquire(destination)
        try:
            return await self._send(queue_id, tx, destination, domain, route)
        finally:
            self._slots.release(destination)

    async def _send(
        self, queue_id: str, tx: Transaction, destination: str, domain: str, route: routing.Route,
    ) -> list[RecipientResult]:
        busy = self._slots.others(destination) > 0  # another message to it is under way: wait for its session
        destination = requiretls.sessions_key(destination, tx.options)
        reused = await self._reuse(tx, destination, busy)  # opened under the policy of that time: minutes old at most
        if reused is None:
            return await self._over_hosts(queue_id, tx, destination, domain, route, [])
        if not _next_host_may_take(reused):
            return reused
        return await self._over_hosts(queue_id, tx, destination, domain, route, reused)

    async def _over_hosts(
        self, queue_id: str, tx: Transaction, destination: str, domain: str, route: routing.Route,
        tried: list[RecipientResult],
    ) -> list[RecipientResult]:
        """*tx* to the hosts of *route* in order, each recipient on to the next host until one settles it
        or none is left; a result for each recipient.

        *tried* are the results of a kept session (:meth:`_reuse`), whose
        host is not tried again: only the recipients it deferred go on.
        """
        everyone = tx.recipients
        done = {r.recipient: r for r in tried}
        skip = (tried[0].host, tried[0].ip) if tried else None
        tx = replace(tx, recipients=_next_host_may_take(tried) if tried else everyone)
        decided = await self._policies.decide(domain, route)
        decision = requiretls.decision(decided, tx.options, relay=route.relay is not None)
        try:
            if route.relay:
                hosts = [await self._dns.run(mx.resolve_relay, self._resolver, route.relay[0])]
            else:
                hosts = await self._dns.run(mx.resolve_hosts, self._resolver, domain, self._settings.helo)
        except mx.Unroutable as e:
            return _everyone(tx, Outcome.FAILED, str(e), done, everyone)
        except mx.DNSTrouble as e:
            return _everyone(tx, Outcome.DEFERRED, str(e), done, everyone)
        port = route.relay[1] if route.relay else self._settings.mx_port
        allowed = decision.hosts(queue_id, hosts)
        if not allowed:
            return _everyone(tx, Outcome.DEFERRED, decision.no_hosts_reply(hosts), done, everyone)
        if not route.relay:
            allowed = requiretls.qualified(queue_id, allowed, decision, tx.options)
            if not allowed:
                names = ", ".join(host.name for host in hosts)
                reply = requiretls.NOT_VALIDATED.format(domain=domain, hosts=names)
                return _everyone(tx, Outcome.FAILED, reply, done, everyone)
        last = RecipientResult("", Outcome.DEFERRED, "")
        unsupported = None
        for host in allowed:
            decision.check_host(queue_id, host)
            for ip in host.addresses:
                if (host.name, ip) == skip:
                    continue
                try:
                    results = await self._try(queue_id, tx, destination, host, ip, port, route, decision)
                except TryNextHost as e:
                    log.info("{queue_id}: {host} [{ip}]:{port}: {reason}; next host", queue_id=queue_id,
                             host=host.name, ip=ip, port=port, reason=e.reply)
                    last = RecipientResult("", Outcome.DEFERRED, f"{e.reply} ({host.name} [{ip}]:{port})",
                                           host=host.name, ip=ip)
                    if isinstance(e, RequireTLSUnsupported):
                        unsupported = replace(last, outcome=Outcome.FAILED, reply=f"{requiretls.UNSUPPORTED} "
                                              f"({host.name} [{ip}]:{port})")
                    continue
                done.update((r.recipient, replace(r, host=host.name, ip=ip)) for r in results)
                again = _next_host_may_take(results)
                if not again:
                    return [done[r] for r in everyone]
                log.info("{queue_id}: {host} [{ip}]:{port} deferred {count} recipient(s): {reason}; next host",
                         queue_id=queue_id, host=host.name, ip=ip, port=port, count=len(again),
                         reason=done[again[0]].reply)
                tx = replace(tx, recipients=again)
        # Those still open keep the 4xx a host gave them, or get why no host could be reached; RFC 8689
        # 4.2.2.1: a host without REQUIRETLS cannot take the message, now or later.
        for r in tx.recipients:
            done.setdefault(r, replace(unsupported or last, recipient=r))
        return [done[r] for r in everyone]

    async def _reuse(self, tx: Transaction, destination: str, wait: bool) -> list[RecipientResult] | None:
        """*tx* on a session kept open to *destination*; None when there is none, or it broke before the message.

        With *wait*, when none is parked, the next one a transaction under way parks (a moment at most).
        """
        while True:
            session = self._idle.take(destination)
            if session is None and wait:
                session, wait = await self._idle.handed(destination), False
            if session is None:
                return None
            try:
                results = await mail_transaction(session.conn, tx, session.extensions, reset=True)
            except TryNextHost:  # RSET refused, or lost before the final reply: not taken, a new session may
                session.conn.close()
                continue
            self._idle.park(destination, session)
            return [replace(r, host=session.host, ip=session.ip) for r in results]

    async def _try(
        self, queue_id: str, tx: Transaction, destination: str, host: mx.Host, ip: str, port: int,
        route: routing.Route, decision: Decision,
    ) -> list[RecipientResult]:
        """One address: the transaction, again without TLS if ``may``'s handshake failed."""
        hostname = host.name
        implicit = route.relay is not None and port == self._settings.implicit_tls_port
        tls = self._tls_policy(hostname, implicit, decision.tls)
        dane_tls = await self._dane(host, port, decision, tx.options) if tls.attempt else None
        if dane_tls is not None:
            tls = dane_tls
        elif decision.testing and tls.attempt:
            report = partial(decision.report, queue_id, hostname, ip)
            tls = replace(tls, creator=self._audit.for_host(hostname, report))
        try:
            results = await self._connect(tx, destination, hostname, ip, port, tls, implicit)
        except TLSBroken as e:
            log.info("{queue_id}: {host} [{ip}]: {reason}; trying again without TLS", queue_id=queue_id,
                     host=hostname, ip=ip, reason=e.reply)
            plain = TLSPolicy(attempt=False, required=False)
            results = await self._connect(tx, destination, hostname, ip, port, plain, False)
        if decision.testing and not any(r.tls for r in results):
            decision.report(queue_id, hostname, ip, "the transaction ran without TLS")
        return results

    async def _dane(self, host: mx.Host, port: int, decision: Decision, options: Options) -> TLSPolicy | None:
        """The TLS *host*'s TLSA records demand, or None where DANE does not apply (RFC 7672 2.2).

        Only an MX host reached through validated MX and address records has
        its TLSA records looked up (RFC 7672 2.2.1), under the default policy
        or MTA-STS, which DANE goes before (RFC 8461 2); a failed lookup
        raises :class:`TryNextHost`.  A message with ``TLS-Required: No``
        sets DANE aside (RFC 8689 4.2.2.2); one with REQUIRETLS takes DANE's
        authentication for the verified TLS it needs, but not the
        encryption alone that records none of which is usable give
        (RFC 8689 4.2.2.1: then the certificate is verified as without DANE).
        """
        if options.tls_optional and not options.require_tls:
            return None
        if not (self._settings.delivery.dane and host.secure and decision.source in ("default", "mta-sts")):
            return None
        tlsa = await self._dns.run(dane.lookup, self._resolver, host, port)
        if tlsa is None:
            return None
        policy = dane.tls_policy(tlsa, decision.domain, self._unverified)
        return None if options.require_tls and policy.authenticate is None else policy

    def _tls_policy(self, hostname: str, implicit: bool, policy: str) -> TLSPolicy:
        """STARTTLS per *policy*; on the relay's implicit TLS port, TLS from the start."""
        if policy == "none" and not implicit:
            return TLSPolicy(attempt=False, required=False)
        hostname = mx.address_literal(hostname) or hostname  # a literal's certificate names its IP
        if policy == "verify":
            creator = clienttls.verifying(hostname, self._settings.trust)
        else:
            creator = self._unverified.for_host(hostname)
        return TLSPolicy(attempt=not implicit, required=implicit or policy in ("encrypt", "verify"), creator=creator)

    async def _connect(
        self, tx: Transaction, destination: str, hostname: str, ip: str, port: int, tls: TLSPolicy, implicit: bool,
    ) -> list[RecipientResult]:
        """A new session to *ip*, *tx* on it, and the session parked for the next message to *destination*."""
        await self._idle.evict(self._slots.free)  # so that parked and busy connections stay within the total
        kind = TCP6ClientEndpoint if ":" in ip else TCP4ClientEndpoint
        endpoint = kind(self._reactor, ip, port, timeout=CONNECT_TIMEOUT)
        if implicit:
            endpoint = wrapClientTLS(tls.creator, endpoint)
        try:
            conn = await endpoint.connect(_connection_factory(self._reactor))
        except ConnectError as e:  # refused, unreachable, timed out: all mean "next host"
            raise TryNextHost(f"cannot connect: {e}") from None
        opened = self._reactor.seconds()
        try:
            extensions = await open_session(conn, tx, tls)
            results = await mail_transaction(conn, tx, extensions)
        except BaseException:
            conn.close()
            raise
        self._idle.park(destination, reuse.Session(conn, extensions, hostname, ip, opened))
        return results


def _connection_factory(reactor: object) -> Factory:
    """The factory of one outbound connection; quiet, or each connection logged two lines of Twisted's."""
    factory = Factory.forProtocol(lambda: ClientConnection(reactor))
    factory.noisy = False
    return factory


def _next_host_may_take(results: Sequence[RecipientResult]) -> list[str]:
    """The recipients of one host's transaction that go on to the next host now.

    A 4xx says only that this host did not take the message now: the next
    MX may (RFC 5321 5.1: every MX is tried before deferring).  But only
    while the host delivered to none of them: a delivery goes back to the
    queue at once, to be written before anything else is tried, so that a
    crash resends no recipient beyond that write (the at-least-once
    window); the others then wait for their retry.
    """
    if any(r.outcome is Outcome.DELIVERED for r in results):
        return []
    return [r.recipient for r in results if r.next_host_may_take]


def _everyone(
    tx: Transaction, outcome: Outcome, reply: str, done: dict[str, RecipientResult], everyone: Sequence[str],
) -> list[RecipientResult]:
    """A result for each of *everyone*: *done*'s, but *outcome* and *reply* for *tx*'s recipients."""
    done.update((r, RecipientResult(r, outcome, reply)) for r in tx.recipients)
    return [done[r] for r in everyone]


def make_remote_delivery(
    config: Config, reactor: object, workers: Workers, resolver: object = None,
    implicit_tls_port: int = IMPLICIT_TLS_PORT,
) -> IRemoteDelivery:
    """The sender for the queue, from ``[delivery]`` and ``[dns]``; ConfigError names a bad key and its file.

    *resolver* is the server's one resolver; without it one is made from
    ``[dns]``.  *implicit_tls_port* is the relay port that means TLS from the
    start (tests, which cannot listen on 465, name theirs).
    """
    delivery = config.delivery
    credentials = None
    if delivery.relay and delivery.relay_username:
        credentials = (delivery.relay_username, _password(config))
    trust = clienttls.trust_root(config)
    settings = Settings(
        helo=config.hostname, mx_port=delivery.mx_port, trust=trust, delivery=delivery,
        credentials=credentials, implicit_tls_port=implicit_tls_port,
    )
    resolver = resolver or make_resolver(config.dns)
    sts = None
    if delivery.mta_sts:
        sts = Policies(
            resolver=resolver, dns=workers.dns, disk=workers.disk, store=PolicyStore(config.mta_sts_dir),
            fetcher=Fetcher(reactor, resolver, workers.dns, trust, delivery.mta_sts_port), clock=reactor,
        )
    return RemoteDelivery(
        settings, reactor, workers, resolver, TLSPolicies(delivery, sts),
        max_connections=delivery.max_connections, per_domain=delivery.max_connections_per_domain,
    )


def _password(config: Config) -> str:
    path = config.delivery.relay_password_file
    where = f"{config.source}: delivery.relay_password_file"
    if not path:
        raise ConfigError(f"{where}: needed with relay_username")
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{where}: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None

"""The MTA-STS policy in force for a recipient domain, found as RFC 8461 3 and 5.1 lay out.

Each delivery attempt asks :meth:`Policies.policy`.  The ``_mta-sts`` TXT
record is looked up (the resolver caches it for its TTL); a policy cached
for the same ``id`` and not past its ``max_age`` is used as it is,
otherwise the policy file is fetched and cached.  When no fresh policy can
be had (no TXT record, DNS trouble, the fetch fails) an unexpired cached
policy still applies (RFC 8461 3.3), so an attacker who blocks the policy
host or the TXT lookup cannot turn ``enforce`` off for a domain we already
know.  Attempts to one domain at once share one lookup and one fetch.
"""

from __future__ import annotations

import dns.exception
import dns.resolver
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.delivery.mtasts.cache import Entry, PolicyStore, cacheable
from mailsrv.delivery.mtasts.fetch import Fetcher, FetchError
from mailsrv.delivery.mtasts.policy import Policy, PolicyError, parse_policy, record_id
from mailsrv.workers import Executor

log = Logger()


class NoRecord(Exception):
    """No usable ``_mta-sts`` TXT record now; the message says why."""


def lookup_id(resolver: dns.resolver.Resolver, domain: str) -> str:
    """The ``id`` of *domain*'s ``_mta-sts`` TXT record (RFC 8461 3.1); blocking; :class:`NoRecord` if none."""
    try:
        answer = resolver.resolve(f"_mta-sts.{domain}", "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        raise NoRecord("no _mta-sts TXT record") from None
    except dns.exception.DNSException as e:
        raise NoRecord(f"the _mta-sts TXT lookup failed ({e.__class__.__name__})") from None
    # RFC 8461 3.1: the strings of one record are joined without spaces.
    records = [b"".join(r.strings).decode("ascii", "replace") for r in answer]
    try:
        return record_id(records)
    except PolicyError as e:
        raise NoRecord(str(e)) from None


class Policies:
    """Policies by domain: memory in front of *store*, *fetcher* behind; *clock* says when "now" is."""

    def __init__(
        self, *, resolver: object, dns: Executor, disk: Executor, store: PolicyStore, fetcher: Fetcher, clock: object,
    ) -> None:
        self._resolver = resolver
        self._dns = dns
        self._disk = disk
        self._store = store
        self._fetcher = fetcher
        self._clock = clock
        #: What we know per domain: its entry, or None once the disk was found to have none.
        self._memory: dict[str, Entry | None] = {}
        #: Callers waiting for the discovery running for a domain.
        self._waiting: dict[str, list[defer.Deferred[Policy | None]]] = {}

    def policy(self, domain: str) -> "defer.Deferred[Policy | None]":
        """The policy that applies to mail for *domain* now, ``None`` when it has none."""
        if not cacheable(domain):
            return defer.succeed(None)
        result: defer.Deferred[Policy | None] = defer.Deferred()
        waiting = self._waiting.setdefault(domain, [])
        waiting.append(result)
        if len(waiting) == 1:
            defer.Deferred.fromCoroutine(self._discover(domain)).addBoth(self._answer, domain)
        return result

    def _answer(self, result: Policy | None | Failure, domain: str) -> None:
        for waiter in self._waiting.pop(domain):
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(result)

    async def _discover(self, domain: str) -> Policy | None:
        now = self._clock.seconds()
        cached = await self._known(domain)
        if cached is not None and not cached.fresh(now):
            cached = None  # RFC 8461 3.2: past max_age it no longer applies
        try:
            current = await self._dns.run(lookup_id, self._resolver, domain)
        except NoRecord as e:
            if cached is not None:
                log.debug("MTA-STS {domain}: {reason}; the cached policy applies", domain=domain, reason=e)
            return cached.policy if cached is not None else None
        if cached is not None and cached.id == current:
            return cached.policy
        stored = await self._disk.run(self._store.read, domain)  # another server may have fetched it already
        if stored is not None and stored.id == current and stored.fresh(now):
            self._memory[domain] = stored
            return stored.policy
        try:
            policy = parse_policy(await self._fetcher.fetch(domain))
        except (FetchError, PolicyError) as e:
            log.warn("MTA-STS {domain}: cannot fetch the policy {url}: {reason}{cached}", domain=domain,
                     url=self._fetcher.url(domain), reason=e,
                     cached="; the cached policy applies" if cached is not None else "")
            return cached.policy if cached is not None else None
        entry = Entry(current, policy, self._clock.seconds())
        self._memory[domain] = entry
        try:
            await self._disk.run(self._store.write, domain, entry)
        except OSError as e:  # the policy applies all the same; only a restart would forget it
            log.error("MTA-STS {domain}: cannot write {path}: {error}", domain=domain,
                      path=self._store.path(domain), error=e)
        log.info("MTA-STS {domain}: policy {id} fetched: mode {mode}, mx {mx}, max_age {max_age}", domain=domain,
                 id=current, mode=policy.mode.value, mx=" ".join(policy.mx), max_age=policy.max_age)
        return policy

    async def _known(self, domain: str) -> Entry | None:
        """The entry in memory, read from the disk the first time."""
        if domain not in self._memory:
            self._memory[domain] = await self._disk.run(self._store.read, domain)
        return self._memory[domain]


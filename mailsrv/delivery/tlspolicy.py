"""The TLS policy of one transaction: a ``[delivery.domains]`` rule, else MTA-STS, else the default.

:meth:`TLSPolicies.decide` answers, for a recipient domain and its
:class:`~mailsrv.delivery.routing.Route`, with a :class:`Decision`:

* a rule's ``tls`` wins over everything (the admin knows better than DNS);
* mail through a relay is under ``relay_tls``; MTA-STS is about MX hosts;
* a domain's MTA-STS policy (:mod:`mailsrv.delivery.mtasts`) in mode
  ``enforce`` means ``verify`` and only the MX hosts it lists (RFC 8461 5);
  in mode ``testing`` the default applies and each failure ``enforce``
  would have caused is logged (:meth:`Decision.report`);
* otherwise ``[delivery] tls``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from twisted.logger import Logger

from mailsrv.config.delivery import DeliveryConfig
from mailsrv.delivery.mtasts.discovery import Policies
from mailsrv.delivery.mtasts.policy import Mode, Policy
from mailsrv.delivery.mx import Host
from mailsrv.delivery.routing import Route, domain_key

log = Logger()


@dataclass(frozen=True)
class Decision:
    """What one transaction does about TLS, and why."""

    #: The recipient domain (canonical), for the log.
    domain: str
    #: ``none``, ``may``, ``encrypt`` or ``verify``.
    tls: str
    #: Where :attr:`tls` came from: ``rule``, ``relay``, ``mta-sts`` or ``default``.
    source: str
    #: The domain's MTA-STS policy when its mode is ``enforce`` or ``testing``.
    sts: Policy | None = None

    @property
    def testing(self) -> bool:
        """Whether MTA-STS failures are only to be reported."""
        return self.sts is not None and self.sts.mode is Mode.TESTING

    def hosts(self, queue_id: str, hosts: Sequence[Host]) -> list[Host]:
        """The MX hosts to try (RFC 8461 4.1, 5): under ``enforce`` only those the policy lists."""
        if self.sts is None or self.sts.mode is not Mode.ENFORCE:
            return list(hosts)
        allowed = [host for host in hosts if self.sts.allows(host.name)]
        for host in hosts:
            if host not in allowed:
                log.info("{queue_id}: {host} is not an MX host the MTA-STS policy of {domain} lists; skipped",
                         queue_id=queue_id, host=host.name, domain=self.domain)
        return allowed

    def no_hosts_reply(self, hosts: Sequence[Host]) -> str:
        """Why nothing was tried when :meth:`hosts` left none (a temporary failure: the policy may change)."""
        names = ", ".join(host.name for host in hosts)
        return f"451 4.7.5 no MX host of {self.domain} ({names}) is listed in its MTA-STS policy (enforce)"

    def check_host(self, queue_id: str, host: Host) -> None:
        """Under ``testing``: report *host* if the policy does not list it."""
        if self.testing and not self.sts.allows(host.name):
            self.report(queue_id, host.name, "", "the MX host is not listed in the policy")

    def report(self, queue_id: str, host: str, ip: str, failure: str) -> None:
        """One log line for a failure ``testing`` lets pass and ``enforce`` would not (RFC 8461 5)."""
        log.warn("{queue_id}: MTA-STS testing: {domain}: {host} [{ip}]: {failure}; "
                 "delivering anyway (enforce would not)", queue_id=queue_id, domain=self.domain, host=host,
                 ip=ip or "-", failure=failure, mta_sts="testing")


class TLSPolicies:
    """Decides the TLS policy per destination from ``[delivery]``; *sts* is None when MTA-STS is off."""

    def __init__(self, delivery: DeliveryConfig, sts: Policies | None) -> None:
        self._delivery = delivery
        self._sts = sts

    async def decide(self, domain: str, route: Route) -> Decision:
        """The decision for mail to *domain* going the way *route* says."""
        domain = domain_key(domain)
        rule = self._delivery.domains.get(domain)
        if rule is not None and rule.tls:
            return Decision(domain, rule.tls, "rule")
        if route.relay is not None:
            return Decision(domain, self._delivery.relay_tls, "relay")
        policy = await self._sts.policy(domain) if self._sts is not None else None
        if policy is not None and policy.mode is Mode.ENFORCE:
            return Decision(domain, "verify", "mta-sts", policy)
        if policy is not None and policy.mode is Mode.TESTING:
            return Decision(domain, self._delivery.tls, "default", policy)
        return Decision(domain, self._delivery.tls, "default")

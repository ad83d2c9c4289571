"""Which way mail for a recipient domain leaves: its MX hosts, the relay, or a server of its own.

``[delivery] relay`` sends every remote message through one smarthost;
``[delivery.domains]`` may send one domain by MX all the same (``route =
"mx"``: a partner reachable directly, a provider that refuses the relay) or
through another server (``route = "host:port"``).  The queue puts the
recipients of one :func:`group` into one SMTP transaction, and the sender
connects where :func:`route` says.  The relay password goes to the
configured relay only, never to a per-domain server.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.address import canonical_domain
from mailsrv.config.delivery import ROUTE_MX, DeliveryConfig, parse_relay


@dataclass(frozen=True)
class Route:
    """Where one domain's mail goes."""

    #: ``(host, port)`` of the server to hand it to, or None for the domain's MX hosts.
    relay: tuple[str, int] | None = None
    #: Whether that server is ``[delivery] relay`` (which gets AUTH), not one of ``[delivery.domains]``.
    configured: bool = False


def domain_key(domain: str) -> str:
    """*domain* as ``[delivery.domains]`` names it: canonical (IDNA, lower case) when it is a DNS name."""
    return canonical_domain(domain) or domain.lower()


def route(delivery: DeliveryConfig, domain: str) -> Route:
    """The route of mail for *domain*: its ``[delivery.domains]`` rule, else ``relay``, else its MX hosts."""
    rule = delivery.domains.get(domain_key(domain))
    if rule is not None and rule.route == ROUTE_MX:
        return Route()
    if rule is not None and rule.route:
        return Route(parse_relay(rule.route))
    if delivery.relay:
        return Route(parse_relay(delivery.relay), configured=True)
    return Route()


def group(delivery: DeliveryConfig, domain: str) -> object:
    """What recipients share to share a transaction: their relay, or (by MX) their domain."""
    way = route(delivery, domain)
    return way if way.relay is not None else domain_key(domain)

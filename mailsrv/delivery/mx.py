"""Where mail for a domain goes: its MX hosts and their addresses (RFC 5321 5.1, RFC 7505).

The lookups are dnspython's and block, so :func:`resolve_hosts` runs in the
``dns`` pool as one job: the MX query, then each host's AAAA and A queries.
The result is the list of hosts to try in order; every kind of failure is
one of two exceptions, because the queue only needs to know whether trying
again later can help.  Each host says whether its name and addresses came
from answers the resolver validated (DNSSEC), which DANE needs
(RFC 7672 2.2.1), and whether its MX records alone were, which REQUIRETLS
needs (RFC 8689 4.2.2.1).
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, replace
from itertools import groupby

import dns.exception
import dns.name
import dns.resolver

from mailsrv.dns import is_secure

#: What we say when a domain's MX is the null MX (RFC 7505 3.2 suggests 556 with 5.1.10).
NULL_MX_REPLY = "556 5.1.10 {domain} accepts no mail (null MX, RFC 7505)"


class Unroutable(Exception):
    """Mail for this destination can never be delivered (no such domain, null MX, no address)."""


class DNSTrouble(Exception):
    """The lookup failed for now (timeout, SERVFAIL): try again later."""


@dataclass(frozen=True)
class Host:
    """One host to try: its name as the MX record gives it, and its addresses, IPv6 first."""

    name: str
    addresses: tuple[str, ...]
    #: The MX records naming it (or their validated absence, for the implicit MX) and every address
    #: record we connect to were validated (AD): its TLSA records can be trusted (RFC 7672 2.2.1).
    secure: bool = False
    #: The MX records naming it (or their absence, for the implicit MX) were validated (AD), whatever
    #: its address records were: a REQUIRETLS message may go to it (RFC 8689 4.2.2.1).
    mx_validated: bool = False
    #: The name the address records were found at when *name* is an alias (CNAME), else "".
    canonical: str = ""


def address_literal(destination: str) -> str | None:
    """The IP of an address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``, RFC 5321 4.1.3), else None."""
    if not (destination.startswith("[") and destination.endswith("]")):
        return None
    inner = destination[1:-1]
    if inner[:5].lower() == "ipv6:":
        inner = inner[5:]
    try:
        return str(ipaddress.ip_address(inner))
    except ValueError:
        return None


def resolve_relay(resolver: dns.resolver.Resolver, name: str) -> Host:
    """The smarthost *name* (a host name or an IP) with its addresses; blocking.

    A relay without an address is a setting or DNS problem the operator
    fixes, so it raises :class:`DNSTrouble`: the mail waits, it is not bounced.
    """
    try:
        return Host(name, (str(ipaddress.ip_address(name)),))
    except ValueError:
        pass
    host = _host(resolver, name)
    if not host.addresses:
        raise DNSTrouble(f"451 4.4.4 the relay {name} has no address")
    return replace(host, secure=False)


def resolve_hosts(resolver: dns.resolver.Resolver, domain: str, me: str = "") -> list[Host]:
    """The hosts that take mail for *domain*, in the order to try them; blocking.

    MX records in preference order, equal preferences shuffled (RFC 5321
    5.1); the domain itself when it has no MX (the implicit MX).  When *me*
    (our host name) is one of them, it and every host not preferred to it
    are left out, so that mail never loops back to us.  Hosts without any
    address are left out.  Raises :class:`Unroutable` or :class:`DNSTrouble`.
    """
    literal = address_literal(domain)
    if literal is not None:
        return [Host(domain, (literal,))]
    names, mx_secure = _mx_names(resolver, domain, me.lower().rstrip("."))
    hosts, trouble = [], None
    for name in names:
        try:
            host = _host(resolver, name)
        except DNSTrouble as e:
            trouble = e
            continue
        if host.addresses:
            hosts.append(replace(host, secure=mx_secure and host.secure, mx_validated=mx_secure))
    if hosts:
        return hosts
    if trouble is not None:
        raise trouble
    raise Unroutable(f"550 5.1.2 no address for the mail servers of {domain} ({', '.join(names)})")


def _mx_names(resolver: dns.resolver.Resolver, domain: str, me: str) -> tuple[list[str], bool]:
    """The MX host names of *domain* in the order to try (those before *me*), or ``[domain]`` without MX;
    and whether the answer was validated."""
    try:
        answer = resolver.resolve(domain, "MX")
    except dns.resolver.NXDOMAIN:
        raise Unroutable(f"550 5.1.2 no such domain: {domain}") from None
    except dns.resolver.NoAnswer as e:
        return [domain], is_secure(e.response())  # RFC 7672 2.2.2: the domain is its own host
    except dns.exception.DNSException as e:
        raise DNSTrouble(f"451 4.4.3 MX lookup for {domain} failed: {lookup_error(e)}") from None
    records = [(r.preference, r.exchange) for r in answer]
    usable = [(preference, name) for preference, name in records if name != dns.name.root]
    if not usable:
        raise Unroutable(NULL_MX_REPLY.format(domain=domain))
    ours = [preference for preference, name in usable if name.to_text(omit_final_dot=True).lower() == me]
    if ours:
        usable = [(preference, name) for preference, name in usable if preference < min(ours)]
        if not usable:
            raise Unroutable(f"554 5.4.6 the best MX for {domain} is this server ({me}): mail would loop")
    usable.sort(key=lambda record: record[0])
    names: list[str] = []
    for _, group in groupby(usable, key=lambda record: record[0]):
        equals = [name.to_text(omit_final_dot=True) for _, name in group]
        random.shuffle(equals)
        names.extend(equals)
    return names, is_secure(answer.response)


def host_addresses(resolver: dns.resolver.Resolver, name: str) -> tuple[str, ...]:
    """*name*'s AAAA then A addresses; empty when it has none; DNSTrouble if neither lookup answered."""
    return _host(resolver, name).addresses


def _host(resolver: dns.resolver.Resolver, name: str) -> Host:
    """*name* with its AAAA then A addresses (none when it has none), secure if every answer that gave
    some was validated; DNSTrouble if neither lookup answered.

    A lookup that failed gives no address, so it cannot make the ones used
    less trustworthy: an attacker who drops the AAAA query does not turn
    DANE off for the host.
    """
    addresses: list[str] = []
    failures = []
    secure, canonical = True, ""
    for rdtype in ("AAAA", "A"):
        try:
            answer = resolver.resolve(name, rdtype)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as e:
            failures.append(e)
            continue
        addresses.extend(r.address for r in answer)
        secure = secure and is_secure(answer.response)
        canonical = answer.canonical_name.to_text(omit_final_dot=True)
    if not addresses and failures:
        raise DNSTrouble(f"451 4.4.3 address lookup for {name} failed: {lookup_error(failures[0])}")
    alias = canonical if canonical.lower() != name.lower().rstrip(".") else ""
    return Host(name, tuple(addresses), secure=secure and bool(addresses), canonical=alias)


def lookup_error(error: dns.exception.DNSException) -> str:
    """Why a lookup failed, in a few words for a reply text: ``timeout``, ``SERVFAIL or ...``."""
    if isinstance(error, dns.exception.Timeout):
        return "timeout"
    if isinstance(error, dns.resolver.NoNameservers):
        return "SERVFAIL or no name server answered"
    return error.__class__.__name__

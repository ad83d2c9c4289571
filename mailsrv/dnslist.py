"""DNS lists (RFC 5782): the entries of ``[policy] dnsbl`` and ``dnswl``, the names asked, one lookup.

An entry is written as Postfix's ``postscreen_dnsbl_sites`` writes it, so
an admin can copy a tuned list across::

    ZONE[=FILTER][*WEIGHT]
    "zen.spamhaus.org=127.0.0.[2..11]*2"
    "list.dnswl.org=127.0.[0..255].[1..3]*-2"

*FILTER* is the A record the list must answer for the entry to count:
four dot-separated octets, each a number or a bracketed ``;``-separated
set of numbers and ``N..M`` ranges (``127.0.0.[2;4..7]``).  Without one,
any answer in 127.0.0.0/8 counts (RFC 5782 2.3: lists answer there; an
answer elsewhere is a list that went wrong, such as a wildcard after its
domain expired).  *WEIGHT* is what a hit adds to the client's score; the
same zone may appear in several entries with other filters and weights,
and is asked once.

This module is the part the server's check (:mod:`mailsrv.policy.dnsbl`)
and ``mailsrv dns check`` (:mod:`mailsrv.ops.dnscheck`) share; its lookup
blocks (run it in the ``dns`` pool).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.resolver

from mailsrv.address import canonical_domain

_ENTRY = re.compile(r"(?P<zone>[^=*\s]+)(?:=(?P<filter>[^*\s]+))?(?:\*(?P<weight>[+-]?\d{1,6}))?\Z")
_OCTET = r"(\d{1,3}|\[[\d.;]+\])"
_FILTER = re.compile(r"\.".join([_OCTET] * 4) + r"\Z")
#: Where RFC 5782 2.3 lists answer.
_LIST_ANSWERS = ipaddress.ip_network("127.0.0.0/8")


class ListUnavailable(Exception):
    """The list did not answer (timeout, SERVFAIL): nothing is known, the client is not judged by it."""


@dataclass(frozen=True)
class DNSList:
    """One entry: the *zone* asked, the answers that count (``None``: any in 127/8), their *weight*."""

    zone: str
    weight: int
    #: For each of the four octets of an answer, the values that match.
    octets: tuple[frozenset[int], ...] | None = None
    #: The entry as the admin wrote it, for messages.
    text: str = ""

    def matches(self, answer: str) -> bool:
        """Whether the A record *answer* counts as a listing for this entry."""
        try:
            address = ipaddress.IPv4Address(answer)
        except ValueError:
            return False
        if self.octets is None:
            return address in _LIST_ANSWERS
        return all(value in allowed for value, allowed in zip(address.packed, self.octets))


def _octet(text: str) -> frozenset[int]:
    """``7``, or ``[2;4..7]`` as the set of its numbers; ValueError past 255 or for a bad range."""
    values: set[int] = set()
    for item in text.strip("[]").split(";"):
        low, dots, high = item.partition("..")
        first, last = int(low), int(high) if dots else int(low)
        if not 0 <= first <= last <= 255:
            raise ValueError(text)
        values.update(range(first, last + 1))
    return frozenset(values)


def parse_entry(text: str, default_weight: int) -> DNSList:
    """The entry *text* (``ZONE[=FILTER][*WEIGHT]``); ValueError saying what is wrong with it."""
    match = _ENTRY.match(text.strip())
    if match is None:
        raise ValueError("not ZONE[=FILTER][*WEIGHT]")
    zone = canonical_domain(match["zone"])
    if zone is None or "." not in zone:
        raise ValueError(f"{match['zone']!r} is not a DNS zone")
    octets = None
    if match["filter"] is not None:
        pattern = _FILTER.match(match["filter"])
        try:
            if pattern is None:
                raise ValueError(match["filter"])
            octets = tuple(_octet(part) for part in pattern.groups())
        except ValueError:
            raise ValueError(f"the filter {match['filter']!r} is not an address pattern like 127.0.0.[2..11]") from None
    weight = default_weight if match["weight"] is None else int(match["weight"])
    return DNSList(zone=zone, weight=weight, octets=octets, text=text)


def query_name(ip: str, zone: str) -> str | None:
    """The absolute name to ask *zone* about the client *ip*; ``None`` if *ip* is not an address.

    RFC 5782 2.1: an IPv4 address's octets in reverse order; 2.4: an IPv6
    address's 32 nibbles in reverse order.  An IPv4-mapped IPv6 address (a
    dual-stack listener's IPv4 client) is asked about as its IPv4 address.
    """
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.version == 4:
        labels = reversed(str(address).split("."))
    else:
        labels = reversed(address.exploded.replace(":", ""))
    return ".".join(labels) + f".{zone}."


def lookup(resolver: Any, name: str, timeout: float) -> tuple[tuple[str, ...], int]:
    """The A records of *name* and their TTL; ``((), 0)`` when it is not listed (NXDOMAIN, no A record).

    Blocking, for the ``dns`` pool.  RFC 5782 2.1: the A record says the
    address is listed (the TXT record only says why, and is not asked).
    :class:`ListUnavailable` when the list could not be asked within
    *timeout* seconds or failed to answer.
    """
    try:
        answer = resolver.resolve(name, "A", raise_on_no_answer=False, lifetime=timeout, search=False)
    except dns.resolver.NXDOMAIN:
        return (), 0
    except dns.exception.DNSException as e:
        raise ListUnavailable(f"{name}: {type(e).__name__}") from None
    if answer.rrset is None:
        return (), 0
    return tuple(record.address for record in answer.rrset), answer.rrset.ttl

"""``[policy]``: which inbound mail is checked for forged senders, what a DMARC refusal does, which DNS lists judge clients.

The checks themselves are :mod:`mailsrv.policy.senderauth` and
:mod:`mailsrv.policy.dnsbl`; rate limits live in ``[limits]`` and
``[auth]``, not here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable

from mailsrv.config.schema import Invalid, Table, at_least, every, one_of, setting
from mailsrv.dnslist import DNSList, parse_entry

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _lists(default_weight: int, sign: int) -> "Callable[[tuple[str, ...]], tuple[str, ...]]":
    """A check of DNS list entries (:mod:`mailsrv.dnslist`) whose weights must have *sign*."""

    def entries(values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            try:
                entry = parse_entry(value, default_weight)
            except ValueError as e:
                raise Invalid(f"{value!r}: {e}") from None
            if entry.weight * sign <= 0:
                raise Invalid(f"{value!r}: the weight must be {'positive' if sign > 0 else 'negative'}")
        return values

    return entries


@dataclass(frozen=True)
class PolicyConfig(Table):
    """Sender authentication on port 25."""

    DOC = (
        "Inbound policy (port 25): SPF, DKIM, DMARC and ARC are checked on every message from outside "
        "trusted_networks and recorded in an Authentication-Results header; mail your users submit is not checked."
    )

    trusted_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"),
        "Clients in these networks (CIDR) skip SPF, DKIM, DMARC and ARC: this host, your other servers.",
        every(ipaddress.ip_network, 'a network such as "192.0.2.0/24" (no host bits set)'),
    )
    dmarc_reject: bool = setting(
        True,
        "Refuse mail failing DMARC of a domain publishing p=reject with 550 5.7.1 at the end of DATA; "
        "false delivers it to the recipient's Junk folder, as p=quarantine does.",
    )

    dnsbl: tuple[str, ...] = setting(
        (),
        'DNS blocklists asked about each port 25 client outside trusted_networks, as ZONE[=FILTER][*WEIGHT] '
        '(Postfix postscreen_dnsbl_sites syntax): "zen.spamhaus.org=127.0.0.[2..11]*2". FILTER is the answer '
        "that counts (each octet N or [N;N..M]; default any 127.0.0.0/8 answer), WEIGHT what a hit adds to "
        "the client's score (default 1).",
        _lists(1, 1),
    )
    dnswl: tuple[str, ...] = setting(
        (),
        "DNS allowlists, same syntax with a negative WEIGHT (default -1): a hit lowers the client's score, "
        'and a listed client is not greylisted: "list.dnswl.org=127.0.[0..255].[1..3]*-2".',
        _lists(-1, -1),
    )
    dnsbl_threshold: int = setting(
        1, "Score (the weights of every dnsbl and dnswl hit added up) at which a client is refused with 554 5.7.1.",
        at_least(1),
    )
    dnsbl_at: str = setting(
        "rcpt",
        'Where a listed client is refused: "rcpt" (each recipient but postmaster gets 554 5.7.1, so the '
        'listed can still reach postmaster, RFC 5321 4.5.1) or "connect" (554 instead of the greeting).',
        one_of(("rcpt", "connect")),
    )
    dnsbl_timeout: int = setting(
        5, "Seconds the DNS lists may take to answer; a list that does not answer in time, or fails, is ignored "
        "(the client is not refused for it).", at_least(1),
    )

    def dns_lists(self) -> tuple[DNSList, ...]:
        """:attr:`dnsbl` then :attr:`dnswl` parsed (checked when the file was read)."""
        return tuple(parse_entry(entry, 1) for entry in self.dnsbl) + tuple(
            parse_entry(entry, -1) for entry in self.dnswl)

    def networks(self) -> tuple[Network, ...]:
        """:attr:`trusted_networks` parsed (checked when the file was read)."""
        return tuple(ipaddress.ip_network(entry) for entry in self.trusted_networks)

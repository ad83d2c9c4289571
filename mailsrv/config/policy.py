"""``[policy]``: which inbound mail is checked for forged senders, and what a DMARC refusal does.

The checks themselves are :mod:`mailsrv.policy.senderauth`; rate limits
live in ``[limits]`` and ``[auth]``, not here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailsrv.config.schema import Table, every, setting

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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

    def networks(self) -> tuple[Network, ...]:
        """:attr:`trusted_networks` parsed (checked when the file was read)."""
        return tuple(ipaddress.ip_network(entry) for entry in self.trusted_networks)

"""``[policy]``: which inbound mail is checked for forged senders, and what a DMARC refusal does.

The checks themselves are :mod:`mailsrv.policy.senderauth`; rate limits
live in ``[limits]`` and ``[auth]``, not here.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, setting

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(entries: tuple[str, ...]) -> tuple[str, ...]:
    """Each entry is a CIDR network (``192.0.2.0/24``, ``2001:db8::/32``) or a single address."""
    for entry in entries:
        try:
            ipaddress.ip_network(entry)
        except ValueError:
            raise Invalid(f"{entry!r} is not a network such as \"192.0.2.0/24\" (no host bits set)") from None
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
        _networks,
    )
    dmarc_reject: bool = setting(
        True,
        "Refuse mail failing DMARC of a domain publishing p=reject with 550 5.7.1 at the end of DATA; "
        "false delivers it to the recipient's Junk folder, as p=quarantine does.",
    )

    def networks(self) -> tuple[Network, ...]:
        """:attr:`trusted_networks` parsed (checked when the file was read)."""
        return tuple(ipaddress.ip_network(entry) for entry in self.trusted_networks)

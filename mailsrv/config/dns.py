"""``[dns]``: where the server's one resolver sends its queries (see :mod:`mailsrv.dns`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailsrv.config.schema import Table, at_least, every, setting


def parse_nameserver(entry: str) -> tuple[str, int]:
    """``(ip, port)`` for ``ip``, ``ip:port`` or ``[ipv6]:port``; port 53 by default."""
    host, port = entry, 53
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        if rest:
            port = int(rest.removeprefix(":"))
    elif entry.count(":") == 1:
        host, _, number = entry.partition(":")
        port = int(number)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(entry)
    return host, port


@dataclass(frozen=True)
class DNSConfig(Table):
    """The name servers every lookup goes to."""

    DOC = (
        "DNS: every lookup the server makes (SPF, DKIM, DMARC, MX, TLSA) goes to these servers. "
        "DANE ([delivery] dane) trusts their DNSSEC verdict (the AD flag): use a validating resolver on a "
        "trusted path, such as unbound on 127.0.0.1."
    )

    nameservers: tuple[str, ...] = setting(
        (), 'Name servers as "ip" or "ip:port"; [] uses the system resolver (/etc/resolv.conf).',
        every(parse_nameserver, "ip or ip:port"),
    )
    timeout: int = setting(
        20, "Seconds one lookup may take, every name server and retry included, before it counts as failed "
        "(a temporary failure: mail waits and is tried again). A stopping server waits for lookups in progress.",
        at_least(1),
    )

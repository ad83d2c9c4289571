"""The server's one DNS resolver, built from ``[dns]`` and handed to whoever looks names up.

Every lookup goes through this one object so that tests (and admins) point
all of them at one place: a test starts a local name server
(``tests/dns_harness.py``) and sets ``[dns] nameservers``; nothing then
reaches the internet.  It is dnspython's resolver, which speaks every record
type the mail checks need (MX, A/AAAA, TXT, TLSA) and reports the AD bit,
but blocks: callers run its queries in the ``dns`` pool
(:attr:`mailsrv.workers.Workers.dns`), never on the reactor thread.

Every query asks for DNSSEC status (the AD flag, and EDNS with DO, RFC 6840
5.7 and RFC 3225), so that an answer says whether the resolver validated
it: :func:`is_secure`.  The resolver itself does not validate; the answer is
only as trustworthy as the resolver and the path to it, which is why DANE
(:mod:`mailsrv.delivery.dane`) asks for a validating resolver on a trusted
path, such as a local unbound.
"""

from __future__ import annotations

import dns.flags
import dns.message
import dns.resolver

from mailsrv.config.dns import DNSConfig, parse_nameserver

#: The EDNS payload we offer (the DNS flag day 2020 value): room for answers with signatures.
EDNS_PAYLOAD = 1232


def make_resolver(config: DNSConfig) -> dns.resolver.Resolver:
    """A resolver for the configured name servers, or the system's (``/etc/resolv.conf``)."""
    servers = [parse_nameserver(entry) for entry in config.nameservers]
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = config.timeout
    resolver.flags = dns.flags.RD | dns.flags.AD
    resolver.use_edns(0, dns.flags.DO, EDNS_PAYLOAD)
    # Thread-safe; answers are kept for their TTL, so one queue run asks for gmail.com's MX once.
    resolver.cache = dns.resolver.LRUCache()
    return resolver


def is_secure(response: dns.message.Message | None) -> bool:
    """Whether the resolver vouched for *response* (an answer or a denial) with the AD flag."""
    return response is not None and bool(response.flags & dns.flags.AD)

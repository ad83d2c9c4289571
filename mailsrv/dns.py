"""The server's one DNS resolver, built from ``[dns]`` and handed to whoever looks names up.

Every lookup goes through this one object so that tests (and admins) point
all of them at one place: a test starts a local name server
(``tests/dns_harness.py``) and sets ``[dns] nameservers``; nothing then
reaches the internet.  It is dnspython's resolver, which speaks every record
type the mail checks need (MX, A/AAAA, TXT, TLSA) and reports the AD bit,
but blocks: callers run its queries in the ``dns`` pool
(:attr:`mailsrv.workers.Workers.dns`), never on the reactor thread.
"""

from __future__ import annotations

import dns.resolver

from mailsrv.config.dns import DNSConfig, parse_nameserver

def make_resolver(config: DNSConfig) -> dns.resolver.Resolver:
    """A resolver for the configured name servers, or the system's (``/etc/resolv.conf``)."""
    servers = [parse_nameserver(entry) for entry in config.nameservers]
    if servers:
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [dns.nameserver.Do53Nameserver(ip, port) for ip, port in servers]
    else:
        resolver = dns.resolver.Resolver()
    resolver.lifetime = config.timeout
    # Thread-safe; answers are kept for their TTL, so one queue run asks for gmail.com's MX once.
    resolver.cache = dns.resolver.LRUCache()
    return resolver

"""The server's one DNS resolver, built from ``[dns]`` and handed to whoever looks names up.

Every lookup goes through this one object so that tests (and admins) point
all of them at one place: a test starts a local ``twisted.names`` server and
sets ``[dns] nameservers``; nothing then reaches the internet.  It is
Twisted's asynchronous resolver, so a lookup never blocks the reactor or
occupies a thread.
"""

from __future__ import annotations

from twisted.internet.interfaces import IResolver
from twisted.names import client

from mailsrv.config.dns import DNSConfig, parse_nameserver


def make_resolver(config: DNSConfig) -> IResolver:
    """A resolver for the configured name servers, or the system's (``/etc/resolv.conf``)."""
    servers = [parse_nameserver(entry) for entry in config.nameservers]
    if servers:
        return client.createResolver(servers=servers)
    return client.createResolver(resolvconf="/etc/resolv.conf")

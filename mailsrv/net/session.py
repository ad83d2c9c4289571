"""Who is on the other end of one connection, as every protocol needs to know it.

Before this module each protocol kept its own peer-IP helper (with three
different fallbacks), its own TLS flags and its own idea of "logged in";
the policy code, the audit log and the trace headers now read one object.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import ISSLTransport

from mailsrv.listeners import Kind


def parse_ip(host: str) -> "ipaddress.IPv4Address | ipaddress.IPv6Address | None":
    """*host* as an address (a scope suffix such as ``%lo`` allowed), ``None`` if it is not one."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None


class Networks:
    """A list of networks that answers "is this client in it" for a peer address as text.

    An IPv4-mapped IPv6 address counts as its IPv4 address.  Answers are
    remembered per address (a bounded cache): the checks that ask run at
    every stage of every SMTP transaction.
    """

    def __init__(self, networks: "Iterable[str | ipaddress.IPv4Network | ipaddress.IPv6Network]") -> None:
        self._networks = tuple(ipaddress.ip_network(network, strict=False) for network in networks)
        self._holds = functools.lru_cache(maxsize=4096)(self._look)

    def __contains__(self, host: str) -> bool:
        return self._holds(host)

    def _look(self, host: str) -> bool:
        address = parse_ip(host)
        if address is None:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self._networks)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1."""
    address = parse_ip(host)
    return address is not None and address.is_loopback


def client_network(host: str, ipv4_prefix: int, ipv6_prefix: int) -> str:
    """The network of *ipv4_prefix* or *ipv6_prefix* bits around *host* (an IPv4-mapped
    address as IPv4), as text; *host* itself if it is not an address.

    What limits count as one client: a host rarely holds one IPv6 address
    only, and senders retry from other hosts of their network.
    """
    address = parse_ip(host)
    if address is None:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    prefix = ipv4_prefix if address.version == 4 else ipv6_prefix
    network = ipaddress.ip_network((address, prefix), strict=False)
    return str(network.network_address) if prefix == network.max_prefixlen else str(network)


@dataclass(eq=False)
class Session:
    """One client connection: its listener kind, transport, TLS state and login."""

    kind: Kind
    transport: Any
    #: STARTTLS/STLS completed on this connection (see :attr:`tls_active`).
    tls_started: bool = False
    #: The TLS handshake finished (implicit TLS or STARTTLS): the version is known.
    tls_handshaken: bool = False
    #: Canonical address of the authenticated user, ``None`` before a login.
    user: str | None = None

    @property
    def peer_ip(self) -> str:
        """The client's IP address, ``""`` when the transport has none.

        Read each time: behind ``haproxy:`` the real address is known only
        once the PROXY header has arrived, after the connection was made
        (docs/twisted-notes.rst, "PROXY protocol and TLS").
        """
        return str(getattr(self.transport.getPeer(), "host", ""))

    @property
    def tls_active(self) -> bool:
        """True once the connection speaks TLS: implicit, or after STARTTLS/STLS.

        A ``haproxy:`` wrapper copies the interfaces of the transport it
        wraps when the connection opens, so after STARTTLS it never starts
        providing ``ISSLTransport``; the flag set by ``startTLS`` on the
        real connection, which the wrapper passes through, and our own
        :attr:`tls_started` do tell.
        """
        transport = self.transport
        return self.tls_started or ISSLTransport.providedBy(transport) or getattr(transport, "TLS", False) is True

    def may_send_password(self, allow_plaintext_on_loopback: bool) -> bool:
        """True when a password may be sent over this connection.

        That is after TLS, or from loopback when the admin allows it
        (RFC 8314 4.1 wants TLS for every password; loopback never leaves
        the host).
        """
        if self.tls_active:
            return True
        return allow_plaintext_on_loopback and is_loopback(self.peer_ip)

    def tls_details(self) -> str | None:
        """``TLSv1.3 with cipher TLS_AES_256_GCM_SHA384``, or ``None`` without TLS or details.

        Both TLS paths (``startTLS`` and an implicit-TLS listener) expose
        the pyOpenSSL connection through ``getHandle()``.
        """
        if not self.tls_active:
            return None
        handle = self.transport.getHandle()
        version = getattr(handle, "get_protocol_version_name", None)
        cipher = getattr(handle, "get_cipher_name", None)
        if version is None or cipher is None:
            return None
        return f"{version()} with cipher {cipher()}"

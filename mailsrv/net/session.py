"""Who is on the other end of one connection, as every protocol needs to know it.

Before this module each protocol kept its own peer-IP helper (with three
different fallbacks), its own TLS flags and its own idea of "logged in";
the policy code, the audit log and the trace headers now read one object.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from twisted.internet.interfaces import ISSLTransport

from mailsrv.listeners import Kind


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (a scope suffix such as ``%lo`` allowed)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


@dataclass(eq=False)
class Session:
    """One client connection: its listener kind, transport, TLS state and login."""

    kind: Kind
    transport: Any
    #: STARTTLS/STLS completed on this connection (see :attr:`tls_active`).
    tls_started: bool = False
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

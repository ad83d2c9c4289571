"""Which of our listeners a mail client should be told about, in the order to offer them.

Every settings format (Thunderbird, Outlook, Apple) describes the same
servers: the ``hostname`` and the first port of each client-facing
listener kind, implicit TLS before STARTTLS (RFC 8314 5.1 prefers it), so
the formats cannot disagree with each other or with ``[listen]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config import Config
from mailsrv.listeners import Kind, endpoint_port

#: The kinds clients use, preferred first within each protocol.
_CLIENT_KINDS = (Kind.IMAPS, Kind.IMAP, Kind.POP3S, Kind.POP3, Kind.SUBMISSIONS, Kind.SUBMISSION)


@dataclass(frozen=True)
class ClientServer:
    """One listener as a client sees it."""

    #: ``imap``, ``pop3`` or ``smtp``.
    protocol: str
    hostname: str
    port: int
    #: TLS from the first byte; otherwise STARTTLS/STLS, which our plain listeners always offer.
    implicit_tls: bool

    @property
    def incoming(self) -> bool:
        """A server the client reads mail from (IMAP, POP3), not one it sends through."""
        return self.protocol != "smtp"


def client_servers(config: Config) -> list[ClientServer]:
    """The configured client listeners with a port, preferred first; none for a kind turned off."""
    found = []
    for kind in _CLIENT_KINDS:
        ports = [p for p in map(endpoint_port, config.listen.endpoints(kind)) if p is not None]
        if ports:
            found.append(ClientServer(kind.protocol, config.hostname, ports[0], kind.implicit_tls))
    return found

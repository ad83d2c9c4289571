"""TLS towards other servers: the client options for each ``[delivery] tls`` policy.

``encrypt`` and ``may`` encrypt without checking the certificate: most MX
hosts present self-signed or mismatched ones, and refusing them would only
push the mail to plaintext (opportunistic security).  ``verify``
(and the relay) checks the chain against the configured CA bundle or the
system's store, and the name with service-identity, through Twisted's
``optionsForClientTLS``.
"""

from __future__ import annotations

from OpenSSL import SSL
from twisted.internet import ssl
from twisted.internet.abstract import isIPAddress, isIPv6Address
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from zope.interface import implementer

from mailsrv.config import Config, ConfigError
from mailsrv.tls import PEM_CERTIFICATE


class Unverified:
    """Encryption without authentication (policies ``may`` and ``encrypt``), one context for all hosts.

    The host name still goes out as SNI (RFC 6066 3), so that a server
    with several certificates presents the one for the MX name.
    """

    def __init__(self) -> None:
        self._context = ssl.CertificateOptions(verify=False).getContext()

    def for_host(self, hostname: str) -> "_Named":
        """Options that send *hostname* as SNI (none for an IP address, as RFC 6066 3 asks)."""
        return _Named(self._context, None if isIPAddress(hostname) or isIPv6Address(hostname) else hostname)


@implementer(IOpenSSLClientConnectionCreator)
class _Named:
    def __init__(self, context: SSL.Context, hostname: str | None) -> None:
        self._context = context
        self._hostname = hostname

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        if self._hostname:
            connection.set_tlsext_host_name(self._hostname.encode("idna"))
        connection.set_connect_state()
        return connection


def trust_root(config: Config) -> object:
    """The CAs ``verify`` trusts: ``[delivery] tls_ca_file``, or the system's store when it is empty."""
    path = config.delivery.tls_ca_file
    if not path:
        return ssl.platformTrust()
    try:
        with open(path, "rb") as f:
            pems = PEM_CERTIFICATE.findall(f.read())
    except OSError as e:
        raise ConfigError(f"{config.source}: delivery.tls_ca_file: cannot read {path}: {e.strerror}") from None
    if not pems:
        raise ConfigError(f"{config.source}: delivery.tls_ca_file: no PEM certificate in {path}")
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(pem) for pem in pems])


def verifying(hostname: str, trust: object) -> object:
    """Options that accept only a certificate valid for *hostname* from a CA in *trust*."""
    return ssl.optionsForClientTLS(hostname, trustRoot=trust)

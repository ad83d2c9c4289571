"""TLS that checks the certificate as ``verify`` would, says what fails, and never refuses.

An MTA-STS policy in ``testing`` mode (RFC 8461 5) asks the sender to
deliver as if there were no policy and to report what the policy would
have refused.  So the handshake runs as under ``may`` (any certificate
will do), while OpenSSL's chain check against the ``verify`` trust store
and service-identity's name check run alongside; whatever they find goes
to *report*, once per connection, when the handshake is done.
"""

from __future__ import annotations

from typing import Callable

from OpenSSL import SSL, crypto
from service_identity import VerificationError
from service_identity.hazmat import DNS_ID, verify_service_identity
from service_identity.pyopenssl import extract_patterns
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

#: The chain errors of X509_verify_cert (OpenSSL's x509_vfy.h) a mail server meets, in words.
_CHAIN_ERRORS = {
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "certificate not issued by a trusted CA",
    21: "certificate not issued by a trusted CA",
}


class AuditContext:
    """The one OpenSSL context of audited connections: the ``verify`` CAs loaded, nothing enforced."""

    def __init__(self, trust: object) -> None:
        self._context = ssl.CertificateOptions(trustRoot=trust).getContext()

    def for_host(self, hostname: str, report: Callable[[str], None]) -> "_Audited":
        """Options for a connection to *hostname* (sent as SNI) that call *report* with any problem."""
        return _Audited(self._context, hostname, report)


@implementer(IOpenSSLClientConnectionCreator)
class _Audited:
    def __init__(self, context: SSL.Context, hostname: str, report: Callable[[str], None]) -> None:
        self._context = context
        self._hostname = hostname
        self._report = report
        self._problems: list[str] = []

    def clientConnectionForTLS(self, tlsProtocol: object) -> SSL.Connection:
        connection = SSL.Connection(self._context, None)
        connection.set_tlsext_host_name(self._hostname.encode("idna"))
        connection.set_verify(SSL.VERIFY_PEER, self._verified)
        connection.set_info_callback(self._info)
        connection.set_connect_state()
        return connection

    def _verified(self, connection: SSL.Connection, cert: crypto.X509, errno: int, depth: int, ok: int) -> bool:
        """OpenSSL's verdict on one certificate of the chain, noted; the handshake goes on regardless."""
        try:
            if not ok:
                self._note(_CHAIN_ERRORS.get(errno, f"certificate chain error {errno}"))
            if depth == 0:
                verify_service_identity(extract_patterns(cert), [DNS_ID(self._hostname)], [])
        except VerificationError:
            self._note(f"certificate not valid for {self._hostname}")
        except Exception:  # an exception must not escape into OpenSSL
            log.failure("while auditing the certificate of {host}", host=self._hostname)
        return True

    def _info(self, connection: SSL.Connection, where: int, ret: int) -> None:
        if where & SSL.SSL_CB_HANDSHAKE_DONE and self._problems:
            problems, self._problems = self._problems, []
            self._report("; ".join(problems))

    def _note(self, problem: str) -> None:
        if problem not in self._problems:
            self._problems.append(problem)

"""TLS towards other servers: the client options for each ``[delivery] tls`` policy.

``encrypt`` and ``may`` encrypt without checking the certificate: most MX
hosts present self-signed or mismatched ones, and refusing them would only
push the mail to plaintext (opportunistic security).  ``verify``
(and the relay) checks the chain against the configured CA bundle or the
system's store, and the name with service-identity, through Twisted's
``optionsForClientTLS``.
"""

from __future__ import annotations

import re

from twisted.internet import ssl

from mailsrv.config import Config, ConfigError

_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def unverified() -> ssl.CertificateOptions:
    """Encryption without authentication (policies ``may`` and ``encrypt``)."""
    return ssl.CertificateOptions(verify=False)


def trust_root(config: Config) -> object:
    """The CAs ``verify`` trusts: ``[delivery] tls_ca_file``, or the system's store when it is empty."""
    path = config.delivery.tls_ca_file
    if not path:
        return ssl.platformTrust()
    try:
        with open(path, "rb") as f:
            pems = _PEM_CERT.findall(f.read())
    except OSError as e:
        raise ConfigError(f"{config.source}: delivery.tls_ca_file: cannot read {path}: {e.strerror}") from None
    if not pems:
        raise ConfigError(f"{config.source}: delivery.tls_ca_file: no PEM certificate in {path}")
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(pem) for pem in pems])


def verifying(hostname: str, trust: object) -> object:
    """Options that accept only a certificate valid for *hostname* from a CA in *trust*."""
    return ssl.optionsForClientTLS(hostname, trustRoot=trust)

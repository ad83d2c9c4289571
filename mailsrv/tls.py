"""TLS: certificates and the server context.

Every listener serves TLS (STARTTLS/STLS or implicit), so a fresh install
needs a certificate before its first start: when the config names none, a
self-signed one is generated into ``<data_dir>/tls/`` and reused afterwards.
Every listener gets the same :class:`ServerTLS`, so SIGHUP swaps the
certificate for all of them at once (:mod:`mailsrv.reload`,
:mod:`mailsrv.certfiles` when the files change, and :mod:`mailsrv.acme`
when a new one is issued).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet import ssl
from twisted.internet.interfaces import IOpenSSLContextFactory
from twisted.logger import Logger
from zope.interface import implementer

from mailsrv.acme.files import AcmeFiles
from mailsrv.config import Config, ConfigError

log = Logger()

PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_MIN_VERSION = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}

#: TLS 1.2 suites: forward-secret ECDHE with an AEAD cipher only, as Mozilla's "intermediate"
#: profile (less its DHE suites). Twisted's default also offers CBC suites (LUCKY13, "obsolete
#: CBC" in scanners) and static-RSA ones. TLS 1.3 suites are all AEAD and set apart by OpenSSL.
_TLS12_CIPHERS = ssl.AcceptableCiphers.fromOpenSSLCipherString(
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


def generate_self_signed(cert_path: str, key_path: str, hostname: str) -> None:
    """Write a self-signed certificate valid for *hostname*, localhost and loopback.

    ECDSA P-256 keeps generation instant; the key file is created 0600 before
    any key material is written to it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    dns_names = list(dict.fromkeys([hostname, "localhost"]))
    # RFC 5280 4.2.1.6: subjectAltName, the names clients match
    san = x509.SubjectAlternativeName(
        [x509.DNSName(n) for n in dns_names]
        + [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    )
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    os.makedirs(os.path.dirname(key_path) or ".", mode=0o700, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def served_files(config: Config) -> tuple[str, str]:
    """The (cert, key) paths the server serves: the ACME certificate once one is issued (:mod:`mailsrv.acme`),
    else the configured pair, else the self-signed pair in the data dir (which may not exist yet).

    The one place that decides, so that ``mailsrv selftest`` and ``dns check``
    look at the certificate the listeners really serve.
    """
    issued = AcmeFiles(config.acme_dir).certificate_path
    if config.tls.acme and os.path.exists(issued):
        return issued, issued  # one file: the key, then the chain
    if config.tls.cert:
        return config.tls.cert, config.tls.key
    return _self_signed_files(config)


def _self_signed_files(config: Config) -> tuple[str, str]:
    tls_dir = os.path.join(config.data_dir, "tls")
    return os.path.join(tls_dir, "selfsigned-cert.pem"), os.path.join(tls_dir, "selfsigned-key.pem")


def certificate_files(config: Config) -> tuple[str, str]:
    """:func:`served_files`, the self-signed pair generated the first time it is the one."""
    cert_path, key_path = served_files(config)
    if (cert_path, key_path) == _self_signed_files(config) and not (
            os.path.exists(cert_path) and os.path.exists(key_path)):
        generate_self_signed(cert_path, key_path, config.hostname)
        log.info("generated a self-signed certificate for {hostname} in {path}", hostname=config.hostname, path=cert_path)
    return cert_path, key_path


def server_options(config: Config) -> ssl.CertificateOptions:
    """The server TLS options for every listener; errors name the config key."""
    cert_path, key_path = certificate_files(config)
    where = config.source
    try:
        with open(cert_path, "rb") as f:
            pems = PEM_CERTIFICATE.findall(f.read())
        if not pems:
            raise ConfigError(f"{where}: tls.cert: no PEM certificate in {cert_path}")
        with open(key_path, "rb") as f:
            key = crypto.load_privatekey(crypto.FILETYPE_PEM, f.read())
        chain = [crypto.load_certificate(crypto.FILETYPE_PEM, pem) for pem in pems]
    except OSError as e:
        raise ConfigError(f"{where}: tls: cannot read {e.filename}: {e.strerror}") from None
    except crypto.Error as e:
        raise ConfigError(f"{where}: tls.key/tls.cert: unreadable PEM ({e})") from None
    options = ssl.CertificateOptions(
        privateKey=key,
        certificate=chain[0],
        extraCertChain=chain[1:],
        raiseMinimumTo=_MIN_VERSION[config.tls.min_version],
        acceptableCiphers=_TLS12_CIPHERS,
        # RFC 5077 tickets (and TLS 1.3's): a mail client reconnecting every few minutes skips
        # the full handshake. Twisted turns them off by default and keeps no session cache,
        # so without this no session ever resumes. One context serves every listener.
        enableSessionTickets=True,
    )
    try:
        options.getContext().check_privatekey()
    except SSL.Error:
        raise ConfigError(f"{where}: tls.key: the key does not match the certificate in {cert_path}") from None
    return options


@implementer(IOpenSSLContextFactory)
class ServerTLS:
    """The server's current TLS options, for STARTTLS/STLS and implicit TLS alike.

    ``TLSMemoryBIOFactory`` and ``startTLS`` ask a context factory for its
    context once per connection, so after :meth:`replace` every new
    connection gets the new certificate while open ones keep theirs.
    """

    def __init__(self, options: ssl.CertificateOptions) -> None:
        self.options = options

    def getContext(self) -> SSL.Context:
        """The context of the current options (a new connection is starting TLS)."""
        return self.options.getContext()

    def replace(self, options: ssl.CertificateOptions) -> None:
        """Serve *options* to connections that start TLS from now on."""
        self.options = options

"""DANE for SMTP (RFC 7672): an MX host's TLSA records, and the peer certificates they accept.

A host whose MX and address records were validated (:attr:`mx.Host.secure`)
has its TLSA records looked up at ``_<port>._tcp.<host>`` (RFC 7672 2.2.3,
:func:`lookup`, in the ``dns`` pool; for a host name that is an alias,
first under the name it stands for).  Validated records there make TLS
mandatory for that host, with no plaintext fallback, and the certificate
must match one of them (:class:`Authenticator`, RFC 7672 3.1, RFC 7671):

* DANE-EE(3): the server's own certificate or key, and nothing else: no
  name check, no expiry (RFC 7672 3.1.1);
* DANE-TA(2): a certificate of the chain the server sent is the trust
  anchor; the server certificate must chain to it, be valid now, and carry
  the MX host name or the recipient domain (RFC 7672 3.1.2, 3.2.2, 3.2.3).

PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 3.1.3), as are
unknown selectors and matching types and digests of the wrong length; a
validated TLSA set with no usable record still makes TLS mandatory, without
authentication (RFC 7672 2.2).  Records that are not validated, or no
records, mean DANE does not apply; a failed lookup means the host is not
used now (RFC 7672 2.1.1).

The checks run on the reactor thread right after the handshake: a few
digests of certificates a few kilobytes long, and one chain verification,
which is less work than the handshake itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import dns.exception
import dns.resolver
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from mailsrv.address import canonical_domain
from mailsrv.delivery import mx
from mailsrv.delivery.clienttls import Unverified
from mailsrv.delivery.dialogue import TLSPolicy, TryNextHost
from mailsrv.delivery.smtpclient import CertificateRejected
from mailsrv.dns import is_secure

#: Certificate usages (RFC 6698 2.1.1).
PKIX_TA, PKIX_EE, DANE_TA, DANE_EE = 0, 1, 2, 3
#: Selectors (RFC 6698 2.1.2): the whole certificate, or its SubjectPublicKeyInfo.
CERT, SPKI = 0, 1
#: Matching types (RFC 6698 2.1.3): the selected octets themselves, or their digest.
FULL, SHA2_256, SHA2_512 = 0, 1, 2

_USAGE_NAMES = {PKIX_TA: "PKIX-TA", PKIX_EE: "PKIX-EE", DANE_TA: "DANE-TA", DANE_EE: "DANE-EE"}
_DIGESTS = {SHA2_256: hashlib.sha256, SHA2_512: hashlib.sha512}


@dataclass(frozen=True)
class TLSA:
    """One TLSA record: ``3 1 1 <sha-256 of the server's public key>``."""

    usage: int
    selector: int
    mtype: int
    data: bytes

    def __str__(self) -> str:
        return f"{_USAGE_NAMES.get(self.usage, self.usage)} {self.usage} {self.selector} {self.mtype}"

    @property
    def usable(self) -> bool:
        """Whether an SMTP client can use it (RFC 7672 3.1.3, RFC 7671 4.1: malformed ones are not)."""
        if self.usage not in (DANE_TA, DANE_EE) or self.selector not in (CERT, SPKI):
            return False
        if self.mtype == FULL:
            return bool(self.data)
        digest = _DIGESTS.get(self.mtype)
        return digest is not None and len(self.data) == digest().digest_size

    def matches(self, certificate: x509.Certificate) -> bool:
        """Whether *certificate* (its DER form or its public key's, per the selector) is what this names."""
        selected = _selected(certificate, self.selector)
        if selected is None:
            return False
        if self.mtype != FULL:
            selected = _DIGESTS[self.mtype](selected).digest()
        return selected == self.data


@dataclass(frozen=True)
class TLSARecords:
    """The validated TLSA records of one MX host (usable or not)."""

    #: The TLSA owner name, ``_25._tcp.mx.example.org``.
    name: str
    #: The host name they are for (the TLSA base domain, RFC 7672 2.2.3), the SNI name.
    host: str
    records: tuple[TLSA, ...]
    #: The host names a DANE-TA certificate may carry: :attr:`host`, and the MX host name when that
    #: is an alias of it (RFC 7672 3.2.2).
    references: tuple[str, ...]


def tlsa_name(host: str, port: int) -> str:
    """Where the TLSA records of *host*'s SMTP service on *port* are (RFC 6698 3)."""
    return f"_{port}._tcp.{host}"


def lookup(resolver: dns.resolver.Resolver, host: mx.Host, port: int) -> TLSARecords | None:
    """*host*'s validated TLSA records for *port*, or None when DANE does not apply to it; blocking.

    No records (NXDOMAIN, NODATA) and records the resolver did not
    validate both mean None: the host is reached under the normal policy.
    A lookup that fails (SERVFAIL, which a validating resolver also answers
    for a forged answer, or a timeout) raises :class:`TryNextHost`: the host
    may require TLS we cannot check, so it is not used now (RFC 7672 2.1.1).
    A host name that is an alias has its records looked for first under
    the name it stands for, then under its own (RFC 7672 2.2.3).
    """
    bases = [host.canonical, host.name] if host.canonical else [host.name]
    for base in bases:
        name = tlsa_name(base, port)
        try:
            answer = resolver.resolve(name, "TLSA")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as e:
            raise TryNextHost(f"451 4.4.3 TLSA lookup for {name} failed: {mx.lookup_error(e)}") from None
        if is_secure(answer.response):
            records = tuple(TLSA(r.usage, r.selector, r.mtype, r.cert) for r in answer)
            return TLSARecords(name, base, records, tuple(bases[bases.index(base):]))
    return None


def tls_policy(tlsa: TLSARecords, domain: str, unverified: Unverified) -> TLSPolicy:
    """STARTTLS required, and the certificate checked against the usable records of *tlsa*.

    *domain* is the recipient domain, which a DANE-TA certificate may name
    instead of the host (RFC 7672 3.2.2).  The TLSA base domain goes out as
    SNI (RFC 7672 8.1).
    """
    records = usable(tlsa.records)
    authenticate = Authenticator(records, (*tlsa.references, domain)) if records else None
    requirement = f"DANE (TLSA records at {tlsa.name}{'' if records else ', none usable'})"
    return TLSPolicy(attempt=True, required=True, creator=unverified.for_host(tlsa.host),
                     authenticate=authenticate, requirement=requirement)


def usable(records: Sequence[TLSA]) -> list[TLSA]:
    """The records to match against: the usable ones, and of those for one usage and selector only the
    ones with the strongest matching type present (digest algorithm agility, RFC 7671 9)."""
    candidates = [r for r in records if r.usable]
    strongest: dict[tuple[int, int], int] = {}
    for r in candidates:
        key = (r.usage, r.selector)
        strongest[key] = max(strongest.get(key, r.mtype), r.mtype)
    return [r for r in candidates if r.mtype == strongest[(r.usage, r.selector)]]


class Authenticator:
    """Accepts a server's certificate chain if it matches one of *records* (all usable).

    *names* are the reference identifiers a DANE-TA certificate must carry
    one of: the MX host name and the recipient domain.
    """

    def __init__(self, records: Sequence[TLSA], names: Sequence[str]) -> None:
        self._records = tuple(records)
        self._names = tuple(n for n in (canonical_domain(name) for name in names) if n)

    def __call__(self, chain: Sequence[x509.Certificate]) -> str:
        """How *chain* (the server's certificate first) was authenticated, ``"DANE-EE 3 1 1"``;
        :class:`CertificateRejected` saying why not."""
        if not chain:
            raise CertificateRejected("DANE: the server sent no certificate")
        leaf, problems = chain[0], []
        for record in self._records:
            if record.usage == DANE_EE:
                if record.matches(leaf):
                    return str(record)
                continue
            for anchor in self._anchors(record, chain):
                problem = self._chain_problem(leaf, chain[1:], anchor)
                if problem is None:
                    return str(record)
                problems.append(f"{record}: {problem}")
        if problems:
            raise CertificateRejected(f"DANE: {'; '.join(problems)}")
        raise CertificateRejected("DANE: the certificate matches none of the TLSA records")

    @staticmethod
    def _anchors(record: TLSA, chain: Sequence[x509.Certificate]) -> list[x509.Certificate]:
        """The certificates *record* (DANE-TA) makes trust anchors: those of *chain* it matches, and
        for ``2 0 0`` the certificate in the record, which the server may leave out (RFC 7671 5.2.2)."""
        anchors = [certificate for certificate in chain if record.matches(certificate)]
        if record.selector == CERT and record.mtype == FULL:
            try:
                anchors.append(x509.load_der_x509_certificate(record.data))
            except ValueError:
                pass
        return anchors

    def _chain_problem(
        self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], anchor: x509.Certificate,
    ) -> str | None:
        """Why *leaf* is not a valid certificate for us under trust anchor *anchor*, or None."""
        store = crypto.X509Store()
        store.add_cert(crypto.X509.from_cryptography(anchor))
        store.set_flags(crypto.X509StoreFlags.PARTIAL_CHAIN)  # the anchor need not be a root
        untrusted = [crypto.X509.from_cryptography(c) for c in intermediates]
        try:
            crypto.X509StoreContext(store, crypto.X509.from_cryptography(leaf), untrusted).verify_certificate()
        except crypto.X509StoreContextError as e:
            return f"the chain does not verify ({e})"
        if not any(matches_name(leaf, name) for name in self._names):
            return f"the certificate is not for {' or '.join(self._names)}"
        return None


def matches_name(certificate: x509.Certificate, reference: str) -> bool:
    """Whether *certificate* names the host *reference* (A-labels, lower case), RFC 7672 3.2.3.

    Its DNS names in subjectAltName count, or without any its subject's
    common names; ``*`` as a whole left-most label stands for one label.
    """
    for presented in _presented_names(certificate):
        presented = presented.lower().removesuffix(".")
        if presented == reference:
            return True
        first, dot, rest = reference.partition(".")
        if presented.startswith("*.") and first and dot and presented[2:] == rest:
            return True
    return False


def _presented_names(certificate: x509.Certificate) -> list[str]:
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns_names = names.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns_names = []
    except ValueError:  # a malformed extension names nothing
        return []
    if dns_names:
        return dns_names
    return [a.value for a in certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)]


def _selected(certificate: x509.Certificate, selector: int) -> bytes | None:
    """The octets the selector picks: the certificate's DER, or its SubjectPublicKeyInfo's (None: unreadable)."""
    if selector == CERT:
        return certificate.public_bytes(Encoding.DER)
    try:
        return certificate.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    except (ValueError, UnsupportedAlgorithm):
        return None

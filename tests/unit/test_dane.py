"""DANE matching (RFC 7672 3, RFC 7671, RFC 6698): which certificate chains a set of TLSA records accepts.

The records' data are computed here with OpenSSL's own encoders (pyOpenSSL),
not with the code under test; one certificate made with the ``openssl``
command has its digests written out, as OpenSSL printed them.
"""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from mailsrv.delivery import dane
from mailsrv.delivery.clienttls import Unverified
from mailsrv.delivery.dane import TLSA, Authenticator, TLSARecords, matches_name, tls_policy, usable
from mailsrv.delivery.smtpclient import CertificateRejected
from smtp_receiver import MailCA, certificate, self_signed

MX = "mx.example.test"
DOMAIN = "example.test"

#: ``openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj /CN=mx.kat.test ...``
KAT_PEM = b"""-----BEGIN CERTIFICATE-----
MIIBnDCCAUGgAwIBAgIUc3a8jRSRifintNDKNbWMF3jj9D8wCgYIKoZIzj0EAwIw
FjEUMBIGA1UEAwwLbXgua2F0LnRlc3QwIBcNMjYxMjAyMDI1MDE1WhgPMjEyNjEx
MDgwMjUwMTVaMBYxFDASBgNVBAMMC214LmthdC50ZXN0MFkwEwYHKoZIzj0CAQYI
KoZIzj0DAQcDQgAE1pT6OtgEt1ohwp2WpXBkb3boTdZWRvrAUEUC8svECs7SqwTu
YAAA5Oqz16zEIPIYNYUvqw1xXkccQL4lJCt79KNrMGkwHQYDVR0OBBYEFJWwhKlm
jfDRW880/jkIzaWhJLNNMB8GA1UdIwQYMBaAFJWwhKlmjfDRW880/jkIzaWhJLNN
MA8GA1UdEwEB/wQFMAMBAf8wFgYDVR0RBA8wDYILbXgua2F0LnRlc3QwCgYIKoZI
zj0EAwIDSQAwRgIhAOlCbJ1q90mkwZk0sS+pM/LMeM9zg6Z+ggqtRl5cm0JDAiEA
8c/b+r8NLFPBgrmJ7F1P4wplDBDVwvEKtVRQ9GNAC/4=
-----END CERTIFICATE-----
"""
#: ``openssl x509 -pubkey | openssl pkey -pubin -outform DER | sha256sum`` (and sha512sum; the cert's DER).
KAT = {
    (1, 1): "ee5e7d1e2b65ce7563809fc627981d8371295aa4379622397cc0c6dfc7341a9a",
    (1, 2): "cada63f25624f40bf8b215c459c13aa11faad65b91846ca9a9adf0e5c0cd5488"
            "1c0c4bd52fdd528ab235d46d9a5b110d04f8d10d3cd9ea22584186a739e23970",
    (0, 1): "5665b7ed66560a9160184a4fc227c61e840bf0076899b8afd4cfe559b62ea65e",
}


def selected(cert: x509.Certificate, selector: int) -> bytes:
    """The certificate's DER (0) or its SubjectPublicKeyInfo's (1), as OpenSSL encodes them."""
    x = crypto.X509.from_cryptography(cert)
    if selector == 0:
        return crypto.dump_certificate(crypto.FILETYPE_ASN1, x)
    return crypto.dump_publickey(crypto.FILETYPE_ASN1, x.get_pubkey())


def record(usage: int, selector: int, mtype: int, cert: x509.Certificate) -> TLSA:
    data = selected(cert, selector)
    if mtype == 1:
        data = hashlib.sha256(data).digest()
    elif mtype == 2:
        data = hashlib.sha512(data).digest()
    return TLSA(usage, selector, mtype, data)


def authenticate(records: list[TLSA], chain: list[x509.Certificate]) -> str:
    return Authenticator(usable(records), (MX, DOMAIN))(chain)


def rejected(records: list[TLSA], chain: list[x509.Certificate]) -> str:
    with pytest.raises(CertificateRejected) as e:
        authenticate(records, chain)
    return str(e.value)


@pytest.fixture(scope="module")
def ca() -> MailCA:
    return MailCA()


@pytest.fixture(scope="module")
def issued(ca: MailCA) -> list[x509.Certificate]:
    """A chain as a DANE-TA server sends it: its certificate, then the CA's."""
    return [ca.issue(MX)[1], ca.cert]


@pytest.mark.parametrize(("selector", "mtype"), sorted(KAT))
def test_the_digests_openssl_printed_match_its_certificate(selector: int, mtype: int) -> None:
    cert = x509.load_pem_x509_certificate(KAT_PEM)
    assert authenticate([TLSA(3, selector, mtype, bytes.fromhex(KAT[(selector, mtype)]))], [cert]) == \
        f"DANE-EE 3 {selector} {mtype}"
    wrong = bytearray.fromhex(KAT[(selector, mtype)])
    wrong[-1] ^= 1
    rejected([TLSA(3, selector, mtype, bytes(wrong))], [cert])


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ee_matches_the_server_certificate(selector: int, mtype: int) -> None:
    _, cert = self_signed(MX)
    _, other = self_signed(MX)
    assert authenticate([record(3, selector, mtype, cert)], [cert]) == f"DANE-EE 3 {selector} {mtype}"
    assert "matches none" in rejected([record(3, selector, mtype, other)], [cert])


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("mtype", [0, 1, 2])
def test_dane_ta_matches_the_ca_certificate_in_the_chain(
    selector: int, mtype: int, ca: MailCA, issued: list[x509.Certificate],
) -> None:
    assert authenticate([record(2, selector, mtype, ca.cert)], issued) == f"DANE-TA 2 {selector} {mtype}"
    problem = rejected([record(2, selector, mtype, MailCA().cert)], issued)
    # A 2 0 0 record carries its anchor (RFC 7671 5.2.2), and the chain does not verify under it.
    assert ("does not verify" if (selector, mtype) == (0, 0) else "matches none") in problem


def test_dane_ee_ignores_the_name_and_the_expiry() -> None:
    _, cert = self_signed("somewhere.else.test", expired=True)
    assert authenticate([record(3, 1, 1, cert)], [cert]) == "DANE-EE 3 1 1"


def test_dane_ee_matches_only_the_server_certificate(ca: MailCA, issued: list[x509.Certificate]) -> None:
    assert "matches none" in rejected([record(3, 1, 1, ca.cert)], issued)


def test_dane_ta_needs_a_certificate_for_the_mx_host_or_the_recipient_domain(ca: MailCA) -> None:
    records = [record(2, 1, 1, ca.cert)]
    assert authenticate(records, [ca.issue(DOMAIN)[1], ca.cert]) == "DANE-TA 2 1 1"
    assert authenticate(records, [ca.issue("*.example.test")[1], ca.cert]) == "DANE-TA 2 1 1"
    problem = rejected(records, [ca.issue("other.test", "*.mx.example.test")[1], ca.cert])
    assert "DANE-TA 2 1 1: the certificate is not for mx.example.test or example.test" in problem


def test_dane_ta_checks_the_expiry(ca: MailCA) -> None:
    assert "expired" in rejected([record(2, 1, 1, ca.cert)], [ca.issue(MX, expired=True)[1], ca.cert])


def test_dane_ta_needs_the_server_certificate_signed_under_the_anchor(ca: MailCA) -> None:
    stranger = MailCA().issue(MX)[1]
    assert "does not verify" in rejected([record(2, 1, 1, ca.cert)], [stranger, ca.cert])


def test_an_intermediate_ca_can_be_the_trust_anchor() -> None:
    intermediate = MailCA(MailCA())
    chain = [intermediate.issue(MX)[1], intermediate.cert]  # the root is not sent
    assert authenticate([record(2, 0, 1, intermediate.cert)], chain) == "DANE-TA 2 0 1"


def test_a_2_0_0_anchor_may_come_from_the_record_alone(ca: MailCA, issued: list[x509.Certificate]) -> None:
    assert authenticate([record(2, 0, 0, ca.cert)], issued[:1]) == "DANE-TA 2 0 0"
    rejected([record(2, 0, 1, ca.cert)], issued[:1])


def test_no_certificate_is_rejected() -> None:
    assert "no certificate" in rejected([TLSA(3, 1, 1, bytes(32))], [])


@pytest.mark.parametrize("tlsa", [
    TLSA(0, 1, 1, bytes(32)), TLSA(1, 1, 1, bytes(32)),  # PKIX-TA and PKIX-EE, RFC 7672 3.1.3
    TLSA(3, 2, 1, bytes(32)), TLSA(3, 1, 3, bytes(32)), TLSA(4, 1, 1, bytes(32)),  # unknown parameters
    TLSA(3, 1, 1, bytes(31)), TLSA(3, 1, 2, bytes(32)), TLSA(3, 1, 0, b""),  # malformed
])
def test_unusable_records(tlsa: TLSA) -> None:
    assert not tlsa.usable and usable([tlsa]) == []


def test_only_the_strongest_matching_type_of_a_usage_and_selector_counts() -> None:
    _, cert = self_signed(MX)
    wrong_sha512 = TLSA(3, 1, 2, bytes(64))
    assert usable([record(3, 1, 1, cert), wrong_sha512]) == [wrong_sha512]
    rejected([record(3, 1, 1, cert), wrong_sha512], [cert])
    assert authenticate([record(3, 0, 1, cert), wrong_sha512], [cert]) == "DANE-EE 3 0 1"


def test_one_matching_record_of_several_is_enough(ca: MailCA, issued: list[x509.Certificate]) -> None:
    records = [TLSA(3, 1, 1, bytes(32)), record(2, 1, 2, MailCA().cert), record(2, 1, 2, ca.cert)]
    assert authenticate(records, issued) == "DANE-TA 2 1 2"


def test_names_in_the_subject_count_only_without_dns_names_in_subjectaltname() -> None:
    key, _ = self_signed(MX)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, MX)])
    assert matches_name(certificate(subject, key.public_key(), subject, key), MX)
    assert not matches_name(certificate(subject, key.public_key(), subject, key, names=("other.test",)), MX)


@pytest.mark.parametrize(("presented", "reference", "match"), [
    ("MX.Example.Test", MX, True),
    ("*.example.test", MX, True),
    ("*.example.test", DOMAIN, False),
    ("*.example.test", "a.mx.example.test", False),
    ("m*.example.test", MX, False),
    ("mx.example.test.", MX, True),
])
def test_name_matching(presented: str, reference: str, match: bool) -> None:
    _, cert = self_signed(presented)
    assert matches_name(cert, reference) is match


def test_the_policy_requires_tls_and_checks_the_usable_records() -> None:
    tlsa = TLSARecords("_25._tcp.mx.example.test", MX, (TLSA(3, 1, 1, bytes(32)),), (MX,))
    policy = tls_policy(tlsa, DOMAIN, Unverified())
    assert (policy.attempt, policy.required) == (True, True)
    assert isinstance(policy.authenticate, Authenticator)
    assert policy.requirement == "DANE (TLSA records at _25._tcp.mx.example.test)"


def test_a_policy_without_usable_records_still_requires_tls() -> None:
    tlsa = TLSARecords("_25._tcp.mx.example.test", MX, (TLSA(1, 1, 1, bytes(32)),), (MX,))
    policy = tls_policy(tlsa, DOMAIN, Unverified())
    assert (policy.attempt, policy.required, policy.authenticate) == (True, True, None)
    assert policy.requirement.endswith(", none usable)")


def test_the_tlsa_name_has_the_port() -> None:
    assert dane.tlsa_name(MX, 2525) == "_2525._tcp.mx.example.test"

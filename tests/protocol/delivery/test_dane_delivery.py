"""DANE (RFC 7672) in MX delivery, on loopback: TLSA records from the test name server, signed or not.

Both MX hosts of a test are 127.0.0.1, that is the one receiver, so what
differs between them is only what the DNS says about them.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.web import resource, server

import support
from delivery_harness import DeliveryHarness
from mailsrv.delivery.attempt import Options, Outcome
from smtp_receiver import Receiver, self_signed, server_options

MX1, MX2 = "mx1.example.test", "mx2.example.test"


class MTASTSPolicy(resource.Resource):
    """example.test's MTA-STS policy: enforce, listing mx1 (RFC 8461 3.2)."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain")
        return b"version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n"


def spki_sha256(cert: x509.Certificate) -> str:
    """The data of a ``3 1 1`` record for *cert*."""
    return hashlib.sha256(cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


class DANEDeliveryTests(DeliveryHarness):
    def setUp(self) -> None:
        super().setUp()
        self.key, self.cert = self_signed("not.the.mx.name.test")  # DANE-EE needs no name (RFC 7672 3.1.1)

    def signed_mx(self, *hosts: str) -> None:
        """example.test's MX hosts, in this order, all on 127.0.0.1, with MX and A records signed."""
        self.mx("example.test", *((10 * (i + 1), host, "127.0.0.1") for i, host in enumerate(hosts)))
        self.zone.sign("example.test", *hosts)

    def tlsa(self, host: str, port: int, record: str, signed: bool = True) -> None:
        name = f"_{port}._tcp.{host}"
        self.zone.add(name, "TLSA", record)
        if signed:
            self.zone.sign(name)

    def dane_receiver(self, **script: object) -> tuple[Receiver, int]:
        receiver = Receiver(tls=server_options(self.key, self.cert), **script)
        return receiver, receiver.listen(self)

    def one_host(self, record: str | None, signed: bool = True, **script: object) -> tuple[Receiver, int]:
        """example.test's one MX host (signed), the DANE-EE receiver, and *record* as the host's TLSA."""
        self.signed_mx(MX1)
        receiver, port = self.dane_receiver(**script)
        if record is not None:
            self.tlsa(MX1, port, record.replace("RIGHT", spki_sha256(self.cert)).replace("WRONG", "00" * 32), signed)
        return receiver, port

    def assertNoMail(self, receiver: Receiver) -> None:
        self.assertEqual(receiver.messages, [])
        self.assertFalse(any(c.startswith("MAIL") for session in receiver.sessions for c in session.commands))

    async def test_a_matching_dane_ee_record_delivers_over_tls_to_a_self_signed_certificate(self) -> None:
        receiver, port = self.one_host("3 1 1 RIGHT")
        [result] = await self.send(self.sender(port, tls="verify"), "bob@example.test")  # DANE goes before verify
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertRegex(result.tls, r"^TLSv1\.[23] \S+ DANE-EE 3 1 1$")
        self.assertTrue(receiver.messages[0].tls)
        self.assertEqual(receiver.sessions[0].server_name, MX1)  # RFC 7672 8.1

    async def test_a_wrong_digest_skips_the_host_and_the_next_mx_that_matches_takes_the_message(self) -> None:
        self.signed_mx(MX1, MX2)
        receiver, port = self.dane_receiver()
        self.tlsa(MX1, port, f"3 1 1 {'00' * 32}")
        self.tlsa(MX2, port, f"3 1 1 {spki_sha256(self.cert)}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.host), (Outcome.DELIVERED, MX2), result.reply)
        self.assertEqual(receiver.connections, 2)
        self.assertFalse(any(c.startswith("MAIL") for c in receiver.sessions[0].commands))

    async def test_a_wrong_digest_defers_and_never_falls_back_to_plaintext(self) -> None:
        receiver, port = self.one_host("3 1 1 WRONG")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("TLS handshake failed: DANE: the certificate matches none of the TLSA records", result.reply)
        self.assertEqual(receiver.connections, 1)
        self.assertNoMail(receiver)

    async def test_a_host_without_starttls_is_not_used_when_its_tlsa_records_are_validated(self) -> None:
        self.signed_mx(MX1)
        receiver = Receiver()  # no STARTTLS
        port = receiver.listen(self)
        self.tlsa(MX1, port, f"3 1 1 {spki_sha256(self.cert)}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn(f"STARTTLS is required by DANE (TLSA records at _{port}._tcp.{MX1}) and not offered", result.reply)
        self.assertNoMail(receiver)

    async def test_tlsa_records_that_are_not_validated_are_ignored(self) -> None:
        receiver, port = self.one_host("3 1 1 WRONG", signed=False)
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertNotIn("DANE", result.tls)

    async def test_tlsa_records_of_a_host_named_by_an_unvalidated_mx_are_not_looked_up(self) -> None:
        self.mx("example.test", (10, MX1, "127.0.0.1"))
        self.zone.sign(MX1)  # the host's A record, but not the MX record
        receiver, port = self.dane_receiver()
        self.tlsa(MX1, port, f"3 1 1 {'00' * 32}")
        self.zone.fail(f"_{port}._tcp.{MX1}")  # asking would defer
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)

    async def test_a_failed_tlsa_lookup_skips_the_host(self) -> None:
        self.signed_mx(MX1, MX2)
        receiver, port = self.dane_receiver()
        self.zone.fail(f"_{port}._tcp.{MX1}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.host), (Outcome.DELIVERED, MX2), result.reply)
        self.assertEqual(receiver.connections, 1)

    async def test_a_failed_tlsa_lookup_of_the_only_host_defers(self) -> None:
        receiver, port = self.one_host(None)
        self.zone.fail(f"_{port}._tcp.{MX1}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertRegex(result.reply, rf"^451 4\.4\.3 TLSA lookup for _{port}\._tcp\.{MX1} failed")
        self.assertEqual(receiver.connections, 0)

    async def test_a_dane_ta_record_needs_the_mx_name_in_a_certificate_under_the_anchor(self) -> None:
        self.signed_mx(MX1, MX2)
        right = Receiver(tls=self.ca.server_options(MX2, send_chain=True))
        port = right.listen(self)
        self.tlsa(MX1, port, f"2 0 1 {hashlib.sha256(self.ca.cert.public_bytes(Encoding.DER)).hexdigest()}")
        self.tlsa(MX2, port, f"2 0 1 {hashlib.sha256(self.ca.cert.public_bytes(Encoding.DER)).hexdigest()}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.host), (Outcome.DELIVERED, MX2), result.reply)
        self.assertTrue(result.tls.endswith(" DANE-TA 2 0 1"))
        self.assertEqual(right.connections, 2)  # MX1 was refused: the certificate is for MX2

    async def test_validated_records_none_usable_still_require_tls(self) -> None:
        self.signed_mx(MX1)
        receiver = Receiver()
        port = receiver.listen(self)
        self.tlsa(MX1, port, f"1 1 1 {spki_sha256(self.cert)}")  # PKIX-EE: unusable (RFC 7672 3.1.3)
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("none usable) and not offered", result.reply)

    async def test_validated_records_none_usable_accept_any_certificate(self) -> None:
        receiver, port = self.one_host("1 1 1 WRONG")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertTrue(receiver.messages[0].tls)

    async def test_dane_false_ignores_tlsa_records(self) -> None:
        receiver, port = self.one_host("3 1 1 WRONG")
        [result] = await self.send(self.sender(port, dane=False), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)

    async def test_tls_none_turns_dane_off_too(self) -> None:
        receiver, port = self.one_host("3 1 1 WRONG")
        [result] = await self.send(self.sender(port, tls="none"), "bob@example.test")
        self.assertEqual((result.outcome, result.tls), (Outcome.DELIVERED, ""), result.reply)

    async def test_the_relay_gets_no_dane(self) -> None:
        self.zone.add("relay.test", "A", "127.0.0.1")
        self.zone.sign("relay.test")
        receiver, port = self.dane_receiver()
        self.tlsa("relay.test", port, f"3 1 1 {'00' * 32}")
        [result] = await self.send(self.sender(port, relay=f"relay.test:{port}", relay_tls="encrypt"), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)

    def aliased_mx(self) -> None:
        """example.test's MX is alias.example.test, a CNAME for real.example.net; all signed."""
        self.zone.add("example.test", "MX", "10 alias.example.test.")
        self.zone.add("alias.example.test", "CNAME", "real.example.net.")
        self.zone.add("real.example.net", "A", "127.0.0.1")
        self.zone.sign("example.test", "alias.example.test", "real.example.net")

    async def test_an_mx_alias_has_its_tlsa_records_under_the_name_it_stands_for_first(self) -> None:
        self.aliased_mx()
        receiver, port = self.dane_receiver()
        self.tlsa("real.example.net", port, f"3 1 1 {spki_sha256(self.cert)}")
        self.tlsa("alias.example.test", port, f"3 1 1 {'00' * 32}")  # not looked at: the expanded name has records
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertTrue(result.tls.endswith(" DANE-EE 3 1 1"))
        self.assertEqual(receiver.sessions[0].server_name, "real.example.net")

    async def test_an_mx_alias_without_records_under_its_target_has_them_under_its_own_name(self) -> None:
        self.aliased_mx()
        receiver, port = self.dane_receiver()
        self.zone.sign(f"_{port}._tcp.real.example.net")  # a validated NXDOMAIN
        self.tlsa("alias.example.test", port, f"3 1 1 {'00' * 32}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("DANE: the certificate matches none", result.reply)

    async def test_a_dane_ta_certificate_may_name_the_mx_alias(self) -> None:
        self.aliased_mx()
        receiver = Receiver(tls=self.ca.server_options("alias.example.test", send_chain=True))
        port = receiver.listen(self)
        self.tlsa("real.example.net", port, f"2 0 1 {hashlib.sha256(self.ca.cert.public_bytes(Encoding.DER)).hexdigest()}")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertTrue(result.tls.endswith(" DANE-TA 2 0 1"))

    def mta_sts_enforce(self) -> int:
        """:class:`MTASTSPolicy` served over HTTPS for example.test (RFC 8461 3); the port."""
        root, well_known = resource.Resource(), resource.Resource()
        root.putChild(b".well-known", well_known)
        well_known.putChild(b"mta-sts.txt", MTASTSPolicy())
        self.zone.add("_mta-sts.example.test", "TXT", '"v=STSv1; id=1;"')
        self.zone.add("mta-sts.example.test", "A", "127.0.0.1")
        return support.listen_loopback(self, server.Site(root),
                                       implicit_tls=self.ca.server_options("mta-sts.example.test"))

    async def test_dane_goes_before_mta_sts(self) -> None:
        receiver, port = self.one_host("3 1 1 RIGHT")  # self-signed: MTA-STS's verify alone refuses it
        [result] = await self.send(self.sender(port, mta_sts_port=self.mta_sts_enforce()), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertTrue(result.tls.endswith(" DANE-EE 3 1 1"))

    async def test_without_tlsa_records_mta_sts_applies(self) -> None:
        receiver, port = self.one_host(None)
        [result] = await self.send(self.sender(port, mta_sts_port=self.mta_sts_enforce()), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("TLS handshake failed", result.reply)

    async def test_a_per_domain_tls_rule_goes_before_dane(self) -> None:
        receiver, port = self.one_host("3 1 1 WRONG")
        [result] = await self.send(self.sender(port, domains={"example.test": {"tls": "encrypt"}}), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertNotIn("DANE", result.tls)

    # -- RFC 8689: REQUIRETLS takes DANE's authentication, TLS-Required: No sets DANE aside

    async def test_requiretls_is_met_by_dane(self) -> None:
        receiver, port = self.one_host("3 1 1 RIGHT", extensions=("REQUIRETLS",))  # self-signed: PKIX fails
        [result] = await self.send(self.sender(port), "bob@example.test", options=Options(require_tls=True))
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertTrue(result.tls.endswith(" DANE-EE 3 1 1"))
        self.assertEqual(receiver.messages[0].mail_from, "FROM:<alice@local.test> REQUIRETLS")

    async def test_requiretls_is_not_met_by_unusable_records(self) -> None:
        receiver, port = self.one_host("1 1 1 RIGHT", extensions=("REQUIRETLS",))  # encryption only: PKIX needed
        [result] = await self.send(self.sender(port), "bob@example.test", options=Options(require_tls=True))
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("TLS handshake failed", result.reply)
        self.assertEqual(receiver.messages, [])

    async def test_tls_required_no_sets_dane_aside(self) -> None:
        receiver, port = self.one_host("3 1 1 WRONG")
        [result] = await self.send(self.sender(port), "bob@example.test", options=Options(tls_optional=True))
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertNotIn("DANE", result.tls)
        self.assertTrue(receiver.messages[0].tls)

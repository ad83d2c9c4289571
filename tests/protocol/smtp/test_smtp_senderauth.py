"""Port 25 sender authentication: SPF, DKIM, DMARC and ARC against the test's own DNS.

Each test is an SMTP session from 192.0.2.7 (outside ``trusted_networks``)
whose lookups go to a name server on 127.0.0.1 serving the zone the test
declares: SPF and DMARC records, and DKIM keys made here, with which the
test signs (and forges) its messages.  What is checked is the
Authentication-Results field the stored message starts with (RFC 8601),
the 550 of a DMARC p=reject failure and the Junk folder of p=quarantine.
"""

from __future__ import annotations

import dataclasses
import os
import re

import dkim

from dns_harness import ThreadedDNS, Zone
from mailsrv import config as configuration
from mailsrv.dns import make_resolver
from mailsrv.store import names
from senderauth_harness import key, message, publish_key, sign
from support import make_context
from test_smtp_session import FakeDirectory, FakeStore, SMTPTestCase, HOST

QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as [0-9A-Z]{12}\r\n\Z")
PEER = "192.0.2.7"


class SenderAuthTestCase(SMTPTestCase):
    """A session against a context whose resolver asks :attr:`zone` (example.net publishes everything)."""

    trusted: tuple[str, ...] = ()
    dmarc_reject = True
    spool_threshold = 1024 * 1024

    def setUp(self) -> None:
        self.zone = Zone()
        self.zone.add("example.net", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        self.zone.add("_dmarc.example.net", "TXT", '"v=DMARC1; p=reject"')
        publish_key(self.zone, "example.net", "s1", key("example.net"))
        self.dns = ThreadedDNS(self.zone).__enter__()
        self.addCleanup(self.dns.__exit__)
        super().setUp()
        resolver = make_resolver(configuration.DNSConfig(nameservers=(f"127.0.0.1:{self.dns.port}",), timeout=2))
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), resolver=resolver)

    def make_config(self, **auth):
        base = super().make_config(**auth)
        return configuration.Config(
            data_dir=base.data_dir, hostname=base.hostname, domains=base.domains,
            limits=dataclasses.replace(base.limits, spool_threshold=self.spool_threshold, max_message_size=65536),
            auth=base.auth,
            policy=configuration.PolicyConfig(trusted_networks=self.trusted, dmarc_reject=self.dmarc_reject),
        )

    def send(self, data: bytes, sender: str = "bob@example.net", helo: str = "client.example.net") -> bytes:
        """One transaction to alice; the reply to the data."""
        self.connect()
        self.say(f"EHLO {helo}\r\n".encode())
        self.assertEqual(self.say(f"MAIL FROM:<{sender}>\r\n".encode()), b"250 2.1.0 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        return self.say(data + b".\r\n")

    def results(self, data: bytes, **kwargs: str) -> list[str]:
        """Send *data*; the results of our A-R field (right below Return-Path), one per resinfo."""
        self.assertRegex(self.send(data, **kwargs), QUEUED)
        stored = below_return_path(self.store.calls[-1][1])
        self.assertTrue(stored.startswith(b"Authentication-Results: " + HOST.encode() + b";\r\n\t"), stored[:200])
        field = re.match(rb"Authentication-Results: [^;]+;((?:\r\n\t.*)+)\r\n(?! )", stored).group(1)
        return [part.strip() for part in field.decode().replace("\r\n\t", " ").split(";")]


def below_return_path(stored: bytes) -> bytes:
    """The stored message after its first line, which must be our Return-Path (RFC 5321 4.4)."""
    first, _, rest = stored.partition(b"\r\n")
    assert first.startswith(b"Return-Path: <"), stored[:200]
    return rest


class AllPassTests(SenderAuthTestCase):
    def test_signed_mail_from_the_right_address_passes_everything(self):
        self.assertEqual(self.results(sign(message())), [
            "spf=pass smtp.mailfrom=bob@example.net",
            "spf=none smtp.helo=client.example.net",
            "dkim=pass header.d=example.net header.s=s1 header.b=" + self.b_tag(),
            "dmarc=pass header.from=example.net",
            "arc=none",
        ])
        self.assertEqual(self.store.folders, [[names.INBOX]])

    def b_tag(self) -> str:
        stored = self.store.calls[-1][1]
        return re.search(rb"\bb=([A-Za-z0-9+/]{8})", stored.split(b"DKIM-Signature:", 1)[1]).group(1).decode()


class SPFTests(SenderAuthTestCase):
    def spf(self, record: str | None, sender: str = "bob@spf.example") -> str:
        if record is not None:
            self.zone.add("spf.example", "TXT", record)
        return self.results(message("bob@spf.example"), sender=sender)[0]

    def test_pass(self):
        self.assertEqual(self.spf('"v=spf1 ip4:192.0.2.0/24 -all"'), "spf=pass smtp.mailfrom=bob@spf.example")

    def test_fail(self):
        self.assertEqual(self.spf('"v=spf1 ip4:198.51.100.1 -all"'), "spf=fail smtp.mailfrom=bob@spf.example")

    def test_softfail(self):
        self.assertEqual(self.spf('"v=spf1 ~all"'), "spf=softfail smtp.mailfrom=bob@spf.example")

    def test_neutral(self):
        self.assertEqual(self.spf('"v=spf1 ?all"'), "spf=neutral smtp.mailfrom=bob@spf.example")

    def test_none_without_a_record(self):
        self.assertEqual(self.spf(None, sender="bob@nothing.example"), "spf=none smtp.mailfrom=bob@nothing.example")

    def test_permerror_for_two_records(self):
        self.zone.add("spf.example", "TXT", '"v=spf1 -all"', '"v=spf1 +all"')  # RFC 7208 4.5
        self.assertEqual(self.spf(None), "spf=permerror smtp.mailfrom=bob@spf.example")

    def test_temperror_when_the_name_server_fails(self):
        self.zone.fail("spf.example")
        self.assertEqual(self.spf(None), "spf=temperror smtp.mailfrom=bob@spf.example")

    def test_helo_is_checked_too(self):
        self.zone.add("mx.spf.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        results = self.results(message("bob@spf.example"), sender="bob@spf.example", helo="mx.spf.example")
        self.assertEqual(results[1], "spf=pass smtp.helo=mx.spf.example")

    def test_null_sender_is_checked_as_postmaster_at_helo(self):
        # RFC 7208 2.4
        self.zone.add("mx.spf.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        results = self.results(message("bob@spf.example"), sender="", helo="mx.spf.example")
        self.assertEqual(results[0], "spf=pass smtp.mailfrom=postmaster@mx.spf.example")

    def test_address_literal_helo_has_no_helo_result(self):
        results = self.results(sign(message()), helo="[192.0.2.7]")
        self.assertEqual(results[:2], ["spf=pass smtp.mailfrom=bob@example.net", results[1]])
        self.assertTrue(results[1].startswith("dkim="))


class DKIMTests(SenderAuthTestCase):
    def dkim(self, data: bytes) -> list[str]:
        return [r for r in self.results(data, sender="bob@spf-less.example") if r.startswith("dkim=")]

    def test_none_without_a_signature(self):
        self.assertEqual(self.dkim(message("bob@other.example")), ["dkim=none"])

    def test_fail_when_the_body_changed_after_signing(self):
        signed = sign(message("bob@other.example"), "other.example")
        publish_key(self.zone, "other.example", "s1", key("other.example"))
        [result] = self.dkim(signed.replace(b"Hello.", b"Hello!"))
        self.assertRegex(result, r"^dkim=fail header\.d=other\.example header\.s=s1 header\.b=\S{8}$")

    def test_fail_when_a_signed_field_changed(self):
        signed = sign(message("bob@other.example"), "other.example")
        publish_key(self.zone, "other.example", "s1", key("other.example"))
        [result] = self.dkim(signed.replace(b"Subject: hi", b"Subject: win"))
        self.assertRegex(result, r"^dkim=fail header\.d=other\.example ")

    def test_permerror_when_the_key_is_not_published(self):
        [result] = self.dkim(sign(message("bob@other.example"), "other.example", "gone"))
        self.assertRegex(result, r"^dkim=permerror header\.d=other\.example header\.s=gone ")

    def test_temperror_when_the_key_lookup_fails(self):
        self.zone.fail("s1._domainkey.other.example")
        [result] = self.dkim(sign(message("bob@other.example"), "other.example"))
        self.assertRegex(result, r"^dkim=temperror header\.d=other\.example header\.s=s1 ")

    def test_every_signature_is_reported(self):
        publish_key(self.zone, "other.example", "s1", key("other.example"))
        twice = sign(sign(message("bob@other.example"), "other.example"), "example.net")
        results = self.dkim(twice)
        self.assertEqual([r.split(" header.b=")[0] for r in results],
                         ["dkim=pass header.d=example.net header.s=s1", "dkim=pass header.d=other.example header.s=s1"])

    def test_past_five_signatures_the_rest_are_not_checked(self):
        """Each signature hashes the whole body again (a quarter second per 10 MiB, relaxed): 1,000 would
        hold a DNS thread for minutes.  RFC 6376 6.1 lets a verifier stop; rspamd stops at five too."""
        publish_key(self.zone, "other.example", "s1", key("other.example"))
        signed = sign(message("bob@other.example"), "other.example")
        signature = signed[:signed.index(b"From: Bob")]
        results = self.dkim(signature * 6 + signed)
        self.assertEqual([r.split(" header.b=")[0] for r in results],
                         ["dkim=pass header.d=other.example header.s=s1"] * 5
                         + ["dkim=policy (2 more signatures not checked)"])

    def test_a_header_dkimpy_cannot_read_is_a_permerror_not_a_refusal(self):
        broken = sign(message("bob@other.example"), "other.example").replace(b"To:", b"Not a field\r\nTo:")
        self.assertEqual(self.dkim(broken), ["dkim=permerror"])

    def test_a_signature_that_does_not_parse_is_a_permerror(self):
        self.assertEqual(self.dkim(b"DKIM-Signature: v=1; garbage\r\n" + message("bob@other.example")),
                         ["dkim=permerror"])


FORGER = "forger@elsewhere.example"  # no SPF record: nothing aligns but a signature


class DMARCTests(SenderAuthTestCase):
    def dmarc(self, data: bytes, sender: str = FORGER) -> str:
        return [r for r in self.results(data, sender=sender) if r.startswith("dmarc=")][0]

    def test_forged_author_of_a_reject_domain_is_refused_and_not_stored(self):
        reply = self.send(message(), sender=FORGER)
        self.assertEqual(reply, b"550 5.7.1 Message rejected: it fails DMARC and the policy of example.net is reject\r\n")
        self.assertEqual(self.store.calls, [])

    def test_signature_of_the_author_domain_passes_whatever_the_envelope(self):
        self.assertEqual(self.dmarc(sign(message())), "dmarc=pass header.from=example.net")

    def test_spf_of_the_author_domain_passes_unsigned_mail(self):
        self.assertEqual(self.dmarc(message(), sender="bob@example.net"), "dmarc=pass header.from=example.net")

    def test_relaxed_alignment_takes_a_subdomain_signature(self):
        publish_key(self.zone, "mail.example.net", "s1", key("mail.example.net"))
        self.assertEqual(self.dmarc(sign(message(), "mail.example.net")), "dmarc=pass header.from=example.net")

    def test_relaxed_alignment_takes_a_subdomain_envelope(self):
        self.zone.add("bounces.example.net", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        self.assertEqual(self.dmarc(message(), sender="b@bounces.example.net"), "dmarc=pass header.from=example.net")

    def test_strict_dkim_alignment_wants_the_same_domain(self):
        self.zone.add("_dmarc.strict.example", "TXT", '"v=DMARC1; p=quarantine; adkim=s"')
        publish_key(self.zone, "mail.strict.example", "s1", key("mail.strict.example"))
        self.assertEqual(self.dmarc(sign(message("bob@strict.example"), "mail.strict.example")),
                         "dmarc=fail (p=quarantine dis=quarantine) header.from=strict.example")
        publish_key(self.zone, "strict.example", "s1", key("strict.example"))
        self.assertEqual(self.dmarc(sign(message("bob@strict.example"), "strict.example")),
                         "dmarc=pass header.from=strict.example")

    def test_strict_spf_alignment_wants_the_same_domain(self):
        self.zone.add("_dmarc.strict.example", "TXT", '"v=DMARC1; p=quarantine; aspf=s"')
        self.zone.add("bounces.strict.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        self.zone.add("strict.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        self.assertEqual(self.dmarc(message("bob@strict.example"), sender="b@bounces.strict.example"),
                         "dmarc=fail (p=quarantine dis=quarantine) header.from=strict.example")
        self.assertEqual(self.dmarc(message("bob@strict.example"), sender="b@strict.example"),
                         "dmarc=pass header.from=strict.example")

    def test_quarantine_goes_to_junk(self):
        self.zone.add("_dmarc.q.example", "TXT", '"v=DMARC1; p=quarantine"')
        self.assertEqual(self.dmarc(message("bob@q.example")), "dmarc=fail (p=quarantine dis=quarantine) header.from=q.example")
        self.assertEqual(self.store.folders, [["Junk"]])

    def test_pct_sampled_out_reject_is_quarantined(self):
        # RFC 7489 6.6.4: the next milder policy
        self.zone.add("_dmarc.pct.example", "TXT", '"v=DMARC1; p=reject; pct=0"')
        self.assertEqual(self.dmarc(message("bob@pct.example")), "dmarc=fail (p=reject dis=quarantine) header.from=pct.example")
        self.assertEqual(self.store.folders, [["Junk"]])

    def test_pct_sampled_out_quarantine_is_delivered(self):
        self.zone.add("_dmarc.pct.example", "TXT", '"v=DMARC1; p=quarantine; pct=0"')
        self.assertEqual(self.dmarc(message("bob@pct.example")), "dmarc=fail (p=quarantine dis=none) header.from=pct.example")
        self.assertEqual(self.store.folders, [[names.INBOX]])

    def test_subdomain_gets_the_organization_sp_policy(self):
        self.zone.add("_dmarc.parent.example", "TXT", '"v=DMARC1; p=reject; sp=quarantine"')
        self.assertEqual(self.dmarc(message("bob@news.parent.example")),
                         "dmarc=fail (p=quarantine dis=quarantine) header.from=news.parent.example")
        self.assertEqual(self.store.folders, [["Junk"]])

    def test_subdomain_without_sp_gets_p(self):
        self.assertEqual(self.send(message("bob@news.example.net"), sender=FORGER)[:10], b"550 5.7.1 ")

    def test_none_without_a_record(self):
        self.assertEqual(self.dmarc(message("bob@open.example")), "dmarc=none header.from=open.example")

    def test_a_record_without_a_valid_policy_is_no_record(self):
        # RFC 7489 6.6.3: without rua= it is not a DMARC record
        self.zone.add("_dmarc.typo.example", "TXT", '"v=DMARC1; p=rejet"')
        self.assertEqual(self.dmarc(message("bob@typo.example")), "dmarc=none header.from=typo.example")

    def test_temperror_when_the_record_lookup_fails(self):
        self.zone.fail("_dmarc.broken.example")
        self.assertEqual(self.dmarc(message("bob@broken.example")), "dmarc=temperror header.from=broken.example")

    def test_authors_of_two_domains_are_a_permerror(self):
        data = message().replace(b"From: Bob <bob@example.net>", b"From: bob@example.net, eve@evil.example")
        self.assertEqual(self.dmarc(data), "dmarc=permerror")

    def test_an_author_domain_that_is_no_dns_name_is_a_permerror(self):
        data = message().replace(b"From: Bob <bob@example.net>", b"From: bob@[192.0.2.1]")
        self.assertEqual(self.dmarc(data), "dmarc=permerror")

    def test_no_from_is_none(self):
        self.assertEqual(self.dmarc(message().replace(b"From: Bob <bob@example.net>\r\n", b"")), "dmarc=none")


class BrokenCheckTests(SenderAuthTestCase):
    def test_a_failing_check_delivers_without_results_and_still_drops_ours(self):
        from mailsrv.policy.senderauth import check

        def broken(*args, **kwargs):
            raise RuntimeError("a bug")

        self.patch(check, "authenticate", broken)
        forged = b"Authentication-Results: mx.example.test; dmarc=pass\r\n"
        self.assertRegex(self.send(message(extra=forged), sender=FORGER), QUEUED)
        self.assertNotIn(b"Authentication-Results", self.store.calls[0][1])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


class DeliverRejectsToJunk(SenderAuthTestCase):
    dmarc_reject = False

    def test_reject_policy_goes_to_junk_when_dmarc_reject_is_off(self):
        self.assertIn("dmarc=fail (p=reject dis=reject) header.from=example.net",
                      self.results(message(), sender=FORGER))
        self.assertEqual(self.store.folders, [["Junk"]])


class TrustedNetworkTests(SenderAuthTestCase):
    trusted = ("192.0.2.0/24",)

    def test_mail_from_a_trusted_network_is_not_checked(self):
        self.assertRegex(self.send(message(), sender=FORGER), QUEUED)
        self.assertTrue(self.store.calls[0][1].startswith(b"Return-Path: "))
        self.assertEqual(self.store.folders, [[names.INBOX]])

    def test_results_claiming_our_name_are_removed_from_unchecked_mail_too(self):
        """A trusted relay (a backup MX) passes internet mail on unchecked: a forged A-R of ours must not ride along."""
        forged = b"Authentication-Results: mx.example.test; dmarc=pass header.from=example.net\r\n"
        kept = b"Authentication-Results: backup.example; spf=pass\r\n"
        self.assertRegex(self.send(message(extra=forged + kept), sender=FORGER), QUEUED)
        stored = below_return_path(self.store.calls[0][1])
        self.assertNotIn(b"mx.example.test; dmarc=pass", stored)
        self.assertIn(kept, stored)


class HeaderRemovalTests(SenderAuthTestCase):
    def test_results_claiming_our_name_are_removed_and_others_kept(self):
        forged = (b"Authentication-Results: MX.Example.Test; dkim=pass\r\n\theader.d=example.net\r\n"
                  b"Authentication-Results: (we are) mx.example.test 1; spf=pass\r\n"
                  b"Authentication-Results: other.example; spf=fail\r\n")
        self.assertRegex(self.send(sign(message(extra=forged)), sender="bob@example.net"), QUEUED)
        stored = below_return_path(self.store.calls[0][1])
        self.assertEqual(stored.count(b"Authentication-Results:"), 2)
        self.assertTrue(stored.startswith(b"Authentication-Results: mx.example.test;\r\n"))
        self.assertIn(b"==\r\nAuthentication-Results: other.example; spf=fail\r\nFrom: Bob", stored)
        self.assertNotIn(b"header.d=example.net\r\n", stored)
        self.assertIn(b"\r\n\r\nHello.\r\n", stored)

    def test_our_name_as_an_absolute_dns_name_is_removed(self):
        """``mx.example.test.`` is the same host to a reader; a filter trimming the dot would believe it."""
        forged = b"Authentication-Results: mx.example.test.; dkim=pass header.d=example.net\r\n"
        self.send(message(extra=forged), sender="bob@example.net")
        self.assertEqual(below_return_path(self.store.calls[0][1]).count(b"Authentication-Results:"), 1)
        self.assertNotIn(b"mx.example.test.;", self.store.calls[0][1])

    def test_a_name_that_only_starts_like_ours_is_kept(self):
        kept = b"Authentication-Results: mx.example.test.evil.example; none\r\n"
        self.send(message(extra=kept), sender="bob@example.net")
        self.assertIn(b"\r\n" + kept, self.store.calls[0][1])


def forward(data: bytes, tamper: bool = False) -> bytes:
    """*data* as a mailing list at list.example passes it on: subject tagged (breaking DKIM), ARC-sealed."""
    changed = data.replace(b"Subject: hi", b"Subject: [list] hi")
    received = b"Authentication-Results: list.example; dkim=pass header.d=example.net; arc=none\r\n" + changed
    arc_set = dkim.arc_sign(received, b"arc", b"list.example", key("list.example"), b"list.example",
                            include_headers=[b"from", b"to", b"subject", b"message-id"])
    sealed = b"".join(arc_set) + received
    return sealed.replace(b"Hello.", b"Hello!") if tamper else sealed


class ARCTests(SenderAuthTestCase):
    def setUp(self) -> None:
        super().setUp()
        publish_key(self.zone, "list.example", "arc", key("list.example"))

    def arc(self, data: bytes) -> list[str]:
        return [r for r in self.results(data, sender="bounce@list.example") if r.split("=")[0] in ("arc", "dkim")]

    def test_a_sealed_forward_validates_though_its_dkim_signature_broke(self):
        results = self.arc(forward(sign(message("bob@list-member.example"), "example.net")))
        self.assertEqual([r.split(" ")[0] for r in results], ["dkim=fail", "arc=pass"])

    def test_a_chain_whose_message_changed_after_sealing_fails(self):
        results = self.arc(forward(sign(message("bob@list-member.example"), "example.net"), tamper=True))
        self.assertEqual(results[-1], "arc=fail")


class SpooledHeaderRemovalTests(SenderAuthTestCase):
    spool_threshold = 256

    def test_our_results_are_removed_from_a_spooled_message_and_the_spool_is_cleaned(self):
        forged = b"Authentication-Results: mx.example.test; dmarc=pass\r\n"
        data = sign(message(extra=forged).replace(b"Hello.", b"Hello.\r\n" + (b"x" * 70 + b"\r\n") * 40))
        self.assertRegex(self.send(data, sender="bob@example.net"), QUEUED)
        stored = self.store.calls[0][1]
        self.assertEqual(stored.count(b"Authentication-Results:"), 1)
        self.assertIn(b"dkim=pass header.d=example.net", stored)
        self.assertEqual(os.listdir(self.config.spool_dir), [])

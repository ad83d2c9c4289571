"""ARC sealing (RFC 8617) of what an alias forwards, checked with dkimpy's ``arc_verify`` against the test DNS.

A session from 192.0.2.7 (outside ``trusted_networks``) writes to
``fwd@example.test``, which forwards to someone@remote.test; example.net
signs with DKIM, example.test has the DKIM key the seal is made with
(``<data_dir>/dkim/example.test/s1.key``), and both keys are published by
the test's name server.  What the queue got is the message as it leaves
(our Return-Path is not sent).
"""

from __future__ import annotations

import os
import re

import dkim

from mailsrv.dkim.keys import write_new
from mailsrv.policy.senderauth.lookups import KeyLookup
from senderauth_harness import key, message, publish_key, sign
from support import make_context
from test_smtp_forward import ForwardingDirectory, RecordingQueue
from test_smtp_senderauth import QUEUED, SenderAuthTestCase
from test_smtp_session import HOST


class SealingCase(SenderAuthTestCase):
    """A checked port 25 session to a forwarding alias; example.test can seal."""

    def setUp(self) -> None:
        super().setUp()
        self.ctx = make_context(self.config, store=self.store, directory=ForwardingDirectory(),
                                checker=self.checker, tls_options=object(), resolver=self.ctx.policy.resolver)
        self.queue = RecordingQueue()
        self.ctx.queue = self.queue
        write_new(os.path.join(self.config.data_dir, "dkim", "example.test"), "s1", key("example.test"))
        publish_key(self.zone, "example.test", "s1", key("example.test"))

    def forward(self, data: bytes, recipient: str = "fwd@example.test") -> bytes:
        """Send *data* to *recipient* from bob@example.net; the forwarded copy as it leaves."""
        self.connect()
        self.say(b"EHLO client.example.net\r\n")
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net>\r\n"), b"250 2.1.0 Ok\r\n")
        self.assertEqual(self.say(f"RCPT TO:<{recipient}>\r\n".encode()), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(data + b".\r\n"), QUEUED)
        [(_, _, _, queued)] = self.queue.queued[-1:]
        first, _, rest = queued.partition(b"\r\n")
        self.assertTrue(first.startswith(b"Return-Path: <"), queued[:100])
        return rest

    def verify(self, data: bytes) -> tuple[bytes, list[dict]]:
        """dkimpy's chain status and per-set results for *data*, keys from the test DNS."""
        status, sets, _ = dkim.arc_verify(data, dnsfunc=KeyLookup(self.ctx.policy.resolver))
        return status, sets

    def seal_tags(self, data: bytes) -> list[dict[str, str]]:
        """The i= and cv= of each ARC-Seal of *data*, top first."""
        seals = re.findall(rb"^ARC-Seal: (.*(?:\r\n[ \t].*)*)", data.split(b"\r\n\r\n", 1)[0], re.M)
        return [dict(re.findall(r"\b(i|cv)=([a-z0-9]+)", seal.decode())) for seal in seals]


class SealTests(SealingCase):
    def test_forwarded_mail_is_sealed_with_instance_1_and_the_chain_passes(self):
        sent = self.forward(sign(message()))
        self.assertTrue(sent.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.test; s=s1;"), sent[:200])
        self.assertEqual(self.verify(sent)[0], dkim.CV_Pass)
        [arc_set] = self.verify(sent)[1]
        self.assertEqual((arc_set["instance"], arc_set["as-domain"], arc_set["ams-domain"]),
                         (1, b"example.test", b"example.test"))
        # The AAR carries our checks' results: what the next hop's DMARC may rely on.
        aar = arc_set["aar-value"].decode()
        self.assertTrue(aar.startswith(f"i=1; {HOST}; spf=pass smtp.mailfrom=bob@example.net;"), aar)
        self.assertIn("dkim=pass header.d=example.net", aar)
        self.assertIn("arc=none", aar)
        # The author's signature still verifies: From: and the body are untouched.
        self.assertTrue(dkim.verify(sent, dnsfunc=KeyLookup(self.ctx.policy.resolver)))

    def test_a_second_hop_seals_instance_2_and_the_chain_still_passes(self):
        once = self.forward(sign(message()))
        twice = self.forward(once)
        self.assertEqual(self.seal_tags(twice), [{"i": "2", "cv": "pass"}, {"i": "1", "cv": "none"}])
        status, sets = self.verify(twice)
        self.assertEqual((status, [s["instance"] for s in sets]), (dkim.CV_Pass, [2, 1]))
        self.assertIn("arc=pass", sets[0]["aar-value"].decode())

    def test_a_chain_that_fails_validation_is_sealed_with_cv_fail(self):
        once = self.forward(sign(message()))
        changed = once.replace(b"Hello.", b"Hello, changed on the way.")  # breaks the AMS of i=1
        twice = self.forward(changed)
        self.assertEqual(self.seal_tags(twice), [{"i": "2", "cv": "fail"}, {"i": "1", "cv": "none"}])
        self.assertIn(b"arc=fail", twice.split(b"ARC-Authentication-Results: i=2;", 1)[1][:400])
        # The i=2 AMS covers the message as it now is; the chain stays failed for whoever comes next.
        status, sets = self.verify(twice)
        self.assertEqual([(s["instance"], s["ams-valid"]) for s in sets], [(2, True), (1, False)])
        self.assertNotEqual(status, dkim.CV_Pass)

    def test_a_chain_already_marked_failed_is_not_sealed_again(self):
        once = self.forward(sign(message()))
        failed = self.forward(once.replace(b"Hello.", b"Hello, changed."))
        thrice = self.forward(failed)
        self.assertEqual(self.seal_tags(thrice), [{"i": "2", "cv": "fail"}, {"i": "1", "cv": "none"}])

    def test_an_unsigned_message_is_sealed_too(self):
        sent = self.forward(message())
        self.assertEqual(self.verify(sent)[0], dkim.CV_Pass)
        self.assertIn("dkim=none", self.verify(sent)[1][0]["aar-value"].decode())

    def test_the_local_copy_is_not_sealed(self):
        self.forward(sign(message()), recipient="info@example.test")  # alice here, someone remote
        [(_, stored)] = self.store.calls
        self.assertNotIn(b"ARC-Seal:", stored)
        self.assertIn(b"ARC-Seal:", self.queue.queued[0][3])

    def test_without_a_key_the_message_is_forwarded_unsealed(self):
        os.remove(os.path.join(self.config.data_dir, "dkim", "example.test", "s1.key"))
        sent = self.forward(sign(message()))
        self.assertNotIn(b"ARC-", sent)
        self.assertTrue(dkim.verify(sent, dnsfunc=KeyLookup(self.ctx.policy.resolver)))


class TrustedTests(SealingCase):
    """Mail from a trusted network is not checked, so there is nothing of ours to seal."""

    trusted = ("192.0.2.0/24",)

    def test_unchecked_mail_is_not_sealed_even_with_a_forged_result_of_ours(self):
        forged = f"Authentication-Results: {HOST}; arc=none; dkim=pass header.d=example.net\r\n".encode()
        sent = self.forward(message(extra=forged))
        self.assertNotIn(b"ARC-", sent)


class SpooledTests(SealingCase):
    """A message over the spool threshold is sealed from its spool file; the sealed copy's file goes after."""

    spool_threshold = 64

    def test_a_spooled_message_is_sealed_and_no_spool_file_stays(self):
        sent = self.forward(sign(message(subject="x" * 200)))
        self.assertEqual(self.verify(sent)[0], dkim.CV_Pass)
        self.assertEqual(os.listdir(self.config.spool_dir), [])

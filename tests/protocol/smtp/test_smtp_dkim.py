"""DKIM signing on the submission path: what an authenticated user sends is signed as stored and sent."""

from __future__ import annotations

import dataclasses
import os
import re

from mailsrv.dkim.keys import Algorithm
from mailsrv.ops import dkim as ops
from support import dkim_verifies
from test_smtp_submission import OWN, QUEUED, FakeQueue, SubmissionTestCase


class SigningTests(SubmissionTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.key, _ = ops.make_key(self.config, "example.test", "s1", Algorithm.RSA, create=True)

    def send(self, message: bytes, kind: str = "submission", recipient: bytes = b"bob@example.test") -> bytes:
        """Send *message* as alice to *recipient*; the message as stored (wire form)."""
        if kind == "submission":
            self.login()
        else:
            self.connect(kind=kind)
            self.ehlo()
        self.say(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<" + recipient + b">\r\nDATA\r\n")
        self.assertRegex(self.say(message + b".\r\n"), QUEUED)
        [(_, stored)] = self.store.calls
        return stored

    def test_a_submitted_message_is_signed_over_the_completed_header(self):
        stored = self.send(OWN)
        # RFC 5321 4.4: Return-Path stays on top; the signature comes right below it.
        top = b"Return-Path: <alice@example.test>\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;"
        self.assertTrue(stored.startswith(top))
        self.assertTrue(dkim_verifies(stored, self.key.record))
        signature = re.sub(rb"\r\n[ \t]+", b" ", stored.split(b"\r\nReceived:", 1)[0])
        signed = re.search(rb"\bh=([^;]*);", signature)[1].replace(b" ", b"").split(b":")
        # Message-ID and Date were added by CompleteHeader, after the client's DATA
        self.assertEqual(signed, [b"from", b"subject", b"date", b"message-id", b"from"])
        changed = re.sub(rb"Message-ID: <[^>]*>", b"Message-ID: <other@example.test>", stored)
        self.assertNotEqual(changed, stored)
        self.assertFalse(dkim_verifies(changed, self.key.record))

    def test_a_spooled_message_is_signed(self):
        limits = dataclasses.replace(self.config.limits, spool_threshold=64)
        self.ctx.config = dataclasses.replace(self.config, limits=limits)
        stored = self.send(OWN.replace(b"Hello.", b"Hello. " * 100))
        self.assertTrue(dkim_verifies(stored, self.key.record))
        self.assertEqual(os.listdir(self.ctx.config.spool_dir), [])

    def test_mail_for_a_remote_recipient_is_queued_signed(self):
        queued: list = []
        self.ctx.queue = FakeQueue(queued)
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@example.net>\r\nDATA\r\n")
        self.assertRegex(self.say(OWN + b".\r\n"), QUEUED)
        [(remote, body)] = queued
        self.assertEqual(remote, ["carol@example.net"])
        self.assertTrue(dkim_verifies(body.replace(b"\n", b"\r\n"), self.key.record))

    def test_port_25_mail_is_not_signed(self):
        self.assertNotIn(b"DKIM-Signature", self.send(OWN, kind="smtp"))

    def test_a_from_domain_without_key_is_not_signed(self):
        self.ctx.directory.may_send_as = lambda login, address: True
        stored = self.send(OWN.replace(b"alice@example.test", b"alice@example.org"))
        self.assertNotIn(b"DKIM-Signature", stored)

    def test_a_signing_failure_is_a_temporary_error_not_unsigned_mail(self):
        def broken(body):
            raise OSError("disk gone")

        self.ctx.signer.sign_body = broken
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        self.assertEqual(self.say(OWN + b".\r\n"), b"451 4.3.0 Error: message not stored, try again later\r\n")
        self.assertEqual(self.store.calls, [])
        self.flushLoggedErrors(OSError)

"""Forwarding on port 25: an alias with remote targets, and bounces to our SRS addresses.

Anyone may write to an alias the admin made forward; the copy for its
remote targets is queued with an SRS sender, the local targets get theirs
as always.  A plain remote recipient stays relaying, refused.
"""

from __future__ import annotations

import re

import srslib
from twisted.internet import defer

from mailsrv.delivery.srs import Rewriter
from mailsrv.message import wire
from mailsrv.policy.loops import MAX_HOPS
from support import TEST_SRS_SECRET, make_context
from test_smtp_inbound import MESSAGE, QUEUED, RELAY_DENIED, STORED_BODY, InboundTestCase
from test_smtp_session import FakeDirectory

SRS0 = re.compile(r"\ASRS0=[^=]{4}=[A-Z0-9]{2}=example\.net=bob@example\.test\Z")


class ForwardingDirectory(FakeDirectory):
    aliases = {**FakeDirectory.aliases, "info@example.test": ["alice@example.test", "someone@remote.test"]}


class RecordingQueue:
    """Keeps what is enqueued: (queue id, sender, remote recipients, wire-form body)."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str, list[str], bytes]] = []

    def enqueue(self, envelope) -> defer.Deferred[str]:
        self.queued.append((envelope.queue_id, envelope.sender, list(envelope.remote),
                            wire.to_wire(envelope.body.read())))
        return defer.succeed(envelope.queue_id)


class ForwardingCase(InboundTestCase):
    """A session on port 25 with the alias info@ forwarding, and a queue that records."""

    def setUp(self) -> None:
        super().setUp()
        self.ctx = make_context(self.config, store=self.store, directory=ForwardingDirectory(), tls_options=object())
        self.queue = RecordingQueue()
        self.ctx.queue = self.queue
        self.srs = Rewriter(TEST_SRS_SECRET, self.config.domains)
        self.connect()
        self.ehlo()

    def send(self, sender: bytes, *recipients: bytes) -> str:
        self.mail(sender)
        for recipient in recipients:
            self.assertEqual(self.rcpt(recipient), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.say(b"DATA\r\n"), b"354 End data with <CR><LF>.<CR><LF>\r\n")
        return QUEUED.match(self.say(MESSAGE)).group(1).decode()


class ForwardTests(ForwardingCase):
    def test_alias_mail_is_stored_locally_and_queued_with_an_srs_sender(self):
        queue_id = self.send(b"<bob@example.net>", b"info@example.test")
        [(addresses, stored)] = self.store.calls
        self.assertEqual(addresses, ["alice@example.test"])
        [(copy_id, sender, remote, queued)] = self.queue.queued
        self.assertRegex(sender, SRS0)
        self.assertEqual(self.srs.reverse(sender), "bob@example.net")
        self.assertEqual(remote, ["someone@remote.test"])
        self.assertNotEqual(copy_id, queue_id)
        self.assertEqual(queued, stored)  # the same octets: From: and body untouched
        self.assertTrue(queued.endswith(STORED_BODY))

    def test_null_sender_is_forwarded_null(self):
        self.send(b"<>", b"info@example.test")
        [(_, sender, _, _)] = self.queue.queued
        self.assertEqual(sender, "")

    def test_plain_remote_recipient_is_still_relay_denied(self):
        self.mail()
        self.assertEqual(self.rcpt(b"someone@remote.test"), RELAY_DENIED % b"someone@remote.test")

    def test_without_a_queue_the_forwarding_alias_is_refused(self):
        self.ctx.queue = None
        self.mail()
        self.assertTrue(self.rcpt(b"info@example.test").startswith(b"550 5.7.0 "))

    def test_bounce_to_our_srs_address_is_queued_to_the_original_sender(self):
        address = self.srs.forward("carol@remote.test").encode()
        self.send(b"<>", address)
        [(_, sender, remote, _)] = self.queue.queued
        self.assertEqual((sender, remote), ("", ["carol@remote.test"]))
        self.assertEqual(self.store.calls, [])

    def test_bounce_to_an_srs_address_of_a_local_sender_is_stored(self):
        address = srslib.SRS(TEST_SRS_SECRET).forward("bob@example.test", "example.test").encode()
        self.send(b"<>", address)
        self.assertEqual([addresses for addresses, _ in self.store.calls], [["bob@example.test"]])
        self.assertEqual(self.queue.queued, [])

    def test_srs_address_with_a_bad_hash_is_550(self):
        tag, hash_, rest = self.srs.forward("carol@remote.test").split("=", 2)
        forged = f"{tag}={'AAAA' if hash_ != 'AAAA' else 'BBBB'}={rest}".encode()
        self.mail(b"<>")
        self.assertEqual(
            self.rcpt(forged),
            b"550 5.1.1 <" + forged + b">: Recipient address rejected: invalid or expired SRS address\r\n",
        )

    def test_expired_srs_address_is_550(self):
        old = Rewriter(TEST_SRS_SECRET, self.config.domains)
        now = old._srs._time_fn()
        old._srs._time_fn = lambda: now - 30 * 24 * 3600
        expired = old.forward("carol@remote.test").encode()
        self.mail(b"<>")
        self.assertTrue(self.rcpt(expired).startswith(b"550 5.1.1 "))


class LoopTests(ForwardingCase):
    def test_a_message_with_too_many_received_fields_is_neither_stored_nor_forwarded(self):
        self.mail()
        self.rcpt(b"info@example.test")
        self.say(b"DATA\r\n")
        looping = b"Received: from a.example by b.example; Mon, 1 Dec 2026 00:00:00 +0000\r\n" * MAX_HOPS + MESSAGE
        self.assertEqual(self.say(looping), b"554 5.4.6 Too many hops: mail loop\r\n")
        self.assertEqual((self.store.calls, self.queue.queued), ([], []))

    def test_just_under_the_limit_is_forwarded(self):
        self.mail()
        self.rcpt(b"info@example.test")
        self.say(b"DATA\r\n")
        hops = b"Received: from a.example by b.example; Mon, 1 Dec 2026 00:00:00 +0000\r\n" * (MAX_HOPS - 1)
        self.assertRegex(self.say(hops + MESSAGE), QUEUED)
        self.assertEqual(len(self.queue.queued), 1)

"""Forwarding on port 25: an alias with remote targets, and bounces to our SRS addresses.

Anyone may write to an alias the admin made forward; the copy for its
remote targets is queued with an SRS sender, the local targets get theirs
as always.  A plain remote recipient stays relaying, refused.
"""

from __future__ import annotations

import re

import srslib
from twisted.internet import defer

from mailsrv.delivery.bounce import Action
from mailsrv.delivery.dsnrequest import RecipientRequest
from mailsrv.delivery.srs import Rewriter
from mailsrv.message import wire
from mailsrv.policy.loops import MAX_HOPS
from support import TEST_SRS_SECRET, make_context
from test_smtp_inbound import MESSAGE, QUEUED, RELAY_DENIED, STORED_BODY, InboundTestCase
from test_smtp_session import FakeDirectory

SRS0 = re.compile(r"\ASRS0=[^=]{4}=[A-Z0-9]{2}=example\.net=bob@example\.test\Z")


class ForwardingDirectory(FakeDirectory):
    aliases = {**FakeDirectory.aliases, "info@example.test": ["alice@example.test", "someone@remote.test"],
               "fwd@example.test": ["someone@remote.test"],
               "list@example.test": ["alice@example.test", "someone@remote.test", "other@remote.test"]}


class RecordingQueue:
    """Keeps what is enqueued: (queue id, sender, remote recipients, wire-form body), the DSN
    requests of each copy's recipients, and the reports sent: (action, [(recipient, orcpt)])."""

    def __init__(self) -> None:
        self.queued: list[tuple[str, str, list[str], bytes]] = []
        self.requests: list[dict[str, RecipientRequest]] = []
        self.reports: list[tuple[Action, list[tuple[str, str]]]] = []

    def enqueue(self, envelope) -> defer.Deferred[str]:
        self.queued.append((envelope.queue_id, envelope.sender, list(envelope.remote),
                            wire.to_wire(envelope.body.read())))
        self.requests.append(dict(envelope.requests))
        return defer.succeed(envelope.queue_id)

    async def report(self, record, recipients, action, body) -> None:
        self.reports.append((action, [(r.address, r.orcpt) for r in recipients]))


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
        """One transaction; each of *recipients* is an address, with its RCPT parameters after a space."""
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


class DSNTests(ForwardingCase):
    """RFC 3461 5.2.7: what an alias passes on to the addresses it forwards to, and what it reports."""

    def rcpt(self, address: bytes) -> bytes:
        """RCPT TO with *address*'s parameters (after a space) outside the brackets."""
        path, _, params = address.partition(b" ")
        return self.say(b"RCPT TO:<" + path + b">" + (b" " + params if params else b"") + b"\r\n")

    def test_a_single_target_alias_passes_notify_and_orcpt_on_and_reports_nothing(self):
        self.send(b"<bob@example.net>", b"fwd@example.test NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@example.net")
        self.assertEqual(self.queue.requests, [
            {"someone@remote.test": RecipientRequest("SUCCESS,FAILURE", "rfc822;x+y@example.net")}])
        self.assertEqual(self.queue.reports, [])  # the next server reports (RFC 3461 5.2.7.2)

    def test_without_orcpt_the_alias_is_the_original_recipient(self):
        self.send(b"<bob@example.net>", b"fwd@example.test NOTIFY=DELAY")
        self.assertEqual(self.queue.requests, [
            {"someone@remote.test": RecipientRequest("DELAY", "rfc822;fwd@example.test")}])

    def test_without_any_parameter_only_the_orcpt_is_added(self):
        self.send(b"<bob@example.net>", b"fwd@example.test")
        self.assertEqual(self.queue.requests, [{"someone@remote.test": RecipientRequest("", "rfc822;fwd@example.test")}])
        self.assertEqual(self.queue.reports, [])

    def test_an_expanding_alias_reports_expanded_and_its_copies_ask_no_success(self):
        self.send(b"<bob@example.net>", b"list@example.test NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;list@example.test")
        self.assertEqual([a for a, _ in self.store.calls], [["alice@example.test"]])
        request = RecipientRequest("FAILURE", "rfc822;list@example.test")
        self.assertEqual(self.queue.requests, [{"someone@remote.test": request, "other@remote.test": request}])
        self.assertEqual(self.queue.reports, [(Action.EXPANDED, [("list@example.test", "rfc822;list@example.test")])])

    def test_success_alone_leaves_never(self):
        self.send(b"<bob@example.net>", b"list@example.test NOTIFY=SUCCESS")
        self.assertEqual({r.notify for r in self.queue.requests[0].values()}, {"NEVER"})
        self.assertEqual([action for action, _ in self.queue.reports], [Action.EXPANDED])

    def test_an_alias_of_several_local_users_reports_expanded_not_delivered(self):
        self.send(b"<bob@example.net>", b"team@example.test NOTIFY=SUCCESS")
        self.assertEqual(self.queue.reports, [(Action.EXPANDED, [("team@example.test", "")])])

    def test_a_user_beside_an_alias_gets_delivered_in_a_report_of_its_own(self):
        self.send(b"<bob@example.net>", b"alice@example.test NOTIFY=SUCCESS", b"list@example.test NOTIFY=SUCCESS")
        self.assertEqual(dict(self.queue.reports), {
            Action.DELIVERED: [("alice@example.test", "")], Action.EXPANDED: [("list@example.test", "")]})

    def test_without_success_nothing_is_reported(self):
        self.send(b"<bob@example.net>", b"list@example.test NOTIFY=FAILURE")
        self.assertEqual(self.queue.reports, [])
        self.assertEqual({r.notify for r in self.queue.requests[0].values()}, {"FAILURE"})

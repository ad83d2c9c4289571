"""Submission (587 STARTTLS, 465 implicit TLS): STARTTLS, AUTH, who may send where.

The in-memory transport pretends to start TLS (``TLSStringTransport``); real
TLS over loopback is exercised in ``test_smtp_tls``.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.logger import formatEvent

from mailsrv import config as configuration
from mailsrv.config import SubmissionConfig
from mailsrv.dns import make_resolver
from mailsrv.delivery.outbound import build_queue
from mailsrv.delivery.queuedir import QueueDir
from mailsrv.smtp.replies import START_DATA
from mailsrv.workers import Workers
from support import ALICE, PASSWORD, audit_events, make_context
from store_harness import ManualExecutor
from test_smtp_session import HOST, STORED_AS, FakeDirectory, SMTPTestCase

PLAIN_OK = b"AUTH PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0" + PASSWORD) + b"\r\n"
PLAIN_BAD = b"AUTH PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0wrong") + b"\r\n"
AUTH_OK = b"235 2.7.0 Authentication successful\r\n"
MESSAGE = b"From: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n"
MESSAGE_FROM = b"From: %s\r\nSubject: hi\r\n\r\nHello.\r\n"
OWN = MESSAGE_FROM % b"alice@example.test"
QUEUED = re.compile(rb"\A250 2\.0\.0 Ok: queued as [0-9A-Z]{12}\r\n\Z")


class FakeQueue:
    """Records (remote recipients, disk-form body) of every message handed to it."""

    def __init__(self, queued: list) -> None:
        self.queued = queued

    def enqueue(self, envelope) -> defer.Deferred[str]:
        self.queued.append((list(envelope.remote), envelope.body.read()))
        return defer.succeed(envelope.queue_id)


class NoRemote:
    """An IRemoteDelivery whose attempts never end: the tests look at what the queue wrote."""

    def deliver(self, queue_id, sender, recipients, body, options):
        return defer.Deferred()

    def close(self):
        return defer.succeed(None)


class SubmissionTestCase(SMTPTestCase):
    kind = "submission"

    def start_tls(self) -> None:
        """EHLO, STARTTLS, EHLO again: the usual opening of a submission client."""
        self.connect()
        self.ehlo()
        self.assertEqual(self.say(b"STARTTLS\r\n"), b"220 2.0.0 Ready to start TLS\r\n")
        self.ehlo()

    def login(self) -> None:
        self.start_tls()
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)


class StartTLSTests(SubmissionTestCase):
    def test_plaintext_ehlo_offers_starttls_but_no_auth(self):
        self.connect()
        ehlo = self.ehlo()
        self.assertTrue(ehlo.endswith(b"250 STARTTLS\r\n"), ehlo)
        self.assertNotIn(b"AUTH", ehlo)

    def test_ehlo_after_tls_offers_auth_and_no_starttls(self):
        self.start_tls()
        ehlo = self.ehlo()
        self.assertTrue(ehlo.endswith(b"250 AUTH PLAIN LOGIN\r\n"), ehlo)
        self.assertNotIn(b"STARTTLS", ehlo)

    def test_starttls_uses_the_configured_options(self):
        self.start_tls()
        self.assertIs(self.transport.tls_options, self.ctx.tls)

    def test_commands_pipelined_behind_starttls_are_discarded(self):
        # RFC 3207 6; Twisted answers the RSET inside TLS (docs/twisted-notes.rst, "STARTTLS command injection").
        self.connect()
        self.ehlo()
        self.assertEqual(self.say(b"STARTTLS\r\nRSET\r\nMAIL FROM:<x@example.net>\r\nNOOP"), b"220 2.0.0 Ready to start TLS\r\n")
        self.assertEqual(self.say(b"\r\n"), b"500 5.5.2 Error: bad syntax\r\n")

    def test_session_is_forgotten_after_starttls(self):
        # RFC 3207 4.2: the client must EHLO again.
        self.connect()
        self.ehlo()
        self.say(b"STARTTLS\r\n")
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test>\r\n"), b"503 5.5.1 Error: send HELO/EHLO first\r\n")

    def test_starttls_twice(self):
        self.start_tls()
        self.assertEqual(self.say(b"STARTTLS\r\n"), b"503 5.5.1 Error: TLS already active\r\n")

    def test_implicit_tls_offers_auth_and_refuses_starttls(self):
        self.connect(kind="submissions", secure=True)
        ehlo = self.ehlo()
        self.assertNotIn(b"STARTTLS", ehlo)
        self.assertIn(b"AUTH PLAIN LOGIN", ehlo)
        self.assertEqual(self.say(b"STARTTLS\r\n"), b"503 5.5.1 Error: TLS already active\r\n")


class AuthTests(SubmissionTestCase):
    def test_auth_before_tls_needs_encryption(self):
        # RFC 4954 6: 538
        self.connect()
        self.ehlo()
        self.assertEqual(self.say(PLAIN_OK), b"538 5.7.11 Encryption required for requested authentication mechanism\r\n")
        self.assertEqual(self.logins(), [])

    def test_loopback_may_authenticate_in_clear_when_configured(self):
        self.ctx.config = self.make_config(allow_plaintext_auth_on_loopback=True)
        self.connect(peer=IPv4Address("TCP", "127.0.0.1", 40000))
        self.assertIn(b"AUTH PLAIN LOGIN", self.ehlo())
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)

    def test_loopback_setting_does_not_open_other_peers(self):
        self.ctx.config = self.make_config(allow_plaintext_auth_on_loopback=True)
        self.connect()
        self.assertNotIn(b"AUTH", self.ehlo())

    def test_plain_with_initial_response(self):
        self.start_tls()
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "ok")])

    def test_plain_without_initial_response(self):
        self.start_tls()
        self.assertEqual(self.say(b"AUTH PLAIN\r\n"), b"334 \r\n")
        self.assertEqual(self.say(PLAIN_OK.split(b" ")[2]), AUTH_OK)

    def test_login_mechanism(self):
        self.start_tls()
        self.assertEqual(self.say(b"AUTH LOGIN\r\n"), b"334 " + base64.b64encode(b"Username:") + b"\r\n")
        self.assertEqual(self.say(base64.b64encode(ALICE.encode()) + b"\r\n"), b"334 " + base64.b64encode(b"Password:") + b"\r\n")
        self.assertEqual(self.say(base64.b64encode(PASSWORD) + b"\r\n"), AUTH_OK)

    def test_bad_password(self):
        self.start_tls()
        self.assertEqual(self.say(PLAIN_BAD), b"")  # held for [auth] throttle_delay
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "failed")])
        self.clock.advance(1)
        self.assertEqual(self.transport.value(), b"535 5.7.8 Error: authentication failed\r\n")

    def test_malformed_plain_is_501_not_a_dropped_connection(self):
        self.start_tls()
        self.assertEqual(
            self.say(b"AUTH PLAIN " + base64.b64encode(b"no-nuls-here") + b"\r\n"),
            b"501 5.5.2 Error: malformed authentication response\r\n",
        )
        self.assertEqual(self.say(b"AUTH PLAIN !!notbase64\r\n"), b"501 5.5.2 Error: malformed authentication response\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)

    def test_client_may_abort(self):
        self.start_tls()
        self.say(b"AUTH LOGIN\r\n")
        self.assertEqual(self.say(b"*\r\n"), b"501 5.7.0 Authentication aborted\r\n")
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")

    def test_plain_authzid_must_be_the_authcid(self):
        # RFC 4616 2: an authzid the user may not act as MUST fail the login,
        # even with the right password.
        self.start_tls()
        other = base64.b64encode(b"bob@example.test\0" + ALICE.encode() + b"\0" + PASSWORD)
        self.assertEqual(self.say(b"AUTH PLAIN " + other + b"\r\n"), b"")
        self.clock.advance(1)
        self.assertEqual(self.transport.value(), b"535 5.7.8 Error: authentication failed\r\n")
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "failed")])
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test>\r\n"), b"530 5.7.0 Authentication required\r\n")

    def test_plain_authzid_equal_to_authcid_in_any_case(self):
        self.start_tls()
        same = base64.b64encode(ALICE.upper().encode() + b"\0" + ALICE.encode() + b"\0" + PASSWORD)
        self.assertEqual(self.say(b"AUTH PLAIN " + same + b"\r\n"), AUTH_OK)

    def test_unknown_mechanism(self):
        self.start_tls()
        self.assertEqual(self.say(b"AUTH CRAM-MD5\r\n"), b"504 5.5.4 Unrecognized authentication type\r\n")

    def test_second_auth(self):
        self.login()
        self.assertEqual(self.say(PLAIN_OK), b"503 5.5.1 Error: already authenticated\r\n")

    def test_commands_after_auth_wait_for_the_password_check(self):
        self.checker.clock = task.Clock()
        self.start_tls()
        self.assertEqual(self.say(PLAIN_OK + b"MAIL FROM:<alice@example.test>\r\n"), b"")
        self.transport.clear()
        self.checker.clock.advance(1)
        self.assertEqual(self.transport.value(), AUTH_OK + b"250 2.1.0 Ok\r\n")

    def test_starttls_forgets_a_loopback_login(self):
        self.ctx.config = self.make_config(allow_plaintext_auth_on_loopback=True)
        self.connect(peer=IPv4Address("TCP", "127.0.0.1", 40000))
        self.ehlo()
        self.say(PLAIN_OK)
        self.say(b"STARTTLS\r\n")
        self.ehlo()
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test>\r\n"), b"530 5.7.0 Authentication required\r\n")


class SubmissionPolicyTests(SubmissionTestCase):
    def test_mail_requires_auth(self):
        # RFC 4954 6 / RFC 6409 4.3
        self.start_tls()
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test>\r\n"), b"530 5.7.0 Authentication required\r\n")

    def test_authenticated_user_sends_to_local_users(self):
        self.login()
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test> AUTH=<> SIZE=100\r\n"), b"250 2.1.0 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<bob@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        self.assertTrue(self.say(MESSAGE).startswith(b"250 2.0.0 Ok: queued as "))
        [(addresses, data)] = self.store.calls
        self.assertEqual(addresses, ["bob@example.test"])
        self.assertIn(b"with ESMTPSA id ", data)
        self.assertIn(b"\r\n\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n", data)

    def test_results_claiming_our_name_are_removed_from_what_a_user_sends(self):
        """A user's client can write any header; a colleague's client would believe one naming our host."""
        # With a resolver the server has its sender authentication check, which submission skips but for this.
        resolver = make_resolver(configuration.DNSConfig(nameservers=("127.0.0.1:9",), timeout=1))
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), resolver=resolver)
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        forged = f"Authentication-Results: {HOST}; dmarc=pass header.from=paypal.example\r\n".encode()
        self.assertRegex(self.say(forged + MESSAGE), QUEUED)
        [(_, data)] = self.store.calls
        self.assertNotIn(b"Authentication-Results:", data)
        self.assertIn(b"\r\nFrom: alice@example.test\r\nSubject: hi\r\n", data)

    def test_remote_recipient_is_refused_clearly(self):
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\n")
        self.assertEqual(
            self.say(b"RCPT TO:<friend@elsewhere.example>\r\n"),
            b"550 5.7.0 Remote delivery is not available on this server yet\r\n",
        )

    def test_remote_recipient_goes_to_the_queue_when_there_is_one(self):
        queued = []
        self.ctx.queue = FakeQueue(queued)
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\n")
        self.assertEqual(self.say(b"RCPT TO:<friend@elsewhere.example>\r\n"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<bob@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        self.assertTrue(self.say(MESSAGE).startswith(b"250 2.0.0 Ok: queued as "))
        [(remote, body)] = queued
        self.assertEqual(remote, ["friend@elsewhere.example"])
        self.assertIn(b"Subject: hi\n", body)
        self.assertEqual(self.store.calls[0][0], ["bob@example.test"])  # the local copy as before

    def test_250_waits_until_the_local_copy_and_the_queued_one_are_durable(self):
        disk = ManualExecutor()
        queue = build_queue(self.config, self.clock, Workers(disk=disk, hashing=disk, search=disk, dns=disk, signing=disk), NoRemote(),
                            router=self.ctx.router, local=self.ctx.delivery, audit=self.ctx.audit)
        queue.startService()
        self.addCleanup(lambda: (queue.stopService(), self.clock.advance(self.config.shutdown_grace)))
        while disk.jobs:  # the start-up scan
            disk.run_next()
        self.ctx.queue = queue
        self.store.manual = True
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\n")
        self.say(b"RCPT TO:<friend@elsewhere.example>\r\n")
        self.say(b"RCPT TO:<bob@example.test>\r\n")
        self.say(b"DATA\r\n")
        self.assertEqual(self.say(MESSAGE), b"")  # the store has not fsynced yet
        self.store.pending.pop().callback(STORED_AS)
        self.assertEqual(self.transport.value(), b"")  # the queue has not written yet
        self.assertEqual(disk.run_next(), "_add")
        reply = self.transport.value()
        self.assertRegex(reply, QUEUED)
        queue_id = reply.split()[-1].decode()
        directory = QueueDir(self.config.queue_dir)
        self.assertEqual(directory.ids(), [queue_id])
        [recipient] = directory.read(queue_id).recipients
        self.assertEqual((recipient.address, recipient.state.value), ("friend@elsewhere.example", "pending"))
        with open(directory.message_path(queue_id), "rb") as f:
            self.assertIn(b"Subject: hi\n", f.read())
        self.assertEqual(self.store.calls[0][0], ["bob@example.test"])

    def test_no_queue_means_no_relay_without_login_even_with_a_queue(self):
        self.ctx.queue = FakeQueue([])
        self.connect(kind="smtp")
        self.ehlo()
        self.say(b"MAIL FROM:<spammer@elsewhere.example>\r\n")
        self.assertEqual(
            self.say(b"RCPT TO:<victim@elsewhere.example>\r\n"),
            b"554 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n",
        )

    def test_routing_tricks_are_still_relay_attempts(self):
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\n")
        self.assertEqual(
            self.say(b"RCPT TO:<friend%elsewhere.example@example.test>\r\n"),
            b"554 5.7.1 <friend%elsewhere.example@example.test>: Relay access denied\r\n",
        )
        self.assertEqual(
            self.say(b"RCPT TO:<@example.test:friend@elsewhere.example>\r\n"),
            b"554 5.7.1 <friend@elsewhere.example>: Relay access denied\r\n",
        )

    def test_help_lists_starttls_before_tls_and_auth_after(self):
        self.connect()
        self.ehlo()
        self.assertEqual(
            self.say(b"HELP\r\n"),
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS\r\n"
            b"214 2.0.0 See RFC 5321\r\n",
        )
        self.say(b"STARTTLS\r\n")
        self.assertEqual(
            self.say(b"HELP\r\n"),
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT AUTH\r\n"
            b"214 2.0.0 See RFC 5321\r\n",
        )


class SenderTests(SubmissionTestCase):
    """RFC 6409 6.1, 6.3: a logged-in user sends as their own addresses only."""

    def setUp(self) -> None:
        super().setUp()
        self.login()

    def send(self, message: bytes, sender: bytes = b"<alice@example.test>") -> bytes:
        """One transaction to bob; the reply at the end of data."""
        self.assertEqual(self.say(b"MAIL FROM:" + sender + b"\r\n"), b"250 2.1.0 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<bob@example.test>\r\nDATA\r\n"), b"250 2.1.5 Ok\r\n" + START_DATA.wire())
        return self.say(message + b".\r\n")

    def rejections(self) -> list[tuple[str, str]]:
        return [(e["result"], e["subject"]) for e in audit_events(list(self.log), "rejection")]

    def test_envelope_sender_of_another_user_is_553(self):
        self.assertEqual(
            self.say(b"MAIL FROM:<bob@example.test>\r\n"),
            b"553 5.7.1 <bob@example.test>: Sender address rejected: not owned by user alice@example.test\r\n",
        )
        self.assertEqual(self.say(b"MAIL FROM:<ceo@elsewhere.example>\r\n")[:10], b"553 5.7.1 ")
        self.assertEqual(self.rejections(), [("mail", "bob@example.test"), ("mail", "ceo@elsewhere.example")])
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test>\r\n"), b"250 2.1.0 Ok\r\n")

    def test_an_alias_delivering_to_the_user_is_theirs(self):
        self.assertEqual(self.say(b"MAIL FROM:<Team@Example.TEST>\r\n"), b"250 2.1.0 Ok\r\n")

    def test_null_sender_is_accepted_and_its_from_checked(self):
        # RFC 6409 3.2: MAIL FROM:<> MUST be accepted (read receipts use it).
        self.assertRegex(self.send(MESSAGE_FROM % b"alice@example.test", b"<>"), QUEUED)
        self.assertEqual(self.send(MESSAGE_FROM % b"bob@example.test", b"<>")[:10], b"550 5.7.1 ")

    def test_from_of_another_user_is_550_at_the_end_of_data(self):
        self.assertEqual(
            self.send(MESSAGE_FROM % b"The Boss <bob@example.test>"),
            b"550 5.7.1 <bob@example.test>: From address rejected: not owned by user alice@example.test\r\n",
        )
        self.assertEqual(self.store.calls, [])
        self.assertEqual(self.rejections(), [("data", "alice@example.test")])
        self.assertEqual(self.transactions()[-1]["result"], 550)

    def test_every_from_address_counts(self):
        for message in (
            MESSAGE_FROM % b"alice@example.test, bob@example.test",
            MESSAGE_FROM % b"alice@example.test\r\n\t, bob@example.test",  # folded
            b"From: alice@example.test\r\n" + MESSAGE_FROM % b"bob@example.test",  # a second field
            b"FROM : alice@example.test\r\n" + MESSAGE_FROM % b"bob@example.test",
            b"Subject: x\r\nfrom:bob@example.test\r\n\r\nHello.\r\n",
        ):
            self.assertEqual(self.send(message)[:10], b"550 5.7.1 ", message)
        self.assertEqual(self.store.calls, [])

    def test_a_display_name_is_only_a_name(self):
        for author in (b'"bob@example.test" <alice@example.test>', b"=?utf-8?q?B=C3=B6b?= <alice@example.test>",
                       b"Al\xc3\xafce <alice@example.test>", b"John Q. Public <alice@example.test>",
                       b"alice@example.test (bob@example.test)", b"team@example.test"):
            self.assertRegex(self.send(MESSAGE_FROM % author), QUEUED)
        self.assertEqual(len(self.store.calls), 6)

    def test_no_from_or_one_that_does_not_parse_is_554(self):
        bad = b"554 5.6.0 Error: the message needs a From: header with addresses that parse\r\n"
        for message in (
            b"Subject: no author\r\n\r\nHello.\r\n",
            b"Subject: no header at all\r\nHello.\r\n",
            MESSAGE_FROM % b"",
            MESSAGE_FROM % b"undisclosed:;",
            MESSAGE_FROM % b"alice@example.test <bob@example.test>",  # clients disagree on which it is
            MESSAGE_FROM % b"<alice@example.test>bob@example.test",
            MESSAGE_FROM % b"alice@example.test\r",  # a bare CR: another line for some readers
            MESSAGE_FROM % b"alice@example.test\rFrom: bob@example.test",
            MESSAGE_FROM % b"al\xffce <alice@example.test>",
            MESSAGE_FROM % b"alice@",
            MESSAGE_FROM % b'"',
        ):
            self.assertEqual(self.send(message), bad, message)
        self.assertEqual(self.store.calls, [])

    def test_port_25_checks_neither(self):
        self.connect(kind="smtp")
        self.ehlo()
        self.assertRegex(self.send(b"Subject: no author\r\n\r\nHello.\r\n", b"<bob@example.net>"), QUEUED)


class CompleteHeaderTests(SubmissionTestCase):
    """RFC 6409 8.2, 8.3: Date and Message-ID are added when missing, on submission only."""

    def deliver(self, message: bytes, kind: str = "submission") -> bytes:
        """Send *message* as alice and return it as stored, after our Return-Path and Received."""
        if kind == "submission":
            self.login()
        else:
            self.connect(kind=kind)
            self.ehlo()
        self.say(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        self.assertRegex(self.say(message + b".\r\n"), QUEUED)
        [(_, stored)] = self.store.calls
        return stored.split(b" +0000\r\n", 1)[1]  # the Received header ends with its date

    def test_both_are_added_below_the_trace_headers(self):
        stored = self.deliver(OWN)
        self.assertRegex(
            stored.decode(),
            r"\AMessage-ID: <[0-9.]+\.[0-9A-Z]{12}@mx\.example\.test>\r\n"
            r"Date: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n",
        )
        self.assertTrue(stored.endswith(OWN))  # the client's own part as it was sent

    def test_present_fields_are_left_alone(self):
        message = b"message-id: <x@client>\r\nDATE: Sun, 22 Nov 2026 10:00:00 +0000\r\n" + OWN
        self.assertEqual(self.deliver(message), message)

    def test_only_the_missing_one_is_added(self):
        stored = self.deliver(b"Message-ID:\r\n <x@client>\r\n" + OWN)
        self.assertTrue(stored.startswith(b"Date: "))
        self.assertEqual(stored.count(b"Message-ID:"), 1)

    def test_a_spooled_body_is_completed_too(self):
        limits = dataclasses.replace(self.config.limits, spool_threshold=64)
        self.ctx.config = dataclasses.replace(self.config, limits=limits)
        stored = self.deliver(OWN.replace(b"Hello.", b"Hello. " * 100))
        self.assertTrue(stored.startswith(b"Message-ID: <"))
        self.assertEqual(os.listdir(self.ctx.config.spool_dir), [])

    def test_port_25_adds_nothing(self):
        self.assertEqual(self.deliver(OWN, kind="smtp"), OWN)


class TraceTests(SubmissionTestCase):
    """The login shows in the Received header (RFC 3848 ESMTPSA and a comment) and in the log."""

    def received(self) -> bytes:
        self.login()
        self.say(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        [(_, stored)] = self.store.calls
        return stored.split(b"\r\n", 1)[1].split(b";")[0]

    def test_received_names_the_login(self):
        self.assertRegex(
            self.received().decode(),
            r"\AReceived: from client\.example\.net \(\[192\.0\.2\.7\]\)\r\n"
            r"\t\(using TLSv1\.3 with cipher TLS_AES_256_GCM_SHA384\)\r\n"
            r"\t\(Authenticated sender: alice@example\.test\)\r\n"
            r"\tby mx\.example\.test \(mailsrv\) with ESMTPSA id [0-9A-Z]{12}\r\n"
            r"\tfor <bob@example\.test>\Z",
        )
        [event] = self.transactions()
        self.assertEqual((event["user"], event["sender"], event["result"]), (ALICE, ALICE, 250))
        self.assertIn(" user=alice@example.test ", formatEvent(event))

    def test_the_comment_can_be_turned_off(self):
        self.ctx.config = dataclasses.replace(self.config, submission=SubmissionConfig(received_login=False))
        received = self.received()
        self.assertNotIn(b"Authenticated sender", received)
        self.assertIn(b" with ESMTPSA id ", received)

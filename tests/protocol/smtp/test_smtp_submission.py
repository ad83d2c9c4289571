"""Submission (587 STARTTLS, 465 implicit TLS): STARTTLS, AUTH, who may send where.

The in-memory transport pretends to start TLS (``TLSStringTransport``); real
TLS over loopback is exercised in ``test_smtp_tls``.
"""

from __future__ import annotations

import base64

from twisted.internet import defer

from twisted.internet import task
from twisted.internet.address import IPv4Address

from support import ALICE, PASSWORD
from test_smtp_session import SMTPTestCase

PLAIN_OK = b"AUTH PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0" + PASSWORD) + b"\r\n"
PLAIN_BAD = b"AUTH PLAIN " + base64.b64encode(b"\0" + ALICE.encode() + b"\0wrong") + b"\r\n"
AUTH_OK = b"235 2.7.0 Authentication successful\r\n"
MESSAGE = b"From: alice@example.test\r\nSubject: hi\r\n\r\nHello.\r\n.\r\n"


class FakeQueue:
    """Records (remote recipients, disk-form body) of every message handed to it."""

    def __init__(self, queued: list) -> None:
        self.queued = queued

    def enqueue(self, envelope) -> defer.Deferred[str]:
        self.queued.append((list(envelope.remote), envelope.body.read()))
        return defer.succeed(envelope.queue_id)


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
        self.assertEqual(self.say(PLAIN_BAD), b"535 5.7.8 Error: authentication failed\r\n")
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "failed")])

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
        self.assertEqual(self.say(b"AUTH PLAIN " + other + b"\r\n"), b"535 5.7.8 Error: authentication failed\r\n")
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
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS\r\n"
            b"214 2.0.0 See RFC 5321\r\n",
        )
        self.say(b"STARTTLS\r\n")
        self.assertEqual(
            self.say(b"HELP\r\n"),
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT AUTH\r\n"
            b"214 2.0.0 See RFC 5321\r\n",
        )

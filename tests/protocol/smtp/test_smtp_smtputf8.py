"""SMTPUTF8 (RFC 6531) on our intake, byte by byte: UTF-8 paths with the parameter, 553 5.6.7 without it,
U-label and A-label domains as one, UTF-8 header fields stored as sent, the trace header, what the queue gets."""

from __future__ import annotations

from twisted.internet import defer

from mailsrv.delivery.bounce import Action
from mailsrv.smtp import replies
from support import make_context
from test_smtp_inbound import QUEUED
from test_smtp_senderauth import SenderAuthTestCase
from test_smtp_session import FakeDirectory, SMTPTestCase
from test_smtp_submission import PLAIN_OK, AUTH_OK, SubmissionTestCase

SENDER_OK, RCPT_OK = b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"
JOSE = "jösé@xn--bcher-kva.example"
#: A UTF-8 header field (RFC 6532 3.2) and body, as the client sends them.
MESSAGE = "From: Jösé <jösé@bücher.example>\r\nSubject: Grüße\r\n\r\nÇa va?\r\n.\r\n".encode()


class UTF8Directory(FakeDirectory):
    """The fake directory, with a user whose local part and domain are not ASCII."""

    domains = (*FakeDirectory.domains, "xn--bcher-kva.example")
    users = {*FakeDirectory.users, JOSE}


class UTF8Cases:
    """Setup shared by the port 25 and the submission tests."""

    def setUp(self) -> None:
        super().setUp()
        self.ctx = make_context(self.config, store=self.store, directory=UTF8Directory(), checker=self.checker,
                                tls_options=object())

    def queued(self) -> list:
        """Hand the remote recipients' copies to a queue that records their envelopes and bodies."""
        envelopes: list = []

        class Queue:
            def enqueue(self, envelope) -> defer.Deferred[str]:
                envelopes.append((envelope, envelope.body.read()))
                return defer.succeed(envelope.queue_id)

        self.ctx.queue = Queue()
        return envelopes


class InboundSMTPUTF8Tests(UTF8Cases, SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()
        self.ehlo()

    def test_a_utf8_envelope_is_delivered_and_stored_as_sent(self):
        self.assertEqual(self.say("MAIL FROM:<sénder@exämple.net> SMTPUTF8\r\n".encode()), SENDER_OK)
        # RFC 6531 3.3: a U-label; it and its A-label are one local domain, and case folds.
        self.assertEqual(self.say("RCPT TO:<JÖSÉ@Bücher.example>\r\n".encode()), RCPT_OK)
        self.assertEqual(self.say(b"DATA\r\n"), replies.START_DATA.wire())
        queue_id = QUEUED.match(self.say(MESSAGE)).group(1)
        [(addresses, data)] = self.store.calls
        self.assertEqual(addresses, [JOSE])
        lines = data.split(b"\r\n")
        self.assertEqual(lines[0], "Return-Path: <sénder@exämple.net>".encode())
        self.assertEqual(lines[2], b"\tby mx.example.test (mailsrv) with UTF8SMTP id " + queue_id)  # RFC 6531 4.3
        self.assertTrue(lines[3].startswith("\tfor <JÖSÉ@Bücher.example>; ".encode()), lines[3])
        self.assertEqual(data.split(b"\r\n", 4)[4], MESSAGE[:-3])  # the header fields byte for byte

    def test_nfd_and_nfc_spellings_and_the_a_label_reach_one_user(self):
        self.say(b"MAIL FROM:<> SMTPUTF8\r\n")
        for spelling in ("jo\u0308se\u0301@bücher.example", "jösé@xn--bcher-kva.example", "Jösé@BÜCHER.example"):
            self.assertEqual(self.say(f"RCPT TO:<{spelling}>\r\n".encode()), RCPT_OK, spelling)
        self.assertEqual(self.server.transaction.envelope.local_users, [JOSE])

    def test_an_unknown_utf8_user_is_unknown(self):
        self.say(b"MAIL FROM:<> SMTPUTF8\r\n")
        self.assertEqual(self.say("RCPT TO:<jösé@example.test>\r\n".encode()),
                         b"550 5.1.1 <j?s?@example.test>: Recipient address rejected: User unknown\r\n")

    def test_a_non_ascii_path_without_smtputf8_gets_553_5_6_7(self):
        """RFC 6531 3.5: the session goes on, and an ASCII transaction is served."""
        self.assertEqual(self.say("MAIL FROM:<sénder@example.net>\r\n".encode()), replies.NON_ASCII_ADDRESS.wire())
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net>\r\n"), SENDER_OK)
        self.assertEqual(self.say("RCPT TO:<jösé@bücher.example>\r\n".encode()),
                         b"553 5.6.7 Non-ASCII address without SMTPUTF8 in MAIL FROM\r\n")
        self.assertEqual(self.say("RCPT TO:<alice@bücher.example>\r\n".encode()), replies.NON_ASCII_ADDRESS.wire())
        self.assertEqual(self.say(b"RCPT TO:<jose@xn--bcher-kva.example>\r\n"),
                         b"550 5.1.1 <jose@xn--bcher-kva.example>: Recipient address rejected: User unknown\r\n")
        self.assertFalse(self.server.transaction.envelope.smtputf8)

    def test_a_path_that_is_not_utf8_gets_501_and_no_traceback(self):
        self.assertEqual(self.say(b"MAIL FROM:<j\xf6s\xe9@example.net> SMTPUTF8\r\n"),
                         b"501 5.1.7 Bad sender address syntax: the address is not UTF-8\r\n")
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> SMTPUTF8\r\n"), SENDER_OK)
        self.assertEqual(self.say(b"RCPT TO:<j\xc3@example.test>\r\n"),
                         b"501 5.1.3 Bad recipient address syntax: the address is not UTF-8\r\n")
        refused = self.say("RCPT TO:<a@a\u200dü.example>\r\n".encode())  # IDNA refuses the label
        self.assertRegex(refused, rb"\A501 5\.1\.3 Bad recipient address syntax: .* is not a domain name: .*\r\n\Z")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), RCPT_OK)
        self.assertEqual(self.server.transaction.recipients[0].plain, "alice@example.test")

    def test_the_parameter_takes_no_value_and_belongs_to_mail(self):
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> SMTPUTF8=YES\r\n"), replies.BAD_SMTPUTF8.wire())
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> SMTPUTF8 BODY=8BITMIME\r\n"), SENDER_OK)
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test> SMTPUTF8\r\n"),
                         replies.UNSUPPORTED_PARAMETER(name="SMTPUTF8").wire())

    def test_a_utf8_orcpt_is_taken_with_smtputf8_and_only_in_xtext_form_without(self):
        """RFC 6533 3: utf-8-addr-unitext needs SMTPUTF8; utf-8-addr-xtext is ASCII and always fine."""
        self.say(b"MAIL FROM:<bob@example.net> SMTPUTF8\r\n")
        self.assertEqual(self.say("RCPT TO:<jösé@bücher.example> NOTIFY=SUCCESS ORCPT=utf-8;Jösé@bücher.example"
                                  "\r\n".encode()), RCPT_OK)
        [notice] = self.server.transaction.notices[Action.DELIVERED]
        self.assertEqual(notice.orcpt, "utf-8;Jösé@bücher.example")
        self.say(b"RSET\r\nMAIL FROM:<bob@example.net>\r\n")
        self.assertEqual(self.say("RCPT TO:<alice@example.test> ORCPT=utf-8;j\u00f6@x.test\r\n".encode()),
                         replies.BAD_PARAMETERS.wire())
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test> ORCPT=utf-8;j\\x{F6}@x.test\r\n"), RCPT_OK)

    def test_an_ascii_transaction_with_the_parameter_keeps_with_utf8smtp(self):
        self.say(b"MAIL FROM:<bob@example.net> SMTPUTF8\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        self.say(b"Subject: plain\r\n\r\nx\r\n.\r\n")
        self.assertIn(b" with UTF8SMTP id ", self.store.calls[0][1])

    def test_without_the_parameter_received_says_esmtp(self):
        self.say(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        self.say(b"Subject: plain\r\n\r\nx\r\n.\r\n")
        self.assertIn(b" with ESMTP id ", self.store.calls[0][1])

    def test_a_forwarded_copy_keeps_the_flag(self):
        envelopes = self.queued()
        self.ctx.directory.aliases = {**FakeDirectory.aliases, "grüße@example.test": ["jose@remote.test"]}
        self.say(b"MAIL FROM:<bob@example.net> SMTPUTF8\r\n")
        self.assertEqual(self.say("RCPT TO:<Grüße@example.test>\r\n".encode()), RCPT_OK)
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        [(copy, _)] = envelopes
        self.assertEqual((copy.remote, copy.smtputf8), (["jose@remote.test"], True))


class SubmissionSMTPUTF8Tests(UTF8Cases, SubmissionTestCase):
    def test_under_tls_with_login_received_says_utf8smtpsa(self):
        self.login()
        envelopes = self.queued()
        self.assertEqual(self.say(b"MAIL FROM:<alice@example.test> SMTPUTF8\r\n"), SENDER_OK)
        self.assertEqual(self.say("RCPT TO:<René@remote.test>\r\n".encode()), RCPT_OK)
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(b"From: alice@example.test\r\nSubject: hi\r\n\r\nx\r\n.\r\n"), QUEUED)
        [(envelope, body)] = envelopes
        self.assertEqual((envelope.remote, envelope.smtputf8), (["René@remote.test"], True))
        self.assertIn(b" with UTF8SMTPSA id ", body)


class SenderAuthSMTPUTF8Tests(SenderAuthTestCase):
    """Port 25 checks a UTF-8 sender's SPF at its domain's A-label (RFC 7208 4.3: DNS names are A-labels)."""

    def test_a_utf8_sender_passes_spf_at_the_a_label(self):
        self.zone.add("xn--bcher-kva.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        self.connect()
        self.ehlo()
        self.assertEqual(self.say("MAIL FROM:<jösé@bücher.example> SMTPUTF8\r\n".encode()), SENDER_OK)
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), RCPT_OK)
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        stored = self.store.calls[-1][1]
        self.assertIn(b"\r\n\tspf=pass smtp.mailfrom=xn--bcher-kva.example;\r\n", stored)
        self.assertFalse([e for e in self.log if e.get("log_failure")])

"""DSN (RFC 3461) and REQUIRETLS (RFC 8689) in an SMTP session: what EHLO offers, what MAIL and RCPT take,
what the queue is handed, and the "delivered" report after local delivery."""

from __future__ import annotations

import email
from email import policy

from mailsrv.delivery.dsnrequest import RecipientRequest
from mailsrv.delivery.outbound import build_queue
from mailsrv.smtp import replies
from mailsrv.workers import Workers
from test_smtp_session import SMTPTestCase
from test_smtp_submission import MESSAGE, FakeQueue, NoRemote, SubmissionTestCase

OK_SENDER, OK_RCPT = b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"


class InboundDSNTests(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()

    def test_ehlo_offers_dsn_and_requiretls_only_over_tls(self):
        ehlo = self.ehlo()
        self.assertIn(b"250-DSN\r\n", ehlo)
        self.assertNotIn(b"REQUIRETLS", ehlo)
        self.say(b"STARTTLS\r\n")
        self.assertIn(b"250 REQUIRETLS\r\n", self.ehlo())

    def test_requiretls_before_starttls_is_refused_and_after_it_taken(self):
        self.ehlo()
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> REQUIRETLS\r\n"), replies.REQUIRETLS_NEEDS_TLS.wire())
        self.say(b"STARTTLS\r\n")
        self.ehlo()
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> REQUIRETLS RET=HDRS ENVID=x+2By\r\n"), OK_SENDER)
        envelope = self.server.transaction.envelope
        self.assertEqual((envelope.require_tls, envelope.ret, envelope.envid), (True, "HDRS", "x+y"))

    def test_bad_dsn_parameters_get_501_and_the_session_goes_on(self):
        self.ehlo()
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> RET=ALL\r\n"),
                         b"501 5.5.4 Bad RET parameter: must be FULL or HDRS\r\n")
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net>\r\n"), OK_SENDER)
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test> NOTIFY=NEVER,DELAY\r\n"),
                         b"501 5.5.4 Bad NOTIFY parameter: must be NEVER or a list of SUCCESS, FAILURE and DELAY\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test> NOTIFY=NEVER ORCPT=rfc822;alice@example.test\r\n"),
                         OK_RCPT)
        self.assertEqual(self.server.transaction.recipients[0].plain, "alice@example.test")

    def test_a_local_recipient_that_asks_gets_a_delivered_report(self):
        queue = build_queue(self.config, self.clock, Workers.inline(), NoRemote(), router=self.ctx.router,
                            local=self.ctx.delivery, audit=self.ctx.audit)
        queue.startService()
        self.addCleanup(lambda: (queue.stopService(), self.clock.advance(self.config.shutdown_grace)))
        self.ctx.queue = queue
        self.ehlo()
        self.say(b"MAIL FROM:<carol@example.test> ENVID=QQ1\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test> NOTIFY=SUCCESS ORCPT=rfc822;Alice@example.test\r\n"),
                         OK_RCPT)
        self.assertEqual(self.say(b"RCPT TO:<bob@example.test>\r\n"), OK_RCPT)  # no NOTIFY: no success report
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), rb"\A250 2\.0\.0 Ok: queued as ")
        [stored, report] = self.store.calls
        self.assertEqual(stored[0], ["alice@example.test", "bob@example.test"])
        self.assertEqual(report[0], ["carol@example.test"])
        dsn = email.message_from_bytes(report[1], policy=policy.default)
        self.assertEqual((dsn.get_content_type(), dsn["Return-Path"]), ("multipart/report", "<>"))
        [status] = [part for part in dsn.walk() if part.get_content_type() == "message/delivery-status"]
        per_message, alice = status.get_payload()
        self.assertEqual(per_message["Original-Envelope-Id"], "QQ1")
        self.assertEqual((alice["Action"], alice["Status"]), ("delivered", "2.0.0"))
        self.assertEqual((alice["Final-Recipient"], alice["Original-Recipient"]),
                         ("rfc822; alice@example.test", "rfc822;Alice@example.test"))
        self.assertEqual(dsn.get_payload()[2].get_content_type(), "text/rfc822-headers")


class SubmissionDSNTests(SubmissionTestCase):
    def test_the_queue_gets_the_requests_of_remote_recipients(self):
        queued: list = []
        seen: list = []
        queue = FakeQueue(queued)
        queue.enqueue = lambda envelope, enqueue=queue.enqueue: (seen.append(envelope), enqueue(envelope))[1]
        self.ctx.queue = queue
        self.login()
        self.say(b"MAIL FROM:<alice@example.test> RET=FULL REQUIRETLS\r\n")
        self.assertEqual(self.say(b"RCPT TO:<friend@elsewhere.example> NOTIFY=SUCCESS,FAILURE\r\n"), OK_RCPT)
        self.assertEqual(self.say(b"RCPT TO:<other@elsewhere.example>\r\n"), OK_RCPT)
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), rb"\A250 ")
        [envelope] = seen
        self.assertEqual((envelope.ret, envelope.require_tls), ("FULL", True))
        self.assertEqual(envelope.requests, {"friend@elsewhere.example": RecipientRequest(notify="SUCCESS,FAILURE")})

"""The small pure parts of mailsrv.smtp: MAIL/RCPT parameters and trace headers."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial import unittest

from mailsrv.message.body import BodyType
from mailsrv.smtp import replies
from mailsrv.smtp.params import MailParams, parse_mail_params, parse_rcpt_params
from mailsrv.smtp.received import address_literal, trace_headers, with_protocol
from mailsrv.smtp.replies import Rejection


class ParamTests(unittest.TestCase):
    def check(self, raw: bytes, auth: bool = False) -> MailParams:
        return parse_mail_params(raw, max_size=1000, auth_offered=auth)

    def refused(self, raw: bytes, auth: bool = False) -> tuple[int, str]:
        error = self.assertRaises(Rejection, self.check, raw, auth)
        return error.reply.code, f"{error.reply.enhanced} {error.reply.text}"

    def test_none(self):
        self.assertEqual(self.check(b""), MailParams())

    def test_size_and_body(self):
        self.assertEqual(self.check(b"size=1000 Body=8bitmime"), MailParams(size=1000, body=BodyType.EIGHT_BIT_MIME))

    def test_errors(self):
        self.assertEqual(self.refused(b"SIZE=1001"), (552, "5.3.4 Message size exceeds fixed maximum message size"))
        self.assertEqual(self.refused(b"SIZE=-1"), (501, "5.5.4 Bad SIZE parameter"))
        self.assertEqual(self.refused(b"SIZE"), (501, "5.5.4 Bad SIZE parameter"))
        self.assertEqual(self.refused(b"SIZE=1 SIZE=2"), (501, "5.5.4 Duplicate parameter SIZE"))
        self.assertEqual(self.refused(b"BODY=BINARYMIME"), (501, "5.5.4 Bad BODY parameter"))
        self.assertEqual(self.refused(b"SMTPUTF8"), (555, "5.5.4 Unsupported parameter SMTPUTF8"))
        self.assertEqual(self.refused(b"X=\x00"), (501, "5.5.4 Syntax error in parameters"))

    def test_auth_only_where_offered(self):
        self.assertEqual(self.check(b"AUTH=<>", auth=True), MailParams())
        self.assertEqual(self.refused(b"AUTH=<>"), (555, "5.5.4 Unsupported parameter AUTH"))

    def test_rcpt_takes_none(self):
        parse_rcpt_params(b"")
        error = self.assertRaises(Rejection, parse_rcpt_params, b"NOTIFY=NEVER ORCPT=rfc822;a@b")
        self.assertEqual(error.reply, replies.UNSUPPORTED_PARAMETER(name="NOTIFY"))


class ReceivedTests(unittest.TestCase):
    when = datetime(2026, 11, 22, 19, 0, 5, tzinfo=timezone.utc)

    def test_form_with_tls_and_one_recipient(self):
        self.assertEqual(
            trace_headers(
                sender="bob@example.net",
                helo="client.example.net",
                client_ip="192.0.2.7",
                hostname="mx.example.test",
                protocol="ESMTPS",
                queue_id="ABC123",
                tls="TLSv1.3 with cipher TLS_AES_256_GCM_SHA384",
                recipient="alice@example.test",
                when=self.when,
            ),
            b"Return-Path: <bob@example.net>\r\n"
            b"Received: from client.example.net ([192.0.2.7])\r\n"
            b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)\r\n"
            b"\tby mx.example.test (mailsrv) with ESMTPS id ABC123\r\n"
            b"\tfor <alice@example.test>; Sun, 22 Nov 2026 19:00:05 +0000\r\n",
        )

    def test_the_login_is_a_comment_before_by(self):
        headers = trace_headers(
            sender="alice@example.test", helo="laptop", client_ip="192.0.2.8", hostname="mx", protocol="ESMTPSA",
            queue_id="Q", tls="TLSv1.3 with cipher TLS_AES_256_GCM_SHA384", recipient=None,
            login="alice@example.test", when=self.when,
        )
        self.assertEqual(
            headers.split(b"\r\n")[2:4],
            [b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384)", b"\t(Authenticated sender: alice@example.test)"],
        )

    def test_several_recipients_no_tls(self):
        headers = trace_headers(
            sender="",
            helo="h",
            client_ip="2001:db8::1",
            hostname="mx",
            protocol="ESMTP",
            queue_id="Q",
            tls=None,
            recipient=None,
            when=self.when,
        )
        self.assertEqual(
            headers,
            b"Return-Path: <>\r\n"
            b"Received: from h ([IPv6:2001:db8::1])\r\n"
            b"\tby mx (mailsrv) with ESMTP id Q;\r\n"
            b"\tSun, 22 Nov 2026 19:00:05 +0000\r\n",
        )
        self.assertNotIn(b"\n", headers.replace(b"\r\n", b""))

    def test_with_keywords(self):
        # RFC 3848 2
        self.assertEqual(
            [with_protocol(e, t, a) for e, t, a in [(True, False, False), (True, True, False), (True, False, True), (True, True, True), (False, True, True)]],
            ["ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA", "SMTP"],
        )

    def test_address_literal(self):
        self.assertEqual(address_literal("192.0.2.1"), "[192.0.2.1]")
        self.assertEqual(address_literal("::1"), "[IPv6:::1]")

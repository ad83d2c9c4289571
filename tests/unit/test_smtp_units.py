"""The small pure parts of mailsrv.smtp: MAIL/RCPT parameters and trace headers."""

from __future__ import annotations

from datetime import datetime, timezone

from twisted.trial import unittest

from mailsrv.delivery.dsnrequest import RecipientRequest, decode_xtext, encode_xtext
from mailsrv.message.body import BodyType
from mailsrv.smtp import replies
from mailsrv.smtp.params import MailParams, parse_mail_params, parse_rcpt_params
from mailsrv.smtp.received import address_literal, trace_headers, with_protocol
from mailsrv.smtp.replies import Rejection


class ParamTests(unittest.TestCase):
    def check(self, raw: bytes, auth: bool = False, tls: bool = False) -> MailParams:
        return parse_mail_params(raw, max_size=1000, auth_offered=auth, tls_active=tls)

    def refused(self, raw: bytes, auth: bool = False, tls: bool = False) -> tuple[int, str]:
        return self.rejection(self.check, raw, auth, tls)

    def rcpt_refused(self, raw: bytes) -> tuple[int, str]:
        return self.rejection(parse_rcpt_params, raw)

    def rejection(self, parse, *args) -> tuple[int, str]:
        error = self.assertRaises(Rejection, parse, *args)
        return error.reply.code, f"{error.reply.enhanced} {error.reply.text}"

    def test_none(self):
        self.assertEqual(self.check(b""), MailParams())

    def test_size_and_body(self):
        self.assertEqual(self.check(b"size=1000 Body=8bitmime"), MailParams(size=1000, body=BodyType.EIGHT_BIT_MIME))
        self.assertEqual(self.check(b"BODY=binarymime"), MailParams(body=BodyType.BINARY_MIME))  # RFC 3030 3

    def test_errors(self):
        self.assertEqual(self.refused(b"SIZE=1001"), (552, "5.3.4 Message size exceeds fixed maximum message size"))
        self.assertEqual(self.refused(b"SIZE=-1"), (501, "5.5.4 Bad SIZE parameter"))
        self.assertEqual(self.refused(b"SIZE"), (501, "5.5.4 Bad SIZE parameter"))
        self.assertEqual(self.refused(b"SIZE=1 SIZE=2"), (501, "5.5.4 Duplicate parameter SIZE"))
        self.assertEqual(self.refused(b"BODY=BINARY"), (501, "5.5.4 Bad BODY parameter"))
        self.assertEqual(self.refused(b"SMTPUTF8=yes"), (501, "5.5.4 Bad SMTPUTF8 parameter: it takes no value"))
        self.assertEqual(self.refused(b"X=\x00"), (501, "5.5.4 Syntax error in parameters"))

    def test_smtputf8(self):
        """RFC 6531 3.4: a MAIL parameter without a value, refused on RCPT (555: not a RCPT parameter)."""
        self.assertEqual(self.check(b"smtputf8 BODY=8BITMIME"), MailParams(body=BodyType.EIGHT_BIT_MIME, smtputf8=True))
        self.assertEqual(self.rcpt_refused(b"SMTPUTF8"), (555, "5.5.4 Unsupported parameter SMTPUTF8"))

    def test_auth_only_where_offered(self):
        self.assertEqual(self.check(b"AUTH=<>", auth=True), MailParams())
        self.assertEqual(self.refused(b"AUTH=<>"), (555, "5.5.4 Unsupported parameter AUTH"))

    def test_rcpt_takes_only_the_dsn_parameters(self):
        self.assertEqual(parse_rcpt_params(b""), RecipientRequest())
        error = self.assertRaises(Rejection, parse_rcpt_params, b"NOTIFY=NEVER XTRA=1")
        self.assertEqual(error.reply, replies.UNSUPPORTED_PARAMETER(name="XTRA"))


    # -- RFC 3461 4 parameters and RFC 8689 3 REQUIRETLS

    def test_ret_and_envid(self):
        self.assertEqual(self.check(b"RET=hdrs ENVID=QQ+2B1+3Dx"), MailParams(ret="HDRS", envid="QQ+1=x"))
        self.assertEqual(self.check(b"ret=FULL"), MailParams(ret="FULL"))

    def test_bad_ret(self):
        self.assertEqual(self.refused(b"RET=BODY"), (501, "5.5.4 Bad RET parameter: must be FULL or HDRS"))
        self.assertEqual(self.refused(b"RET"), (501, "5.5.4 Bad RET parameter: needs a value"))

    def test_envid_must_be_xtext_of_printable_ascii_at_most_100_long(self):
        self.assertEqual(self.check(b"ENVID=" + b"x" * 100), MailParams(envid="x" * 100))
        self.assertEqual(self.refused(b"ENVID=" + b"x" * 101),
                         (501, "5.5.4 Bad ENVID parameter: is longer than 100 characters"))
        self.assertEqual(self.refused(b"ENVID=a+b"), (501, "5.5.4 Bad ENVID parameter: is not xtext"))
        self.assertEqual(self.refused(b"ENVID=a+2b"), (501, "5.5.4 Bad ENVID parameter: is not xtext"))
        # a line end smuggled in as xtext would become a header line of the DSN
        self.assertEqual(self.refused(b"ENVID=a+0D+0ABcc:x"),
                         (501, "5.5.4 Bad ENVID parameter: decodes to a character that is not printable US-ASCII"))

    def test_requiretls_only_over_tls_and_without_a_value(self):
        self.assertEqual(self.check(b"REQUIRETLS", tls=True), MailParams(require_tls=True))
        self.assertEqual(self.refused(b"REQUIRETLS"),
                         (530, "5.7.10 REQUIRETLS needs a TLS session: issue STARTTLS first"))
        self.assertEqual(self.refused(b"REQUIRETLS=YES", tls=True),
                         (501, "5.5.4 Bad REQUIRETLS parameter: it takes no value"))

    def test_notify(self):
        self.assertEqual(parse_rcpt_params(b"NOTIFY=never"), RecipientRequest(notify="NEVER"))
        self.assertEqual(parse_rcpt_params(b"NOTIFY=delay,Success"), RecipientRequest(notify="SUCCESS,DELAY"))
        self.assertEqual(parse_rcpt_params(b"NOTIFY=FAILURE,DELAY,SUCCESS"),
                         RecipientRequest(notify="SUCCESS,FAILURE,DELAY"))

    def test_bad_notify(self):
        reason = (501, "5.5.4 Bad NOTIFY parameter: must be NEVER or a list of SUCCESS, FAILURE and DELAY")
        for raw in (b"NOTIFY=NEVER,SUCCESS", b"NOTIFY=SUCCESS,", b"NOTIFY=ALWAYS", b"NOTIFY=,FAILURE"):
            self.assertEqual(self.rcpt_refused(raw), reason, raw)
        self.assertEqual(self.rcpt_refused(b"NOTIFY"), (501, "5.5.4 Bad NOTIFY parameter: needs a value"))
        self.assertEqual(self.rcpt_refused(b"NOTIFY=NEVER NOTIFY=NEVER"), (501, "5.5.4 Duplicate parameter NOTIFY"))

    def test_orcpt_is_decoded(self):
        self.assertEqual(parse_rcpt_params(b"ORCPT=rfc822;bob+2Btag@example.org NOTIFY=SUCCESS"),
                         RecipientRequest(notify="SUCCESS", orcpt="rfc822;bob+tag@example.org"))

    def test_bad_orcpt(self):
        self.assertEqual(self.rcpt_refused(b"ORCPT=bob@example.org"),
                         (501, "5.5.4 Bad ORCPT parameter: must be addr-type;address"))
        self.assertEqual(self.rcpt_refused(b"ORCPT=rfc822;"), (501, "5.5.4 Bad ORCPT parameter: must be addr-type;address"))
        self.assertEqual(self.rcpt_refused(b"ORCPT=rfc(822;a@b"),
                         (501, "5.5.4 Bad ORCPT parameter: must be addr-type;address"))
        self.assertEqual(self.rcpt_refused(b"ORCPT=rfc822;" + b"a" * 494),
                         (501, "5.5.4 Bad ORCPT parameter: is longer than 500 characters"))
        self.assertEqual(self.rcpt_refused(b"ORCPT=rfc822;a+00@b"),
                         (501, "5.5.4 Bad ORCPT parameter: decodes to a character that is not printable US-ASCII"))

    def test_xtext_round_trip(self):
        text = "a+b=c d\tf~!"
        self.assertEqual(encode_xtext(text), "a+2Bb+3Dc+20d+09f~!")
        self.assertEqual(decode_xtext(encode_xtext(text)), text)


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

    def test_without_when_the_stamp_is_the_current_second(self):
        """The per-second date-time is made again for a new second, never served from the one before."""
        from types import SimpleNamespace

        from mailsrv.smtp import received

        clock = SimpleNamespace(time=lambda: self.when.timestamp() + 0.75)
        self.patch(received, "time", clock)

        def stamp() -> bytes:
            headers = trace_headers(sender="", helo="h", client_ip="192.0.2.1", hostname="mx", protocol="ESMTP",
                                    queue_id="Q", tls=None, recipient=None)
            return headers.split(b"\r\n")[-2]

        self.assertEqual(stamp(), b"\tSun, 22 Nov 2026 19:00:05 +0000")
        clock.time = lambda: self.when.timestamp() + 1.0
        self.assertEqual(stamp(), b"\tSun, 22 Nov 2026 19:00:06 +0000")
        clock.time = lambda: self.when.timestamp() + 61.2
        self.assertEqual(stamp(), b"\tSun, 22 Nov 2026 19:01:06 +0000")

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

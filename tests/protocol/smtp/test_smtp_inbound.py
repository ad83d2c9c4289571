"""Inbound SMTP (port 25): who may receive, what is stored, limits, pipelining.

Each test is an RFC 5321 session on an in-memory transport against a fake
directory and a fake store whose Deferreds the test can hold back.
"""

from __future__ import annotations

import os
import re

from twisted.logger import formatEvent
from twisted.internet import defer

from mailsrv.message import wire
from mailsrv.policy import ACCEPT, Check, Policy, Verdict, reject
from mailsrv.smtp.replies import Reply
from support import audit_events, make_context
from test_smtp_session import MAX_LINE, MAX_SIZE, STORED_AS, FakeDirectory, SMTPTestCase

MESSAGE = b"From: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n..leading dot\r\n.\r\n"
STORED_BODY = b"From: bob@example.net\r\nSubject: hi\r\n\r\nHello.\r\n.leading dot\r\n"
QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as ([0-9A-Z]{12})\r\n\Z")
RELAY_DENIED = b"554 5.7.1 <%s>: Relay access denied\r\n"


class InboundTestCase(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()
        self.ehlo()

    def mail(self, sender: bytes = b"<bob@example.net>") -> None:
        self.assertEqual(self.say(b"MAIL FROM:" + sender + b"\r\n"), b"250 2.1.0 Ok\r\n")

    def rcpt(self, address: bytes) -> bytes:
        return self.say(b"RCPT TO:<" + address + b">\r\n")


class AcceptTests(InboundTestCase):
    def test_local_delivery_is_byte_exact_with_trace_headers(self):
        self.mail()
        self.assertEqual(self.rcpt(b"alice@example.test"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.say(b"DATA\r\n"), b"354 End data with <CR><LF>.<CR><LF>\r\n")
        queue_id = QUEUED.match(self.say(MESSAGE)).group(1).decode()
        [(addresses, data)] = self.store.calls
        self.assertEqual(addresses, ["alice@example.test"])
        *header, body = data.split(b"\r\n", 4)
        self.assertEqual(body, STORED_BODY)
        self.assertEqual(header[0], b"Return-Path: <bob@example.net>")
        self.assertEqual(header[1], b"Received: from client.example.net ([192.0.2.7])")
        self.assertEqual(header[2], b"\tby mx.example.test (mailsrv) with ESMTP id " + queue_id.encode())
        self.assertRegex(header[3].decode(), r"^\tfor <alice@example\.test>; \w{3}, \d+ \w{3} \d{4} [\d:]{8} \+0000$")

    def test_domain_is_case_insensitive(self):
        self.mail()
        self.assertEqual(self.rcpt(b"Alice@EXAMPLE.Test"), b"250 2.1.5 Ok\r\n")

    def test_null_sender_is_accepted(self):
        self.mail(b"<>")
        self.rcpt(b"alice@example.test")
        self.say(b"DATA\r\n")
        self.say(MESSAGE)
        self.assertTrue(self.store.calls[0][1].startswith(b"Return-Path: <>\r\n"))

    def test_postmaster_of_every_local_domain(self):
        # RFC 5321 4.5.1
        self.mail()
        self.assertEqual(self.rcpt(b"postmaster@example.test"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.rcpt(b"postmaster@example.org"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.rcpt(b"Postmaster"), b"250 2.1.5 Ok\r\n")

    def test_source_route_to_a_local_mailbox_is_ignored(self):
        # RFC 5321 4.1.1.3 and appendix C: ignore the route, use the mailbox.
        self.mail()
        self.assertEqual(self.rcpt(b"@relay.example:alice@example.test"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.rcpt(b"@relay.example,@example.test:bob@example.test"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        self.assertEqual(self.store.calls[0][0], ["alice@example.test", "bob@example.test"])

    def test_quoted_form_of_a_plain_local_part_is_the_same_mailbox(self):
        # RFC 5322 3.2.4: a quoted-string is semantically its content.
        self.mail()
        self.assertEqual(self.rcpt(b'"alice"@example.test'), b"250 2.1.5 Ok\r\n")

    def test_one_store_write_for_three_recipients(self):
        self.mail()
        for rcpt in (b"alice@example.test", b"bob@example.test", b"carol@example.test", b"team@example.test"):
            self.assertEqual(self.rcpt(rcpt), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        [(addresses, data)] = self.store.calls
        self.assertEqual(addresses, ["alice@example.test", "bob@example.test", "carol@example.test"])
        # Several recipients: no "for" clause, Bcc recipients stay private.
        self.assertNotIn(b"for <", data.split(b"\r\n\r\n")[0])
        self.assertEqual(data.count(b"Received:"), 1)

    def test_transaction_is_logged_once(self):
        self.mail()
        self.rcpt(b"alice@example.test")
        self.rcpt(b"nobody@example.test")
        self.say(b"DATA\r\n")
        queue_id = QUEUED.match(self.say(MESSAGE)).group(1).decode()
        [event] = self.transactions()
        self.assertEqual(
            {k: event[k] for k in ("client_ip", "helo", "sender", "recipients", "rejected", "size", "result", "queue_id")},
            {
                "client_ip": "192.0.2.7",
                "helo": "client.example.net",
                "sender": "bob@example.net",
                "recipients": ["alice@example.test"],
                "rejected": ["nobody@example.test"],
                "size": len(STORED_BODY),
                "result": 250,
                "queue_id": queue_id,
            },
        )
        self.assertIn(" rejected=nobody@example.test ", formatEvent(event))

    def test_abandoned_transaction_is_logged(self):
        self.mail()
        self.rcpt(b"alice@example.test")
        self.say(b"RSET\r\n")
        [event] = self.transactions()
        self.assertEqual((event["result"], event["queue_id"]), ("aborted", None))


class RefuseTests(InboundTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.mail()

    def test_unknown_user(self):
        self.assertEqual(
            self.rcpt(b"nobody@example.test"),
            b"550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown\r\n",
        )

    def test_other_domain_is_not_relayed(self):
        self.assertEqual(self.rcpt(b"victim@elsewhere.example"), RELAY_DENIED % b"victim@elsewhere.example")

    def test_percent_hack(self):
        self.assertEqual(
            self.rcpt(b"victim%elsewhere.example@example.test"),
            RELAY_DENIED % b"victim%elsewhere.example@example.test",
        )

    def test_bang_path(self):
        self.assertEqual(
            self.rcpt(b"elsewhere.example!victim@example.test"),
            RELAY_DENIED % b"elsewhere.example!victim@example.test",
        )

    def test_source_route_to_a_remote_mailbox(self):
        self.assertEqual(
            self.rcpt(b"@example.test:victim@elsewhere.example"), RELAY_DENIED % b"victim@elsewhere.example"
        )
        self.assertEqual(
            self.rcpt(b"@example.test,@relay.example:victim@[192.0.2.1]"), RELAY_DENIED % b"victim@[192.0.2.1]"
        )

    def test_quoted_local_part_hiding_a_domain(self):
        self.assertEqual(
            self.rcpt(b'"victim@elsewhere.example"@example.test'),
            RELAY_DENIED % b'"victim@elsewhere.example"@example.test',
        )

    def test_refusal_names_the_address_as_sent(self):
        # The quotes stay: without them the reply names a different address.
        self.assertEqual(
            self.rcpt(b'"victim%elsewhere.example"@example.test'),
            RELAY_DENIED % b'"victim%elsewhere.example"@example.test',
        )
        self.assertEqual(
            self.rcpt(b'"nobody"@Example.TEST'),
            b'550 5.1.1 <"nobody"@Example.TEST>: Recipient address rejected: User unknown\r\n',
        )

    def test_address_literal(self):
        self.assertEqual(self.rcpt(b"alice@[192.0.2.1]"), RELAY_DENIED % b"alice@[192.0.2.1]")

    def test_bad_syntax(self):
        self.assertEqual(self.say(b"RCPT TO:alice@example.test\r\n"), b"501 5.5.4 Syntax: RCPT TO:<address>\r\n")
        self.assertEqual(self.rcpt(b"alice@@example.test"), b"501 5.1.3 Bad recipient address syntax: bad address syntax\r\n")
        self.assertEqual(self.rcpt(b"alice"), b"501 5.1.3 Bad recipient address syntax: bad address syntax\r\n")

    def test_unknown_rcpt_parameters_are_refused(self):
        self.assertEqual(
            self.say(b"RCPT TO:<alice@example.test> RRVS=2026-01-01T00:00:00Z\r\n"),
            b"555 5.5.4 Unsupported parameter RRVS\r\n",
        )

    def test_too_many_recipients(self):
        for _ in range(5):
            self.assertEqual(self.rcpt(b"alice@example.test"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.rcpt(b"bob@example.test"), b"452 4.5.3 Error: too many recipients\r\n")

    def test_data_without_recipients(self):
        self.rcpt(b"nobody@example.test")
        self.assertEqual(self.say(b"DATA\r\n"), b"554 5.5.1 Error: no valid recipients\r\n")


class SequenceTests(InboundTestCase):
    def test_rcpt_before_mail(self):
        self.assertEqual(self.rcpt(b"alice@example.test"), b"503 5.5.1 Error: need MAIL command\r\n")

    def test_data_before_mail(self):
        self.assertEqual(self.say(b"DATA\r\n"), b"503 5.5.1 Error: need MAIL command\r\n")

    def test_nested_mail(self):
        self.mail()
        self.assertEqual(self.say(b"MAIL FROM:<x@example.net>\r\n"), b"503 5.5.1 Error: nested MAIL command\r\n")

    def test_rset_ends_the_transaction(self):
        self.mail()
        self.say(b"RSET\r\n")
        self.assertEqual(self.rcpt(b"alice@example.test"), b"503 5.5.1 Error: need MAIL command\r\n")

    def test_mail_syntax(self):
        self.assertEqual(self.say(b"MAIL FROM:bob@example.net\r\n"), b"501 5.5.4 Syntax: MAIL FROM:<address>\r\n")
        self.assertEqual(self.say(b"MAIL FROM:<bob>\r\n"), b"501 5.1.7 Bad sender address syntax: bad address syntax\r\n")


class ParameterTests(InboundTestCase):
    def test_size_within_limit(self):
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> SIZE=%d\r\n" % MAX_SIZE), b"250 2.1.0 Ok\r\n")

    def test_size_over_limit(self):
        # RFC 1870 6.1
        self.assertEqual(
            self.say(b"MAIL FROM:<bob@example.net> SIZE=%d\r\n" % (MAX_SIZE + 1)),
            b"552 5.3.4 Message size exceeds fixed maximum message size\r\n",
        )

    def test_body_8bitmime(self):
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> BODY=8BITMIME\r\n"), b"250 2.1.0 Ok\r\n")

    def test_body_binarymime(self):
        # RFC 3030 3: advertised with CHUNKING (test_smtp_bdat.py has what it means for DATA and BDAT).
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> BODY=BINARYMIME\r\n"), b"250 2.1.0 Ok\r\n")

    def test_bad_body(self):
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> BODY=BINARY\r\n"), b"501 5.5.4 Bad BODY parameter\r\n")

    def test_unknown_parameter(self):
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> MT-PRIORITY=3\r\n"),
                         b"555 5.5.4 Unsupported parameter MT-PRIORITY\r\n")

    def test_auth_parameter_is_unknown_where_auth_is_not_offered(self):
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net> AUTH=<>\r\n"), b"555 5.5.4 Unsupported parameter AUTH\r\n")


class DataLimitTests(InboundTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.mail()
        self.rcpt(b"alice@example.test")
        self.say(b"DATA\r\n")

    def test_exactly_the_limit_is_accepted(self):
        line = b"x" * 62 + b"\r\n"  # 64 octets
        self.assertRegex(self.say(line * (MAX_SIZE // 64) + b".\r\n"), QUEUED)
        self.assertTrue(self.store.calls[0][1].endswith(line * (MAX_SIZE // 64)))

    def test_body_over_the_limit_gets_552_at_the_final_dot(self):
        line = b"x" * 62 + b"\r\n"
        self.assertEqual(self.say(line * (MAX_SIZE // 64)), b"")
        # One octet too many: nothing is said until the final dot.
        self.assertEqual(self.say(b"y\r\n" + line * 10), b"")
        self.assertEqual(self.say(b".\r\n"), b"552 5.3.4 Message size exceeds fixed maximum message size\r\n")
        self.assertEqual(self.store.calls, [])
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")
        self.assertEqual(self.transactions()[0]["result"], 552)

    def test_long_body_line_never_returns_to_command_mode(self):
        smuggled = b"MAIL FROM:<smuggled@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
        self.assertEqual(self.say(b"Subject: x\r\n\r\n" + b"A" * (MAX_LINE + 10) + b"\r\n" + smuggled), b"")
        self.assertEqual(self.say(b"more body\r\n.\r\n"), b"500 5.5.2 Line too long\r\n")
        self.assertEqual(self.store.calls, [])
        # The transaction is over; the smuggled MAIL never ran.
        self.assertEqual(self.rcpt(b"bob@example.test"), b"503 5.5.1 Error: need MAIL command\r\n")

    def test_longest_allowed_line(self):
        line = b"B" * (MAX_LINE - 2) + b"\r\n"  # RFC 5321 4.5.3.1.6 counts the CRLF
        self.assertRegex(self.say(line + b".\r\n"), QUEUED)


class LineEndTests(InboundTestCase):
    """RFC 5321 2.3.8: what bare CR and bare LF in DATA get, in the real store's files."""

    def setUp(self) -> None:
        super().setUp()
        self.ctx = make_context(self.config, directory=FakeDirectory(), checker=self.checker, tls_options=object())
        self.connect()
        self.ehlo()
        self.mail()
        self.rcpt(b"alice@example.test")
        self.say(b"DATA\r\n")

    def stored_files(self) -> list[bytes]:
        new = os.path.join(self.config.mail_dir, "example.test", "alice", "new")
        if not os.path.isdir(new):
            return []
        return [open(os.path.join(new, name), "rb").read() for name in os.listdir(new)]

    def test_bare_cr_is_stored_byte_exact_and_dots_still_work(self):
        sent = b"Subject: cr\r\n\r\nx\r\r\ny\r\n\r\r\n..\r\r\n.\r\r\na\rb\r\n..\r\nend\r\r\n"
        received = b"Subject: cr\r\n\r\nx\r\r\ny\r\n\r\r\n.\r\r\n\r\r\na\rb\r\n.\r\nend\r\r\n"
        self.assertRegex(self.say(sent + b".\r\n"), QUEUED)
        [stored] = self.stored_files()
        # Return-Path and three lines of Received, then the message in the Maildir's LF form.
        self.assertEqual(stored.split(b"\n", 4)[4], b"Subject: cr\n\nx\r\r\ny\n\r\r\n.\r\r\n\r\r\na\rb\n.\nend\r\r\n")
        self.assertEqual(wire.to_wire(stored).split(b"\r\n", 4)[4], received)
        self.assertEqual(self.transactions()[0]["size"], len(received))

    def test_bare_lf_fails_the_transaction_at_the_final_dot(self):
        self.assertEqual(self.say(b"Subject: lf\r\n\r\nbare\nLF\r\n\n.\n\r\n"), b"")
        self.assertEqual(self.say(b".\r\n"), b"554 5.6.0 Error: bare LF in message data, lines must end in CRLF\r\n")
        self.assertEqual(self.stored_files(), [])
        self.assertEqual(self.transactions()[0]["result"], 554)
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")


class LineLimitTests(InboundTestCase):
    def test_long_command_line(self):
        self.assertEqual(self.say(b"NOOP " + b"x" * MAX_LINE + b"\r\n"), b"500 5.5.2 Line too long\r\n")
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")

    def test_line_without_crlf_is_answered_at_once_and_not_buffered(self):
        chunk = b"z" * 65536
        # The 500 comes as soon as the line is too long, not when (if ever) its CRLF does.
        self.assertEqual(self.say(chunk), b"500 5.5.2 Line too long\r\n")
        for _ in range(15):  # 1 MiB in all, no CRLF
            self.assertEqual(self.say(chunk), b"")
            self.assertLessEqual(len(self.server.input), MAX_LINE)
        self.assertEqual(self.say(b"\r\nNOOP\r\n"), b"250 2.0.0 Ok\r\n")

    def test_crlf_split_across_packets_after_a_long_line(self):
        self.assertEqual(self.say(b"x" * (3 * MAX_LINE) + b"\r"), b"500 5.5.2 Line too long\r\n")
        self.assertEqual(self.say(b"\nNOOP\r\n"), b"250 2.0.0 Ok\r\n")


class DurabilityTests(InboundTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store.manual = True
        self.mail()
        self.rcpt(b"alice@example.test")
        self.say(b"DATA\r\n")

    def test_250_only_after_the_store_fires(self):
        self.assertEqual(self.say(MESSAGE), b"")
        self.assertEqual(len(self.store.calls), 1)
        self.transport.clear()
        self.store.pending[0].callback(STORED_AS)
        self.assertRegex(self.transport.value(), QUEUED)
        (delivery,) = audit_events(list(self.log), "delivery")
        self.assertEqual((delivery["result"], delivery["file"]), ("stored", "1796164893.M512034P4711Q12.test"))

    def test_store_failure_is_451_never_250(self):
        self.say(MESSAGE)
        self.transport.clear()
        self.store.pending[0].errback(OSError(28, "No space left on device"))
        self.assertEqual(self.transport.value(), b"451 4.3.0 Error: message not stored, try again later\r\n")
        (delivery,) = audit_events(list(self.log), "delivery")
        self.assertEqual((delivery["result"], delivery["reason"]), ("failed", "OSError"))
        self.assertEqual(self.transactions()[0]["result"], 451)

    def test_commands_pipelined_after_the_dot_wait_for_the_store(self):
        self.assertEqual(self.say(MESSAGE + b"NOOP\r\nRSET\r\n"), b"")
        self.assertEqual(self.transport.producerState, "paused")
        self.transport.clear()
        self.store.pending[0].callback(STORED_AS)
        replies = self.transport.value().split(b"\r\n")
        self.assertRegex(replies[0] + b"\r\n", QUEUED)
        self.assertEqual(replies[1:], [b"250 2.0.0 Ok", b"250 2.0.0 Ok", b""])
        self.assertEqual(self.transport.producerState, "producing")


class PolicyTests(InboundTestCase):
    """Checks at each stage: refusals are audited, headers they add reach the message in order."""

    def install(self, check: Check) -> None:
        self.ctx.policy = Policy([*self.ctx.policy.checks, check], self.ctx.policy.disk)

    def test_headers_from_every_stage_are_added_at_the_top(self):
        class Stamp(Check):
            def rcpt(self, ctx, recipient):
                return Verdict(headers=(b"X-Rcpt: %s\r\n" % str(recipient).encode(),))

            def data(self, ctx, envelope):
                return Verdict(headers=(b"Authentication-Results: mx.example.test; none\r\n",))

        self.install(Stamp())
        self.mail()
        self.rcpt(b"alice@example.test")
        self.say(b"DATA\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        [(_, data)] = self.store.calls
        # Below our Return-Path (final delivery puts it first), above our Received.
        self.assertRegex(data[:200], rb"\AReturn-Path: <[^>\r\n]*>\r\n"
                                     rb"X-Rcpt: alice@example.test\r\nAuthentication-Results: mx.example.test; none\r\n"
                                     rb"Received: ")

    def test_data_stage_refusal_is_answered_and_audited(self):
        class Refuse(Check):
            def data(self, ctx, envelope):
                return reject(Reply(550, "5.7.1", "Content refused"))

        self.install(Refuse())
        self.mail()
        self.rcpt(b"alice@example.test")
        self.say(b"DATA\r\n")
        self.assertEqual(self.say(MESSAGE), b"550 5.7.1 Content refused\r\n")
        self.assertEqual(self.store.calls, [])
        (event,) = audit_events(list(self.log), "rejection")
        self.assertEqual((event["result"], event["subject"]), ("data", "bob@example.net"))
        self.assertEqual(os.listdir(self.config.spool_dir) if os.path.isdir(self.config.spool_dir) else [], [])


class PipeliningTests(InboundTestCase):
    """RFC 2920: replies in command order, even when validation is deferred (twisted #8126)."""

    def test_deferred_validation_keeps_replies_in_order(self):
        held: list[defer.Deferred[object]] = []

        class SlowCheck(Check):
            """A recipient check that answers when the test says so (a DNS lookup, say)."""

            def rcpt(self, ctx, recipient):
                d: defer.Deferred[object] = defer.Deferred()
                held.append(d)
                return d.addCallback(lambda _: ACCEPT)

        self.ctx.policy = Policy([*self.ctx.policy.checks, SlowCheck()], self.ctx.policy.disk)
        sent = b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
        self.assertEqual(self.say(sent), b"250 2.1.0 Ok\r\n")
        self.transport.clear()
        held[0].callback(None)
        self.assertEqual(self.transport.value(), b"250 2.1.5 Ok\r\n")
        self.transport.clear()
        held[1].callback(None)
        self.assertEqual(self.transport.value(), b"250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n")
        self.assertRegex(self.say(MESSAGE), QUEUED)
        self.assertEqual(self.store.calls[0][0], ["alice@example.test", "bob@example.test"])

    def test_whole_transaction_in_one_packet(self):
        replies = self.say(
            b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<x@elsewhere.example>\r\n"
            b"DATA\r\n" + MESSAGE + b"QUIT\r\n"
        ).split(b"\r\n")
        self.assertEqual(replies[:4], [b"250 2.1.0 Ok", b"250 2.1.5 Ok", RELAY_DENIED[:-2] % b"x@elsewhere.example", b"354 End data with <CR><LF>.<CR><LF>"])
        self.assertRegex(replies[4], rb"^250 2\.0\.0 Ok: queued as ")
        self.assertEqual(replies[5:], [b"221 2.0.0 Bye", b""])


class AsyncCheckTests(InboundTestCase):
    def test_a_check_may_be_a_coroutine(self):
        class Slow(Check):
            async def rcpt(self, ctx, recipient):
                return reject(Reply(450, "4.7.1", "Try again later"))

        self.ctx.policy = Policy([*self.ctx.policy.checks, Slow()], self.ctx.policy.disk)
        self.mail()
        self.assertEqual(self.rcpt(b"alice@example.test"), b"450 4.7.1 Try again later\r\n")

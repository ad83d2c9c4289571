"""Port 25 spam scoring: SMTP sessions whose messages a fake rspamd on 127.0.0.1 scores.

Each rspamd action maps to a reply or to what is stored (X-Spam fields
right below our Return-Path, a rewritten Subject, the Junk folder); every
way rspamd can fail (down, slow, nonsense, HTTP 500, a dropped connection)
delivers the message marked unchecked, or answers 451 with ``on_error =
"tempfail"``, and never refuses it for good.
"""

from __future__ import annotations

import dataclasses
import re

from twisted.internet import reactor, task
from twisted.internet.address import IPv4Address

from mailsrv import config as configuration
from mailsrv.dns import make_resolver
from mailsrv.smtp import replies
from mailsrv.store import names
from rspamd_harness import FakeRspamd
from senderauth_harness import message
from support import make_context
from test_smtp_senderauth import SenderAuthTestCase, below_return_path
from test_smtp_session import HOST, FakeDirectory, SMTPTestCase

QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as ([0-9A-Z]{12})\r\n\Z")
TIMEOUT = 7


async def replied(case: SMTPTestCase) -> bytes:
    """What the session answered, once it answered (the scan is a real HTTP request: the reactor runs)."""
    while not case.transport.value().endswith(b"\r\n"):
        await task.deferLater(reactor, 0.005, lambda: None)
    return case.transport.value()


class SpamTestCase(SMTPTestCase):
    """Sessions from 192.0.2.7 (a stranger) against a context whose [spam] scanner is :attr:`rspamd`."""

    on_error = "accept"
    spool_threshold = 1024 * 1024

    def setUp(self) -> None:
        self.rspamd = FakeRspamd()
        self.url = self.rspamd.listen(self)
        super().setUp()
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), clock=self.clock)

    def make_config(self, **auth):
        base = super().make_config(**auth)
        return dataclasses.replace(
            base, limits=dataclasses.replace(base.limits, spool_threshold=self.spool_threshold, max_message_size=1 << 20),
            spam=configuration.SpamConfig(rspamd=self.url, timeout=f"{TIMEOUT}s", on_error=self.on_error),
        )

    async def answer(self, data: bytes) -> bytes:
        """Send *data*; the server's answer, once it came (the scan is a real HTTP request)."""
        self.transport.clear()
        self.server.dataReceived(data)
        return await replied(self)

    async def send(self, data: bytes = message(), sender: str = "bob@example.net") -> bytes:
        """One transaction to alice; the reply to the data."""
        self.connect()
        self.say(b"EHLO client.example.net\r\n")
        self.assertEqual(self.say(f"MAIL FROM:<{sender}>\r\n".encode()), b"250 2.1.0 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        return await self.answer(data + b".\r\n")

    def stored(self) -> bytes:
        """The message stored last, below its Return-Path."""
        return below_return_path(self.store.calls[-1][1])


class ActionTests(SpamTestCase):
    async def test_no_action_delivers_with_the_score(self):
        self.assertRegex(await self.send(), QUEUED)
        self.assertTrue(self.stored().startswith(
            b"X-Spam-Status: No, score=1.50\r\nX-Spam-Score: 1.50 / 15.00\r\nX-Spam-Action: no action\r\n"
            b"Received: from client.example.net"), self.stored()[:300])
        self.assertEqual(self.store.folders, [[names.INBOX]])

    async def test_reject_is_550_and_nothing_is_stored(self):
        self.rspamd.mode = "reject"
        self.assertEqual(await self.send(), replies.SPAM_REJECTED.wire())
        self.assertEqual(self.store.calls, [])
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")  # the session goes on

    async def test_soft_reject_is_451(self):
        self.rspamd.mode = "soft reject"
        self.assertEqual(await self.send(), replies.SPAM_DEFERRED.wire())
        self.assertEqual(self.store.calls, [])

    async def test_greylist_is_451(self):
        self.rspamd.mode = "greylist"
        self.assertEqual(await self.send(), replies.GREYLISTED.wire())
        self.assertEqual(self.store.calls, [])

    async def test_add_header_marks_it_spam_and_delivers_to_junk(self):
        self.rspamd.mode, self.rspamd.score = "add header", 7.2
        self.assertRegex(await self.send(), QUEUED)
        self.assertTrue(self.stored().startswith(
            b"X-Spam-Status: Yes, score=7.20\r\nX-Spam-Score: 7.20 / 15.00\r\nX-Spam-Action: add header\r\n"
            b"X-Spam: Yes\r\nReceived: "), self.stored()[:300])
        self.assertEqual(self.store.folders, [["Junk"]])

    async def test_rewrite_subject_replaces_the_subject_and_keeps_the_inbox(self):
        self.rspamd.mode, self.rspamd.subject = "rewrite subject", "*** SPAM *** hi"
        self.assertRegex(await self.send(), QUEUED)
        stored = self.stored()
        self.assertIn(b"X-Spam: Yes\r\n", stored)
        self.assertIn(b"\r\nSubject: *** SPAM *** hi\r\n", stored)
        self.assertEqual(stored.count(b"Subject:"), 1, stored)
        self.assertEqual(self.store.folders, [[names.INBOX]])

    async def test_a_rewritten_subject_cannot_inject_fields_and_is_encoded(self):
        self.rspamd.mode, self.rspamd.subject = "rewrite subject", "[SPAM] h\u00e9\r\nBcc: eve@example.net"
        self.assertRegex(await self.send(), QUEUED)
        stored = self.stored()
        self.assertNotIn(b"\r\nBcc:", stored)
        self.assertIn(b"\r\nSubject: =?utf-8?", stored)

    async def test_the_senders_own_spam_fields_are_removed(self):
        forged = b"X-Spam-Status: No, score=-100\r\nX-Spam: No\r\n"
        self.rspamd.mode = "add header"
        self.assertRegex(await self.send(message(extra=forged)), QUEUED)
        self.assertNotIn(b"score=-100", self.stored())
        self.assertNotIn(b"X-Spam: No", self.stored())


class RequestTests(SpamTestCase):
    spool_threshold = 512

    async def test_the_envelope_goes_in_rspamds_headers(self):
        reply = await self.send()
        queue_id = QUEUED.match(reply).group(1).decode()
        (request,) = self.rspamd.requests
        self.assertEqual(request.path, "/checkv2")
        self.assertEqual(request.headers["From"], ["bob@example.net"])
        self.assertEqual(request.headers["Rcpt"], ["alice@example.test"])
        self.assertEqual(request.headers["Ip"], ["192.0.2.7"])
        self.assertEqual(request.headers["Helo"], ["client.example.net"])
        self.assertEqual(request.headers["Queue-Id"], [queue_id])
        self.assertEqual(request.headers["Mta-Name"], [HOST])

    async def test_each_recipient_goes_as_the_client_named_it_not_where_aliases_lead(self):
        self.connect()
        self.say(b"EHLO client.example.net\r\nMAIL FROM:<bob@example.net>\r\n")
        for recipient in (b"alice@example.test", b"team@example.test", b"Carol@example.test"):
            self.assertEqual(self.say(b"RCPT TO:<" + recipient + b">\r\n"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        self.assertRegex(await self.answer(message() + b".\r\n"), QUEUED)
        (request,) = self.rspamd.requests
        self.assertEqual(request.headers["Rcpt"], ["alice@example.test", "team@example.test", "Carol@example.test"])

    async def test_without_a_resolver_no_hostname_is_claimed(self):
        self.assertRegex(await self.send(), QUEUED)
        self.assertNotIn("Hostname", self.rspamd.requests[0].headers)

    async def test_a_spooled_body_is_streamed_whole(self):
        big = message(subject="big").replace(b"Hello.\r\n", b"line of the body\r\n" * 2000)
        self.assertRegex(await self.send(big), QUEUED)
        (request,) = self.rspamd.requests
        self.assertEqual(request.headers["Content-Length"], [str(len(request.body))])
        self.assertTrue(request.body.startswith(b"Return-Path: <bob@example.net>\nReceived: from"))
        self.assertTrue(request.body.endswith(b"\n\n" + b"line of the body\n" * 2000), request.body[-100:])

    async def test_the_null_sender_is_sent_as_brackets(self):
        self.assertRegex(await self.send(sender=""), QUEUED)
        self.assertEqual(self.rspamd.requests[0].headers["From"], ["<>"])


class SkippedTests(SpamTestCase):
    async def test_mail_from_a_trusted_network_is_not_scanned(self):
        self.peer = IPv4Address("TCP", "127.0.0.1", 40000)
        self.assertRegex(await self.send(), QUEUED)
        self.assertEqual(self.rspamd.requests, [])
        self.assertNotIn(b"X-Spam", self.stored())


class FailureTests(SpamTestCase):
    """rspamd failing never loses the message: it is delivered, marked unchecked."""

    async def assert_delivered_unchecked(self, mode: str) -> None:
        self.rspamd.mode = mode
        self.assertRegex(await self.send(), QUEUED)
        self.assertTrue(self.stored().startswith(b"X-Spam-Status: Unchecked ("), self.stored()[:200])
        self.assertEqual(self.store.folders, [[names.INBOX]])

    async def test_garbage(self):
        await self.assert_delivered_unchecked("garbage")

    async def test_http_500(self):
        await self.assert_delivered_unchecked("500")

    async def test_connection_closed(self):
        await self.assert_delivered_unchecked("close")

    async def test_an_unknown_action(self):
        await self.assert_delivered_unchecked("do something odd")

    async def test_rspamd_down(self):
        self.ctx = make_context(
            dataclasses.replace(self.config, spam=dataclasses.replace(self.config.spam, rspamd="http://127.0.0.1:1")),
            store=self.store, directory=FakeDirectory(), checker=self.checker, tls_options=object(), clock=self.clock)
        self.assertRegex(await self.send(), QUEUED)
        self.assertTrue(self.stored().startswith(b"X-Spam-Status: Unchecked ("), self.stored()[:200])

    async def test_timeout(self):
        self.rspamd.mode = "hang"
        self.connect()
        self.say(b"EHLO client.example.net\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
                 b"DATA\r\n")
        self.transport.clear()
        self.server.dataReceived(message() + b".\r\n")
        await self.rspamd.received()
        self.assertEqual(self.transport.value(), b"")  # no 250 before rspamd answered
        self.clock.advance(TIMEOUT)
        self.assertRegex(await replied(self), QUEUED)
        self.assertTrue(self.stored().startswith(b"X-Spam-Status: Unchecked (no answer in 7s)\r\n"), self.stored()[:200])


class TempfailTests(SpamTestCase):
    on_error = "tempfail"

    async def test_a_failed_scan_is_451(self):
        self.rspamd.mode = "500"
        self.assertEqual(await self.send(), replies.SPAM_UNCHECKED.wire())
        self.assertEqual(self.store.calls, [])


class ReloadTests(SpamTestCase):
    """``[spam] on_error`` changed by a SIGHUP applies to the next message (the rspamd address takes a restart)."""

    async def test_on_error_from_a_reload_applies_to_the_next_failed_scan(self):
        self.rspamd.mode = "500"
        self.assertRegex(await self.send(), QUEUED)  # accept: delivered unchecked
        config = self.ctx.live.current
        self.ctx.live.replace(dataclasses.replace(config, spam=dataclasses.replace(config.spam, on_error="tempfail")))
        self.assertEqual(await self.send(), replies.SPAM_UNCHECKED.wire())
        self.assertEqual(len(self.store.calls), 1)


class AuthenticationResultsTests(SenderAuthTestCase):
    """rspamd sees the message as it will be stored, our Authentication-Results field on top, and the
    client's name as the test DNS confirms it."""

    def setUp(self) -> None:
        self.rspamd = FakeRspamd()
        self.url = self.rspamd.listen(self)
        super().setUp()
        resolver = make_resolver(configuration.DNSConfig(nameservers=(f"127.0.0.1:{self.dns.port}",), timeout=2))
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), resolver=resolver, clock=self.clock)
        self.zone.add("7.2.0.192.in-addr.arpa", "PTR", "spoofed.example.org.", "Client.Example.NET.")
        self.zone.add("client.example.net", "A", "198.51.100.9", "192.0.2.7")
        self.zone.add("spoofed.example.org", "A", "198.51.100.10")

    def make_config(self, **auth):
        return dataclasses.replace(super().make_config(**auth), spam=configuration.SpamConfig(rspamd=self.url))

    async def scanned(self, data: bytes = message()) -> bytes:
        """Send *data*; the body rspamd was sent (the reply is a 250)."""
        self.connect()
        self.say(b"EHLO client.example.net\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
                 b"DATA\r\n")
        self.transport.clear()
        self.server.dataReceived(data + b".\r\n")
        self.assertRegex(await replied(self), QUEUED)
        return self.rspamd.requests[-1].body

    async def test_the_hostname_is_the_ptr_name_whose_address_is_the_clients(self):
        await self.scanned()
        self.assertEqual(self.rspamd.requests[0].headers["Hostname"], ["client.example.net"])

    async def test_the_hostname_is_unknown_when_no_ptr_name_has_the_address(self):
        self.zone.add("client.example.net", "AAAA", "2001:db8::7")  # an address, but not this one
        self.zone.fail("client.example.net")
        await self.scanned()
        self.assertEqual(self.rspamd.requests[0].headers["Hostname"], ["unknown"])

    async def test_the_name_is_looked_up_once_per_connection(self):
        await self.scanned()
        self.say(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        self.transport.clear()
        self.server.dataReceived(message(subject="again") + b".\r\n")
        self.assertRegex(await replied(self), QUEUED)
        self.assertEqual([r.headers["Hostname"] for r in self.rspamd.requests], [["client.example.net"]] * 2)
        self.assertEqual(self.zone.asked.count("7.2.0.192.in-addr.arpa."), 1)

    async def test_rspamd_is_not_sent_the_forged_results_we_remove(self):
        forged = (f"Authentication-Results: {HOST}; dkim=pass header.d=example.net\r\n"
                  "Authentication-Results: elsewhere.example; spf=pass\r\nX-Spam: No\r\n").encode()
        body = await self.scanned(message(extra=forged))
        self.assertEqual(body.count(b"Authentication-Results: " + HOST.encode()), 1, body[:400])
        self.assertNotIn(b"header.d=example.net\n", body)
        self.assertIn(b"\nAuthentication-Results: elsewhere.example; spf=pass\n", body)
        self.assertNotIn(b"X-Spam: No", body)
        self.assertEqual(self.rspamd.requests[0].headers["Content-Length"], [str(len(body))])

    async def test_rspamd_gets_the_message_with_our_authentication_results(self):
        body = await self.scanned()
        self.assertTrue(body.startswith(b"Return-Path: <bob@example.net>\nAuthentication-Results: " + HOST.encode()
                                        + b";\n\tspf=pass"), body[:200])
        stored = below_return_path(self.store.calls[-1][1])
        self.assertRegex(stored, rb"\AAuthentication-Results: [^\r]+;\r\n(\t[^\r]*\r\n)+X-Spam-Status: No")


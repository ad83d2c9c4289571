"""Rate limits and connection hygiene on port 25, on a clock the tests move.

Every limit answers ``421 4.7.0`` and closes (RFC 5321 3.8): a real MTA
keeps the message queued and comes back later, so nothing is lost.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet.address import IPv4Address

from mailsrv.smtp import replies
from support import audit_events, make_context
from test_smtp_session import HOST, FakeDirectory, SMTPTestCase

OTHER = IPv4Address("TCP", "198.51.100.4", 40000)
GREETING = replies.GREETING(host=HOST).wire()
ENVELOPE = b"EHLO client.example.net\r\nMAIL FROM:<x@remote.test>\r\n"


class LimitsTestCase(SMTPTestCase):
    #: ``[limits]`` keys of the test case.
    LIMITS: dict[str, Any] = {}

    def setUp(self) -> None:
        super().setUp()
        self.config = dataclasses.replace(self.config, limits=dataclasses.replace(self.config.limits, **self.LIMITS))
        self.ctx = make_context(
            self.config, store=self.store, directory=FakeDirectory(), checker=self.checker, tls_options=object(),
            clock=self.clock,
        )

    def rejections(self) -> list[tuple[str, str]]:
        """Stage and reply of each refusal in the audit log."""
        return [(e["result"], e["reply"]) for e in audit_events(list(self.log), "rejection")]

    def assert_closed_with(self, output: bytes, reply: replies.Reply) -> None:
        self.assertTrue(output.endswith(reply.wire()), output)
        self.assertTrue(self.transport.disconnecting)


class ConnectionRate(LimitsTestCase):
    LIMITS = {"smtp_connections_per_ip_minute": 3}

    def test_more_connections_per_minute_than_the_limit_get_421(self):
        for _ in range(3):
            self.assertEqual(self.connect(), GREETING)
        self.assert_closed_with(self.connect(), replies.CONNECTION_RATE)
        self.assertEqual(self.connect(peer=OTHER), GREETING)  # another address is not held up
        self.clock.advance(60)
        self.assertEqual(self.connect(), GREETING)

    def test_exempt_networks_are_not_counted(self):
        loopback = IPv4Address("TCP", "127.0.0.1", 40000)  # in rates_exempt_networks by default
        for _ in range(5):
            self.assertEqual(self.connect(peer=loopback), GREETING)

    def test_submission_is_not_rate_limited_here(self):
        for _ in range(5):
            self.assertEqual(self.connect("submission"), GREETING)


class MessageAndRecipientRates(LimitsTestCase):
    LIMITS = {"smtp_messages_per_ip_hour": 2, "smtp_recipients_per_ip_hour": 3}

    def test_messages_per_hour(self):
        for _ in range(2):
            self.connect()
            self.assertTrue(self.say(ENVELOPE).endswith(b"250 2.1.0 Ok\r\n"))
        self.connect()
        self.assert_closed_with(self.say(ENVELOPE), replies.MESSAGE_RATE)
        self.assertEqual(self.rejections(), [("mail", replies.MESSAGE_RATE.wire().decode().strip())])
        self.clock.advance(3600)
        self.connect()
        self.assertTrue(self.say(ENVELOPE).endswith(b"250 2.1.0 Ok\r\n"))

    def test_recipients_per_hour(self):
        self.connect()
        self.say(ENVELOPE)
        for _ in range(3):
            self.assertEqual(self.say(b"RCPT TO:<bob@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.assert_closed_with(self.say(b"RCPT TO:<bob@example.test>\r\n"), replies.RECIPIENT_RATE)


class PerConnection(LimitsTestCase):
    LIMITS = {"smtp_messages_per_connection": 2, "smtp_recipients_per_connection": 3}

    def test_messages_per_connection(self):
        self.connect()
        self.ehlo()
        for _ in range(2):
            self.assertEqual(self.say(b"MAIL FROM:<x@remote.test>\r\nRSET\r\n"), b"250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n")
        self.assert_closed_with(self.say(b"MAIL FROM:<x@remote.test>\r\n"), replies.MESSAGES_PER_CONNECTION)

    def test_exempt_networks_have_no_per_connection_limit(self):
        self.connect(peer=IPv4Address("TCP", "::1", 40000))
        self.ehlo()
        for _ in range(3):
            self.assertEqual(self.say(b"MAIL FROM:<x@remote.test>\r\nRSET\r\n"), b"250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n")

    def test_recipients_per_connection(self):
        self.connect()
        self.say(ENVELOPE)
        self.say(b"RCPT TO:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\nRSET\r\nMAIL FROM:<x@remote.test>\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.assert_closed_with(self.say(b"RCPT TO:<bob@example.test>\r\n"), replies.RECIPIENTS_PER_CONNECTION)


class AdvertisedLimits(LimitsTestCase):
    """RFC 9422: EHLO names the limits we enforce, with the values we enforce."""

    LIMITS = {"smtp_messages_per_connection": 2, "max_recipients": 2}

    def test_rcptmax_and_mailmax_are_the_enforced_limits(self):
        self.connect()
        self.assertIn(b"250-LIMITS RCPTMAX=2 MAILMAX=2\r\n", self.ehlo())
        self.say(b"MAIL FROM:<x@remote.test>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<bob@example.test>\r\n")
        self.assertEqual(self.say(b"RCPT TO:<carol@example.test>\r\n"), replies.TOO_MANY_RECIPIENTS.wire())
        self.assertEqual(self.say(b"RSET\r\nMAIL FROM:<x@remote.test>\r\nRSET\r\n"),
                         b"250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n250 2.0.0 Ok\r\n")
        self.assert_closed_with(self.say(b"MAIL FROM:<x@remote.test>\r\n"), replies.MESSAGES_PER_CONNECTION)

    def test_an_exempt_client_is_told_no_mailmax(self):
        self.connect(peer=IPv4Address("TCP", "127.0.0.1", 40000))
        self.assertIn(b"250-LIMITS RCPTMAX=2\r\n", self.ehlo())


class NoMessagesPerConnection(LimitsTestCase):
    LIMITS = {"smtp_messages_per_connection": 0}

    def test_no_limit_no_mailmax(self):
        self.connect()
        self.assertIn(b"250-LIMITS RCPTMAX=5\r\n", self.ehlo())

class DictionaryAttack(LimitsTestCase):
    LIMITS = {"smtp_failed_recipients_before_delay": 1, "smtp_failed_recipients": 4}

    def unknown(self, n: int) -> bytes:
        return b"RCPT TO:<nobody%d@example.test>\r\n" % n

    def test_unknown_recipients_are_answered_later_and_later_then_421(self):
        self.connect()
        self.say(ENVELOPE)
        unknown = replies.USER_UNKNOWN(address="nobody0@example.test").wire()
        self.assertEqual(self.say(self.unknown(0)), unknown)
        for n, delay in ((1, 1), (2, 2)):
            self.assertEqual(self.say(self.unknown(n)), b"")
            self.clock.advance(delay - 0.5)
            self.assertEqual(self.transport.value(), b"")
            self.clock.advance(0.5)
            self.assertEqual(self.transport.value(), replies.USER_UNKNOWN(address=f"nobody{n}@example.test").wire())
        self.assertEqual(self.say(b"RCPT TO:<bob@example.test>\r\n"), b"250 2.1.5 Ok\r\n")  # known ones at once
        self.assert_closed_with(self.say(self.unknown(3)), replies.FAILED_RECIPIENTS)
        self.assertIn(b"nobody3@example.test", self.transport.value())  # its own 550 came first


class Pregreet(LimitsTestCase):
    LIMITS = {"pregreet_wait": 2}

    def test_a_client_that_waits_is_greeted_after_the_wait(self):
        self.assertEqual(self.connect(), b"")
        self.clock.advance(2)
        self.assertEqual(self.transport.value(), GREETING)
        self.assertTrue(self.ehlo().startswith(b"250-mx.example.test"))

    def test_a_client_that_talks_first_is_sent_away_unheard(self):
        self.connect()
        self.clock.advance(1)
        self.assertEqual(self.say(b"EHLO spam.example\r\nMAIL FROM:<x@remote.test>\r\n"), b"")
        self.clock.advance(1)
        self.assert_closed_with(self.transport.value(), replies.PREGREET(host=HOST))
        self.assertNotIn(b"250", self.transport.value())
        self.assertEqual(self.rejections(), [("connect", replies.PREGREET(host=HOST).wire().decode().strip())])

    def test_submission_greets_at_once(self):
        self.assertEqual(self.connect("submission"), GREETING)


class LineTimeout(LimitsTestCase):
    def test_a_line_that_never_ends_times_out(self):
        # RFC 5321 4.5.3.2.7: five minutes waiting for a command, however it trickles in.
        self.connect()
        for _ in range(5):
            self.say(b"E")
            self.clock.advance(59)
        self.clock.advance(5)
        self.assert_closed_with(self.transport.value(), replies.TIMEOUT(host=HOST))

    def test_a_message_body_arriving_slowly_is_not_a_timeout(self):
        self.connect()
        self.say(ENVELOPE + b"RCPT TO:<bob@example.test>\r\nDATA\r\n")
        for _ in range(10):
            self.say(b"x" * 10)
            self.clock.advance(100)
        self.assertFalse(self.transport.disconnecting)



class TimeoutWhileTheServerWorks(LimitsTestCase):
    """RFC 5321 4.5.3.2.7: the timeout is the server's wait for the next command, not its own work.

    A reply the server holds (a dictionary attack's delay, a throttled login,
    slow checks or fsync) longer than ``smtp_timeout`` must still be sent:
    timed out after DATA, the client would retry a message already stored.
    """

    LIMITS = {"smtp_timeout": 2, "smtp_failed_recipients_before_delay": 0}

    def test_a_reply_held_longer_than_the_timeout_is_sent_and_the_session_goes_on(self):
        self.connect()
        self.say(ENVELOPE)
        for n in range(2):
            self.say(b"RCPT TO:<nobody%d@example.test>\r\n" % n)
            self.clock.advance(n + 1)
        self.transport.clear()
        self.say(b"RCPT TO:<nobody2@example.test>\r\n")
        self.clock.advance(2.5)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(0.5)
        self.assertEqual(self.transport.value(), replies.USER_UNKNOWN(address="nobody2@example.test").wire())
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1.9)  # then the wait for the next command starts from the reply
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(0.2)
        self.assert_closed_with(self.transport.value(), replies.TIMEOUT(host=HOST))


class Greylisting(LimitsTestCase):
    LIMITS = {"greylist": True, "greylist_delay": 300, "greylist_retry_window": 3600}
    RCPT = b"RCPT TO:<bob@example.test>\r\n"

    def attempt(self, peer: IPv4Address | None = None, sender: bytes = b"x@remote.test") -> bytes:
        """One new connection's RCPT reply for bob from *sender*."""
        self.connect(peer=peer)
        self.say(b"EHLO client.example.net\r\nMAIL FROM:<" + sender + b">\r\n")
        return self.say(self.RCPT)

    def test_a_new_triplet_must_come_back_after_the_delay(self):
        greylisted = replies.GREYLISTED.wire()
        self.assertEqual(self.attempt(), greylisted)
        self.clock.advance(299)
        self.assertEqual(self.attempt(), greylisted)  # too soon
        self.clock.advance(1)
        # Another host of the same /24 retries, as a sender farm does.
        self.assertEqual(self.attempt(IPv4Address("TCP", "192.0.2.200", 25)), b"250 2.1.5 Ok\r\n")
        self.clock.advance(86400)
        self.assertEqual(self.attempt(), b"250 2.1.5 Ok\r\n")  # known now
        self.assertEqual(self.attempt(sender=b"y@remote.test"), greylisted)  # another triplet

    def test_a_retry_too_late_starts_over(self):
        self.attempt()
        self.clock.advance(3600)
        self.assertEqual(self.attempt(), replies.GREYLISTED.wire())

    def test_exempt_networks_are_not_greylisted(self):
        self.assertEqual(self.attempt(IPv4Address("TCP", "127.0.0.1", 25)), b"250 2.1.5 Ok\r\n")

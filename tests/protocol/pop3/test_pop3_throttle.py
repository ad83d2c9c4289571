"""POP3 logins under the login throttle: held failures, then ``-ERR [AUTH]`` (RFC 3206 4) when locked out."""

from __future__ import annotations

from twisted.internet.address import IPv4Address

from mailsrv import config as configuration
from mailsrv.pop3 import replies
from support import FakeChecker, FakeTLS, make_context
from test_pop3 import LOGIN, POP3TestCase

ATTACKER = IPv4Address("TCP", "203.0.113.9", 40000)
OTHER = IPv4Address("TCP", "198.51.100.4", 40000)
GUESS = b"USER bob@example.test\r\nPASS guess\r\n"


class ThrottleTests(POP3TestCase):
    def setUp(self) -> None:
        super().setUp()
        auth = configuration.AuthConfig(throttle_delay=1, throttle_max_delay=2, throttle_failures_per_ip=3)
        self.config = configuration.Config(data_dir=self.mktemp(), auth=auth)
        self.ctx = make_context(self.config, checker=FakeChecker(), tls_options=FakeTLS())
        self.store = self.ctx.store

    def test_failures_are_held_then_the_address_is_locked_out(self):
        self.connect(peer=ATTACKER)
        for delay in (1, 2, 2):
            self.assertEqual(self.say(GUESS), b"+OK Send PASS\r\n")
            self.clock.advance(delay)
            self.assertEqual(self.transport.value(), b"+OK Send PASS\r\n-ERR [AUTH] Invalid credentials\r\n")
        self.assertEqual(self.say(LOGIN), b"+OK Send PASS\r\n-ERR " + replies.LOCKED_OUT + b"\r\n")
        self.assertEqual(replies.LOCKED_OUT, b"[AUTH] Too many failed logins, try again later")
        self.assertEqual([r for _, _, r in self.logins()], ["failed"] * 3 + ["locked"])
        self.connect(peer=OTHER)
        self.assertEqual(self.say(LOGIN), b"+OK Send PASS\r\n+OK Logged in.\r\n")

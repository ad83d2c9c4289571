"""SMTP AUTH under the login throttle: held failures, then ``454 4.7.0`` (RFC 4954 6) for a locked address."""

from __future__ import annotations

import base64

from twisted.internet.address import IPv4Address

from mailsrv.smtp import replies
from test_smtp_submission import AUTH_OK, PLAIN_OK, SubmissionTestCase

ATTACKER = IPv4Address("TCP", "203.0.113.9", 40000)
OTHER = IPv4Address("TCP", "198.51.100.4", 40000)
GUESS = b"AUTH PLAIN " + base64.b64encode(b"\0bob@example.test\0guess") + b"\r\n"
FAILED = replies.AUTH_FAILED.wire()


class ThrottleTests(SubmissionTestCase):
    def make_config(self, **auth):
        return super().make_config(
            throttle_delay=1, throttle_max_delay=4, throttle_failures_per_ip=4, throttle_failures_per_account=6,
            **auth,
        )

    def open_tls(self, peer: IPv4Address) -> None:
        self.peer = peer
        self.start_tls()

    def test_failures_are_held_longer_each_time_then_the_address_is_locked_out(self):
        self.open_tls(ATTACKER)
        for delay in (1, 2, 4):
            self.assertEqual(self.say(GUESS), b"")
            self.clock.advance(delay - 0.5)
            self.assertEqual(self.transport.value(), b"", delay)  # no reply yet: the reactor is free meanwhile
            self.clock.advance(0.5)
            self.assertEqual(self.transport.value(), FAILED)
        self.assertEqual(self.say(GUESS), b"")
        self.clock.advance(4)
        self.assertEqual(self.transport.value(), FAILED)  # the 4th failure locks the address
        # Even the right password is refused now, without being checked.
        self.assertEqual(self.say(PLAIN_OK), b"454 4.7.0 Too many failed logins, try again later\r\n")
        self.assertEqual([r for _, ip, r in self.logins()], ["failed"] * 4 + ["locked"])
        self.assertEqual({ip for _, ip, _ in self.logins()}, {"203.0.113.9"})

    def test_another_user_from_another_address_logs_in_during_the_lock_out(self):
        self.open_tls(ATTACKER)
        for _ in range(4):
            self.say(GUESS)
            self.clock.advance(4)
        self.open_tls(OTHER)
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)

    def test_the_lock_out_ends(self):
        self.open_tls(ATTACKER)
        for _ in range(4):
            self.say(GUESS)
            self.clock.advance(4)
        self.clock.advance(self.config.auth.throttle_lockout)
        self.open_tls(ATTACKER)
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)

    def test_an_account_guessed_from_many_addresses_is_locked(self):
        for n in range(6):
            self.open_tls(IPv4Address("TCP", f"203.0.113.{n}", 40000))
            self.say(GUESS)
            self.clock.advance(4)
        self.open_tls(OTHER)
        self.assertEqual(self.say(GUESS), replies.AUTH_LOCKED.wire())
        self.assertEqual(self.say(PLAIN_OK), AUTH_OK)  # alice is another account
        self.assertEqual(self.ctx.throttle.accounts.get("bob@example.test", self.clock.seconds()).count, 6)


"""IMAP logins under the login throttle: held failures, then ``NO [UNAVAILABLE]`` (RFC 5530 3) when locked out."""

from __future__ import annotations

from twisted.internet.interfaces import ISSLTransport
from zope.interface import alsoProvides

from imap_harness import CREDENTIALS, LOOPBACK, REMOTE, IMAPTestCase
from mailsrv import config as configuration
from mailsrv.imap.responses import LOGIN_LOCKED
from support import TCPStringTransport, make_context


class ThrottleTests(IMAPTestCase):
    def setUp(self) -> None:
        super().setUp()
        config = self.ctx.config
        auth = configuration.AuthConfig(
            allow_plaintext_auth_on_loopback=True, throttle_delay=1, throttle_failures_per_ip=3,
        )
        self.ctx = make_context(configuration.Config(data_dir=config.data_dir, auth=auth, imap=config.imap))

    async def test_failures_are_held_then_the_address_is_locked_out(self) -> None:
        session = self.open(LOOPBACK)
        session.received()
        for n, delay in enumerate((1, 2, 4)):
            self.assertEqual(session.send(b"a%d LOGIN bob@example.test guess\r\n" % n), b"")
            session.clock.advance(delay - 0.5)
            self.assertEqual(session.received(), b"")  # held, and nothing blocks meanwhile
            session.clock.advance(0.5)
            self.assertEqual(session.received(), b"a%d NO [AUTHENTICATIONFAILED] Authentication failed\r\n" % n)
        reply = await session.command(b"b LOGIN " + CREDENTIALS)
        self.assertEqual(reply, b"b NO " + LOGIN_LOCKED + b"\r\n")
        self.assertEqual(LOGIN_LOCKED, b"[UNAVAILABLE] Too many failed logins, try again later")
        # Another user from another address is not held up.
        transport = TCPStringTransport(peerAddress=REMOTE)
        alsoProvides(transport, ISSLTransport)
        other = self.open(REMOTE, transport)
        other.received()
        self.assertEqual(await other.command(b"c LOGIN " + CREDENTIALS), b"c OK LOGIN succeeded\r\n")

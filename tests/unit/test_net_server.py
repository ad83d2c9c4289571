"""What every protocol's base does for it: holding a login until the session ends."""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv.listeners import Kind
from mailsrv.pop3.server import make_factory
from support import make_context


class LoginHoldTests(unittest.TestCase):
    def setUp(self) -> None:
        self.server = make_factory(make_context(configuration.Config(data_dir=self.mktemp())), Kind.POP3,
                                   task.Clock()).buildProtocol(None)
        self.server.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4000)))
        self.logouts: list[str] = []

    def logout(self) -> None:
        self.logouts.append("out")

    def test_a_held_login_is_released_once_when_the_connection_ends(self):
        self.server.session.user = "alice@example.test"
        self.assertTrue(self.server.hold_login(self.logout))
        self.assertEqual(self.logouts, [])
        self.server.connectionLost(None)
        self.assertEqual((self.logouts, self.server.session.user), (["out"], None))
        self.server.release_login()
        self.assertEqual(self.logouts, ["out"])

    def test_a_login_finished_after_the_connection_closed_is_released_at_once(self):
        self.server.connectionLost(None)
        self.assertFalse(self.server.hold_login(self.logout))
        self.assertEqual(self.logouts, ["out"])

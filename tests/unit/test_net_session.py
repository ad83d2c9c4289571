"""The session: the client's address, TLS state, and where a password may be sent."""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from zope.interface import alsoProvides

from mailsrv.listeners import Kind
from mailsrv.net.session import Networks, Session


def session(peer) -> Session:
    return Session(Kind.IMAP, StringTransport(peerAddress=peer))


class PasswordGateTests(unittest.TestCase):
    def test_plain_tcp_is_not_secure_even_on_loopback_by_default(self):
        self.assertFalse(session(IPv4Address("TCP", "127.0.0.1", 1)).may_send_password(False))

    def test_tls_transport_is_secure(self):
        s = session(IPv4Address("TCP", "192.0.2.1", 1))
        alsoProvides(s.transport, ISSLTransport)
        self.assertTrue(s.tls_active)
        self.assertTrue(s.may_send_password(False))

    def test_wrapped_transport_after_starttls_is_secure(self):
        s = session(IPv4Address("TCP", "192.0.2.1", 1))
        s.transport.TLS = True  # what tcp.Connection sets on startTLS, seen through a wrapper
        self.assertTrue(s.may_send_password(False))

    def test_our_own_starttls_flag_counts(self):
        s = session(IPv4Address("TCP", "192.0.2.1", 1))
        s.tls_started = True
        self.assertTrue(s.may_send_password(False))

    def test_loopback_allowed_only_when_configured(self):
        self.assertTrue(session(IPv6Address("TCP", "::1", 1)).may_send_password(True))
        self.assertTrue(session(IPv4Address("TCP", "127.0.0.5", 1)).may_send_password(True))
        self.assertFalse(session(IPv4Address("TCP", "192.0.2.1", 1)).may_send_password(True))

    def test_peer_ip_is_read_when_asked(self):
        s = session(IPv4Address("TCP", "192.0.2.1", 1))
        s.transport.peerAddr = IPv4Address("TCP", "203.0.113.7", 1)  # a PROXY header arrived
        self.assertEqual(s.peer_ip, "203.0.113.7")


class NetworksTests(unittest.TestCase):
    def test_membership_of_peer_addresses_as_text(self) -> None:
        networks = Networks(["127.0.0.0/8", "2001:db8::/32", "192.0.2.1"])
        for inside in ("127.0.0.1", "127.9.9.9", "::ffff:127.0.0.1", "2001:db8::1", "2001:db8::1%lo", "192.0.2.1"):
            self.assertIn(inside, networks)
        for outside in ("10.0.0.1", "::1", "192.0.2.2", "2001:db9::1", "localhost", ""):
            self.assertNotIn(outside, networks)
        self.assertNotIn("127.0.0.1", Networks([]))

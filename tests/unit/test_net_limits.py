"""Connection limits: in total and per client address, and what each protocol says when full."""

from __future__ import annotations

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv.imap.server import make_factory as imap_factory
from mailsrv.listeners import Kind
from mailsrv.net.limits import ConnectionLimits
from mailsrv.pop3.server import make_factory as pop3_factory
from mailsrv.smtp.server import make_factory as smtp_factory
from support import audit_events, make_context


class CountingTests(unittest.TestCase):
    def test_per_ip_and_total(self):
        limits = ConnectionLimits(total=3, per_ip=2)
        self.assertIsNone(limits.admit("192.0.2.1"))
        self.assertIsNone(limits.admit("192.0.2.1"))
        self.assertEqual(limits.admit("192.0.2.1"), "too many connections from your address")
        self.assertIsNone(limits.admit("192.0.2.2"))
        self.assertEqual(limits.admit("192.0.2.3"), "too many connections")
        limits.release("192.0.2.1")
        self.assertIsNone(limits.admit("192.0.2.3"))
        self.assertEqual(limits.open, 3)

    def test_zero_means_no_limit(self):
        limits = ConnectionLimits(total=0, per_ip=0)
        for _ in range(10_000):
            self.assertIsNone(limits.admit("192.0.2.1"))


class RefusalTests(unittest.TestCase):
    """The connection past the limit gets the protocol's temporary refusal instead of a greeting."""

    def setUp(self) -> None:
        config = configuration.Config(
            data_dir=self.mktemp(), limits=configuration.LimitsConfig(max_connections_per_ip=2)
        )
        self.ctx = make_context(config)
        self.clock = task.Clock()

    def open(self, factory, kind: Kind, ip: str = "192.0.2.7") -> StringTransport:
        transport = StringTransport(peerAddress=IPv4Address("TCP", ip, 4000))
        server = factory(self.ctx, kind, self.clock).buildProtocol(None)
        server.makeConnection(transport)
        self.addCleanup(server.connectionLost, None)
        return transport

    def third(self, factory, kind: Kind) -> StringTransport:
        self.open(factory, kind)
        self.open(factory, kind)
        return self.open(factory, kind)

    def test_smtp(self):
        refused = self.third(smtp_factory, Kind.SMTP)
        self.assertEqual(refused.value(), b"421 4.7.0 localhost Error: too many connections, try again later\r\n")
        self.assertTrue(refused.disconnecting)

    def test_pop3(self):
        refused = self.third(pop3_factory, Kind.POP3)
        self.assertEqual(refused.value(), b"-ERR [SYS/TEMP] Too many connections, try again later\r\n")
        self.assertTrue(refused.disconnecting)

    def test_imap(self):
        refused = self.third(imap_factory, Kind.IMAP)
        self.assertEqual(refused.value(), b"* BYE Too many connections, try again later\r\n")
        self.assertTrue(refused.disconnecting)

    def test_limit_is_shared_by_every_listener_and_per_address(self):
        self.open(smtp_factory, Kind.SMTP)
        self.open(imap_factory, Kind.IMAP)
        self.assertTrue(self.open(pop3_factory, Kind.POP3).disconnecting)
        self.assertFalse(self.open(pop3_factory, Kind.POP3, ip="192.0.2.8").disconnecting)

    def test_a_closed_connection_gives_its_place_back(self):
        transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 4000))
        server = smtp_factory(self.ctx, Kind.SMTP, self.clock).buildProtocol(None)
        server.makeConnection(transport)
        self.open(smtp_factory, Kind.SMTP)
        server.connectionLost(None)
        self.assertFalse(self.open(smtp_factory, Kind.SMTP).disconnecting)

    def test_refusal_is_audited(self):
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import globalLogPublisher

        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.third(smtp_factory, Kind.SMTP)
        (event,) = audit_events(list(events), "rejection")
        self.assertEqual((event["result"], event["client_ip"]), ("connect", "192.0.2.7"))

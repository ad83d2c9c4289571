"""A SIGHUP's configuration (:mod:`mailsrv.config.live`) on port 25: a new session works by the
new values while a session opened before goes on; the counters kept before the reload still count."""

from __future__ import annotations

import dataclasses
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address

from mailsrv.listeners import Kind
from mailsrv.smtp import replies
from mailsrv.smtp.server import make_factory
from support import make_context
from test_smtp_session import FakeDirectory, SMTPTestCase, TLSStringTransport

ENVELOPE = b"EHLO client.example.net\r\nMAIL FROM:<bob@remote.test>\r\n"
RCPT = b"RCPT TO:<alice@example.test>\r\n"
OK = b"250 2.1.5 Ok\r\n"


class Session:
    """One client connection to the context's port 25 factory."""

    def __init__(self, case: "ReloadTests", peer: IPv4Address | None = None) -> None:
        self.transport = TLSStringTransport(peerAddress=peer or case.peer)
        self.server = make_factory(case.ctx, Kind.SMTP, case.clock).buildProtocol(None)
        self.server.makeConnection(self.transport)

    def say(self, data: bytes) -> bytes:
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()


class ReloadTests(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.clock = task.Clock()
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), clock=self.clock)

    def reload(self, **limits: Any) -> None:
        """What a SIGHUP does with a file whose ``[limits]`` now say *limits*."""
        config = self.ctx.live.current
        self.ctx.live.replace(dataclasses.replace(config, limits=dataclasses.replace(config.limits, **limits)))

    def test_a_new_session_takes_a_lower_recipient_limit_and_an_open_one_goes_on(self):
        old = Session(self)
        old.say(ENVELOPE)
        self.assertEqual(old.say(RCPT * 3), OK * 3)
        self.reload(max_recipients=2)
        new = Session(self)
        self.assertIn(b"250-LIMITS RCPTMAX=2 ", new.say(b"EHLO client.example.net\r\n"))
        new.say(b"MAIL FROM:<bob@remote.test>\r\n")
        self.assertEqual(new.say(RCPT * 3), OK * 2 + replies.TOO_MANY_RECIPIENTS.wire())
        self.assertFalse(old.transport.disconnecting)
        self.assertEqual(old.say(b"DATA\r\n")[:4], b"354 ")
        self.assertEqual(old.say(b"Subject: x\r\n\r\nbody\r\n.\r\n")[:4], b"250 ")
        self.assertEqual(len(self.store.calls), 1)

    def test_a_lower_connection_limit_refuses_the_next_connection_and_keeps_the_open_ones(self):
        open_ones = [Session(self), Session(self)]
        self.reload(max_connections_per_ip=2)
        refused = Session(self)
        self.assertEqual(refused.transport.value(),
                         b"421 4.7.0 mx.example.test Error: too many connections, try again later\r\n")
        for session in open_ones:
            self.assertEqual(session.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")

    def test_connections_counted_before_a_lower_rate_count_against_it(self):
        for _ in range(2):
            Session(self)
        self.reload(smtp_connections_per_ip_minute=2)
        refused = Session(self)
        self.assertEqual(refused.transport.value(), replies.CONNECTION_RATE.wire())
        self.reload(smtp_connections_per_ip_minute=0)
        self.assertEqual(Session(self).transport.value()[:4], b"220 ")

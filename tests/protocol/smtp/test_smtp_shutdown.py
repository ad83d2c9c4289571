"""A stopping server and its SMTP sessions: 421 to the idle, DATA in progress finishes (RFC 5321 3.8)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from mailsrv.net.shutdown import LINGER
from mailsrv.smtp import replies
from test_smtp_inbound import MESSAGE, QUEUED
from test_smtp_session import HOST, SMTPTestCase

GRACE = 10
SHUTTING_DOWN = replies.SHUTTING_DOWN(host=HOST).wire()


class ShutdownTests(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()
        self.ehlo()

    def stop(self) -> defer.Deferred[None]:
        """What SIGTERM does to the open sessions, after the listeners stopped."""
        self.transport.clear()
        return defer.Deferred.fromCoroutine(self.ctx.sessions.close_all(GRACE, self.clock))

    def gone(self) -> None:
        """The client's side of the close arrives."""
        self.server.connectionLost(Failure(ConnectionDone()))

    def start_data(self) -> None:
        self.say(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n")
        self.assertEqual(self.say(b"DATA\r\n"), b"354 End data with <CR><LF>.<CR><LF>\r\n")

    def test_idle_session_is_told_421_4_3_2_and_closed(self):
        stopped = self.stop()
        self.assertEqual(self.transport.value(), SHUTTING_DOWN)
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(stopped)
        self.gone()
        self.successResultOf(stopped)

    def test_open_transaction_between_commands_is_dropped_with_421(self):
        self.say(b"MAIL FROM:<bob@example.net>\r\n")
        self.stop()
        self.assertEqual(self.transport.value(), SHUTTING_DOWN)
        self.gone()
        self.assertEqual(self.store.calls, [])

    def test_data_in_progress_finishes_with_250_then_421(self):
        self.start_data()
        head, tail = MESSAGE[:20], MESSAGE[20:]
        self.say(head)
        stopped = self.stop()
        self.assertEqual(self.transport.value(), b"")
        self.assertFalse(self.transport.disconnecting)
        reply = self.say(tail + b"QUIT\r\n")
        queued, goodbye = reply.split(b"\r\n", 1)
        self.assertRegex(queued + b"\r\n", QUEUED)
        self.assertEqual(goodbye, SHUTTING_DOWN)  # the pipelined QUIT is not run
        self.assertEqual(len(self.store.calls), 1)
        self.gone()
        self.successResultOf(stopped)

    def test_delivery_still_being_stored_gets_its_250_first(self):
        self.store.manual = True
        self.start_data()
        self.say(MESSAGE)
        self.stop()
        self.assertEqual(self.transport.value(), b"")
        self.store.pending.pop().callback("stored")
        queued, goodbye = self.transport.value().split(b"\r\n", 1)
        self.assertRegex(queued + b"\r\n", QUEUED)
        self.assertEqual(goodbye, SHUTTING_DOWN)

    def test_data_still_arriving_after_the_grace_is_cut_with_421(self):
        self.start_data()
        self.say(MESSAGE[:20])
        stopped = self.stop()
        self.clock.advance(GRACE)
        self.assertEqual(self.transport.value(), SHUTTING_DOWN)
        self.assertTrue(self.transport.disconnecting)
        self.assertNoResult(stopped)
        self.clock.advance(LINGER)  # the client does not even take the close
        self.assertTrue(self.transport.disconnected)
        self.assertNoResult(stopped)  # until the aborted session has ended
        self.gone()
        self.successResultOf(stopped)
        self.assertEqual(self.store.calls, [])

    def test_a_connection_made_while_stopping_is_told_after_its_greeting(self):
        first = self.server
        self.stop()
        greeting = self.connect()
        self.assertEqual(greeting, b"220 mx.example.test ESMTP mailsrv\r\n" + SHUTTING_DOWN)
        self.gone()
        first.connectionLost(Failure(ConnectionDone()))

"""The command loop: order, waiting, yielding, flow control in both directions."""

from __future__ import annotations

from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailsrv.net.pump import CommandPump, ConnectionGone


class Echo(CommandPump):
    """A toy protocol: ``WAIT`` waits for the test, ``RAW n`` reads n raw octets, else echo."""

    commands_per_turn = 5

    def __init__(self, clock: task.Clock) -> None:
        super().__init__(max_line=100, lf_tolerant=False, idle_timeout=30, clock=clock)
        self.waits: list[defer.Deferred[None]] = []
        self.gone = False

    def greet(self) -> None:
        self.write(b"hello\r\n")

    async def command(self, line: bytes) -> None:
        if line == b"WAIT":
            d: defer.Deferred[None] = defer.Deferred()
            self.waits.append(d)
            await d
            self.write(b"waited\r\n")
        elif line.startswith(b"RAW "):
            wanted = int(line[4:])
            got = bytearray()

            def reader(data: bytes) -> tuple[int, bool]:
                take = data[: wanted - len(got)]
                got.extend(take)
                return len(take), len(got) == wanted

            await self.read_raw(reader)
            self.write(b"raw " + bytes(got) + b"\r\n")
        elif line == b"BOOM":
            raise ValueError("boom")
        else:
            self.write(line + b"\r\n")

    def line_too_long(self) -> None:
        self.write(b"too long\r\n")

    def command_failed(self, failure) -> None:
        failure.trap(ValueError)
        self.write(b"failed\r\n")

    def timed_out(self) -> None:
        self.write(b"bye\r\n")
        self.close()

    def ended(self, reason) -> None:
        self.gone = True


class PumpTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.transport = StringTransport()
        self.proto = Echo(self.clock)
        self.proto.makeConnection(self.transport)

    def sent(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def test_greets_and_registers_as_streaming_producer(self):
        self.assertEqual(self.sent(), b"hello\r\n")
        self.assertTrue(self.transport.streaming)

    def test_pipelined_commands_wait_for_the_one_before(self):
        self.sent()
        self.proto.dataReceived(b"a\r\nWAIT\r\nb\r\n")
        self.assertEqual(self.sent(), b"a\r\n")
        self.proto.waits[0].callback(None)
        self.assertEqual(self.sent(), b"waited\r\nb\r\n")

    def test_reading_pauses_while_a_command_waits_and_resumes_when_input_is_needed(self):
        self.proto.dataReceived(b"WAIT\r\n")
        self.assertEqual(self.transport.producerState, "producing")  # nothing waits behind it yet
        self.proto.dataReceived(b"x\r\n")
        self.assertEqual(self.transport.producerState, "paused")
        self.proto.waits[0].callback(None)
        self.assertEqual(self.transport.producerState, "producing")

    def test_yields_to_the_reactor_after_commands_per_turn(self):
        self.sent()
        self.proto.dataReceived(b"".join(b"%d\r\n" % i for i in range(12)))
        self.assertEqual(self.sent(), b"".join(b"%d\r\n" % i for i in range(5)))
        now = [c for c in self.clock.getDelayedCalls() if c.getTime() == self.clock.seconds()]
        self.assertEqual(len(now), 1)  # the rest waits for the next reactor turn
        self.clock.advance(0)
        self.assertEqual(self.sent(), b"".join(b"%d\r\n" % i for i in range(5, 12)))

    def test_no_command_runs_while_the_client_does_not_read(self):
        self.sent()
        self.transport.producer.pauseProducing()  # the transport's buffer is full
        self.proto.dataReceived(b"a\r\nb\r\n")
        self.assertEqual(self.sent(), b"a\r\n")
        self.transport.producer.resumeProducing()
        self.assertEqual(self.sent(), b"b\r\n")

    def test_drain_waits_for_the_client_to_read(self):
        self.transport.producer.pauseProducing()
        waited = self.proto.drain()
        self.assertNoResult(waited)
        self.transport.producer.resumeProducing()
        self.successResultOf(waited)

    def test_raw_octets_then_lines_again(self):
        self.sent()
        self.proto.dataReceived(b"RAW 5\r\nhel")
        self.assertEqual(self.sent(), b"")
        self.proto.dataReceived(b"lo\r\nnext\r\n")
        self.assertEqual(self.sent(), b"raw hello\r\n\r\nnext\r\n")

    def test_over_long_line_is_answered_at_once(self):
        self.sent()
        self.proto.dataReceived(b"x" * 200)
        self.assertEqual(self.sent(), b"too long\r\n")
        self.proto.dataReceived(b"x" * 200 + b"\r\nok\r\n")
        self.assertEqual(self.sent(), b"ok\r\n")

    def test_a_failing_command_is_answered_and_the_loop_goes_on(self):
        self.sent()
        self.proto.dataReceived(b"BOOM\r\nafter\r\n")
        self.assertEqual(self.sent(), b"failed\r\nafter\r\n")

    def test_discard_input_drops_what_was_pipelined(self):
        self.sent()
        self.proto.dataReceived(b"WAIT\r\nsmuggled\r\n")
        self.proto.discard_input()
        self.proto.waits[0].callback(None)
        self.assertEqual(self.sent(), b"waited\r\n")

    def test_idle_timeout(self):
        self.sent()
        self.clock.advance(29)
        self.proto.dataReceived(b"a\r\n")
        self.clock.advance(29)
        self.assertEqual(self.sent(), b"a\r\n")
        self.clock.advance(2)
        self.assertEqual(self.sent(), b"bye\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(self.transport.producer)  # unregistered before closing (TLS needs it)

    def test_the_servers_own_work_is_no_idleness(self):
        """A command that takes longer than the timeout (a held reply, slow checks) still answers."""
        self.sent()
        self.proto.dataReceived(b"WAIT\r\n")
        self.clock.advance(100)
        self.assertFalse(self.transport.disconnecting)
        self.proto.waits[0].callback(None)
        self.assertEqual(self.sent(), b"waited\r\n")
        self.clock.advance(29)  # the wait for the next command counts from the reply
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(self.sent(), b"bye\r\n")

    def test_a_raw_read_that_stalls_times_out(self):
        self.sent()
        self.proto.dataReceived(b"RAW 5\r\nhe")
        self.clock.advance(30)
        self.assertEqual(self.sent(), b"bye\r\n")

    def test_a_client_that_stops_reading_times_out(self):
        self.sent()
        self.transport.producer.pauseProducing()
        self.assertNoResult(self.proto.drain())
        self.clock.advance(30)
        self.assertEqual(self.sent(), b"bye\r\n")

    def test_connection_lost_ends_a_waiting_read(self):
        self.proto.dataReceived(b"RAW 10\r\nabc")
        self.proto.connectionLost(None)
        self.assertTrue(self.proto.gone)
        self.proto.dataReceived(b"defghij\r\n")  # nothing runs after the end
        self.assertNotIn(b"raw", self.transport.value())

    def test_a_stopped_transport_ends_a_streaming_response(self):
        self.transport.producer.pauseProducing()
        waited = self.proto.drain()
        self.transport.producer.stopProducing()  # the connection is going away
        self.failureResultOf(waited, ConnectionGone)
        self.failureResultOf(self.proto.drain(), ConnectionGone)

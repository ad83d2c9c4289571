"""One command at a time, with flow control both ways: the base of every protocol here.

High-level approach (one coroutine per connection, :meth:`CommandPump._serve`):

- Input goes into one bounded :class:`~mailsrv.net.lines.LineBuffer`.  The
  loop takes a line, runs the protocol's :meth:`~CommandPump.command` for it
  and waits for it to finish, Deferreds included, before it takes the next:
  replies to pipelined commands come in order (RFC 2920 3, RFC 2449 6.6,
  RFC 3501 5.5) however long a command waits for the store or a password
  check.  A command may read more input itself (:meth:`~CommandPump.read_line`
  for a SASL response or IMAP's DONE, :meth:`~CommandPump.read_raw` for a
  literal or a DATA body).
- Reading from the socket stops while input waits behind a command that is
  still running (waiting for the store, a password check, the client to
  read), and resumes when the loop needs input, so a client pipelining
  without end costs one packet's worth of buffer, not memory without bound.
- After ``commands_per_turn`` commands in a row from the buffer, the loop
  yields to the reactor, so 10,000 pipelined commands in one packet cannot
  keep every other connection waiting.
- The protocol is registered as a streaming producer on its transport: when
  the client stops reading and the transport's buffer fills, no further
  command is run and :meth:`~CommandPump.drain` makes streaming responses
  (FETCH, RETR) wait, so a client that does not read never makes the server
  buffer without bound.
- The idle timeout counts from the last complete line (or raw input: a
  body, a literal), so a line that never ends times out too.  It runs
  only while the session waits for the client (its next line, more of a
  body, room to write): time the server spends on a command (a held
  reply, DNS, fsync) is not the client's idleness (RFC 5321 4.5.3.2.7).
- :meth:`~CommandPump.discard_input` throws away what was pipelined behind
  STARTTLS/STLS (RFC 3207 6, RFC 2595 3.1); :meth:`~CommandPump.start_deflate`
  turns what follows into DEFLATE both ways, input pipelined behind the
  command included (RFC 4978 3), inflated only as the loop reads it and at
  most :data:`INFLATE_PER_TURN` octets per reactor turn, with a sync flush
  on the turn after each batch of writes (:mod:`mailsrv.net.deflate`);
  :meth:`~CommandPump.close`
  unregisters the producer before closing, without which a TLS connection
  would never finish closing.
- A stopping server asks each connection to :meth:`~CommandPump.leave_when_idle`:
  one waiting for its next command gets the protocol's :meth:`~CommandPump.goodbye`
  at once, one running a command (a DATA body arriving) when that command
  is done (:mod:`mailsrv.net.shutdown`).

Twisted's own ``LineReceiver``-based servers run every line of a packet at
once and keep running commands while an earlier one waits
(docs/twisted-notes.rst, "Pipelining").
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from twisted.internet import defer, task
from twisted.internet.interfaces import IPushProducer, IReactorTime, ITCPTransport
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.net.deflate import CorruptInput, Deflate
from mailsrv.net.lines import Line, LineBuffer

log = Logger()

#: A raw reader gets the unread input and returns ``(octets consumed, finished)``.
RawReader = Callable[[bytes], "tuple[int, bool]"]

#: Compressed input inflated for one reader in one reactor turn, at most (and one chunk more).
INFLATE_PER_TURN = 1024 * 1024


class ConnectionGone(Exception):
    """The connection closed while a command waited for input or for the client to read."""


@implementer(IPushProducer)
class _OutputGate:
    """What the transport pauses and resumes when its write buffer fills and drains."""

    def __init__(self, pump: "CommandPump") -> None:
        self._pump = pump

    def pauseProducing(self) -> None:
        self._pump._output_paused = True

    def resumeProducing(self) -> None:
        self._pump._output_resumed()

    def stopProducing(self) -> None:
        self._pump._output_stopped()


class CommandPump(Protocol):
    """Input framing, one command at a time and flow control; subclasses give the protocol.

    Subclasses implement :meth:`greet`, :meth:`command`, :meth:`line_too_long`,
    :meth:`command_failed` and :meth:`timed_out`, and may extend
    :meth:`ended` (cleanup when the connection is gone).
    """

    #: Commands taken from the buffer in a row before yielding to the reactor.
    commands_per_turn = 50

    def __init__(
        self, max_line: int, lf_tolerant: bool, idle_timeout: float | None, clock: IReactorTime | None = None
    ) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.clock: IReactorTime = clock
        self.input = LineBuffer(max_line, lf_tolerant)
        self.idle_timeout = idle_timeout
        self.closing = False
        self._waiter: defer.Deferred[Any] | None = None
        self._raw_reader: RawReader | None = None
        self._reading_paused = False
        self._output_paused = False
        self._drain_waiters: list[defer.Deferred[None]] = []
        self._producing = False
        self._idle_call: Any = None
        #: A command (or the greeting) is running; between commands the session is idle.
        self._busy = True
        self._leaving = False
        #: DEFLATE both ways, once :meth:`start_deflate` ran.
        self.deflate: Deflate | None = None
        self._flush_call: Any = None
        self._inflate_call: Any = None
        #: Inside :meth:`_inflate`: a command that its input ran and that reads on is fed by that same loop.
        self._inflating = False

    # -- subclass hooks ------------------------------------------------------

    def greet(self) -> "Awaitable[None] | None":
        """Send the greeting (or refuse the connection and :meth:`close`); may be async.

        No command is read before it is done (input arriving meanwhile waits).
        """
        raise NotImplementedError

    async def command(self, line: bytes) -> None:
        """Run one command line (its line end removed)."""
        raise NotImplementedError

    def line_too_long(self) -> None:
        """Answer a command line over the limit; called at once, the rest of it is dropped."""
        raise NotImplementedError

    def command_failed(self, failure: Failure) -> None:
        """A command raised: log it and answer as the protocol's "internal error"."""
        raise NotImplementedError

    def timed_out(self) -> None:
        """The client sent nothing for ``idle_timeout`` seconds: say so and :meth:`close`."""
        raise NotImplementedError

    def ended(self, reason: Failure) -> None:
        """The connection is gone; release what the session holds."""

    def goodbye(self) -> None:
        """Tell the client the server is shutting down; the connection is closed after it."""
        raise NotImplementedError

    def corrupt_input(self, error: CorruptInput) -> None:
        """The client's compressed input is broken: say so and :meth:`close` (nothing more can be read)."""
        log.info("corrupt compressed input: {error}", error=str(error))
        self.close()

    def waits_for_client(self) -> bool:
        """True while the running command only waits for the client to speak (IMAP IDLE).

        Such a command is no work in progress: a stopping server says
        goodbye to it at once instead of waiting for it to end.
        """
        return False

    # -- connection ----------------------------------------------------------

    def connectionMade(self) -> None:
        """Disable Nagle, watch the write buffer, greet, and start the command loop."""
        if ITCPTransport.providedBy(self.transport):
            # Small replies otherwise wait for the peer's delayed ACK: 40 ms
            # each (docs/twisted-notes.rst, "Nagle and delayed ACKs").
            self.transport.setTcpNoDelay(True)
        self.transport.registerProducer(_OutputGate(self), True)
        self._producing = True
        self._reset_idle()
        defer.Deferred.fromCoroutine(self._serve()).addErrback(self._loop_failed)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        """Wake whatever waits for input or output with :class:`ConnectionGone`, then clean up."""
        self.closing = True
        self._producing = False
        self._cancel_idle()
        self._cancel_deflate_calls()
        waiter, self._waiter = self._waiter, None
        self._raw_reader = None
        if waiter is not None:
            waiter.errback(ConnectionGone())
        self._fail_drain_waiters()
        self.ended(reason)

    def close(self) -> None:
        """Close after what was written has been sent."""
        if self.closing:
            return
        self._flush_deflate()
        self.closing = True
        self._cancel_idle()
        self._cancel_deflate_calls()
        if self._producing:
            self._producing = False
            self.transport.unregisterProducer()
        self.transport.loseConnection()

    def leave_when_idle(self) -> None:
        """Say :meth:`goodbye` and close once no command runs: now, if none does."""
        self._leaving = True
        if not self._busy or self.waits_for_client():
            self.leave()

    def leave(self) -> None:
        """Say :meth:`goodbye` and close now, whatever runs (the shutdown grace is over)."""
        if not self.closing:
            self.goodbye()
            self.close()

    def _loop_failed(self, failure: Failure) -> None:
        log.failure("connection loop failed", failure)
        self.close()

    # -- input -------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """Buffer *data*, wake a waiting read; stop reading if a busy command leaves input waiting."""
        if self.closing:
            return
        if self.deflate is None:
            self._take_input(data)
        else:
            self.deflate.feed(data)
            self._inflate()

    def _take_input(self, data: bytes) -> None:
        self.input.append(data)
        if self._raw_reader is not None:
            self._reset_idle()  # a literal or a message body arriving is progress, packet by packet
        self._feed_waiter()
        if self._waiter is None and len(self.input) and not self._reading_paused and not self.closing:
            self._reading_paused = True
            self.transport.pauseProducing()

    def _inflate(self) -> None:
        """Inflate held input while the loop wants more and nothing unread is buffered.

        Compressed input still held keeps the socket's reading paused (as
        unread input in the buffer does); a reader still waiting after
        :data:`INFLATE_PER_TURN` octets (an over-long line being dropped)
        gets the rest on later reactor turns.
        """
        self._inflate_call = None
        deflate = self.deflate
        assert deflate is not None
        budget = INFLATE_PER_TURN
        self._inflating = True
        try:
            while deflate.pending and not self.closing and (self._waiter is not None or not len(self.input)):
                if budget <= 0:
                    self._inflate_call = self.clock.callLater(0, self._inflate)
                    break
                try:
                    data = deflate.inflate()
                except CorruptInput as e:
                    self.corrupt_input(e)
                    return
                budget -= len(data)
                self._take_input(data)
        finally:
            self._inflating = False
        if self.closing:
            return
        if deflate.pending:
            if not self._reading_paused:
                self._reading_paused = True
                self.transport.pauseProducing()
        elif self._waiter is not None:
            self._resume_reading()  # all held input is read and more is wanted

    def _feed_waiter(self) -> None:
        waiter = self._waiter
        if waiter is None:
            return
        if self._raw_reader is not None:
            try:
                consumed, finished = self._raw_reader(self.input.peek())
            except Exception:
                # The reader's bug ends the command that reads, as any bug in it would.
                self._raw_reader = self._waiter = None
                waiter.errback(Failure())
                return
            self.input.consume(consumed)
            if not finished:
                return
            self._raw_reader = None
            self._waiter = None
            self._cancel_idle()  # what the command waited for came; what it does next is the server's time
            waiter.callback(None)
            return
        line = self.input.next_line()
        if line is not None:
            self._waiter = None
            self._cancel_idle()
            waiter.callback(line)

    def _need_input(self) -> None:
        if self.deflate is not None and self.deflate.pending:
            if self._inflate_call is None and not self._inflating:
                self._inflate()
            if self.deflate.pending:
                return  # what is held is enough for now; the socket stays paused
        self._resume_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resumeProducing()

    def read_line(self) -> "defer.Deferred[Line]":
        """The next input line (without its end) or ``TOO_LONG``; waits for it if needed."""
        if self.closing:
            return defer.fail(ConnectionGone())
        line = self.input.next_line()
        if line is not None:
            self._cancel_idle()
            return defer.succeed(line)
        self._arm_idle()
        waiter = self._waiter = defer.Deferred()
        self._need_input()  # may fire it at once, from compressed input held back
        return waiter

    def read_raw(self, reader: RawReader) -> "defer.Deferred[None]":
        """Hand unread input to *reader* until it says it is finished.

        For octets that are not lines: an IMAP literal, an SMTP DATA body.
        """
        if self.closing:
            return defer.fail(ConnectionGone())
        self._waiter = defer.Deferred()
        self._raw_reader = reader
        waiter = self._waiter
        self._feed_waiter()
        if not waiter.called:
            self._arm_idle()
            self._need_input()
        return waiter

    def read_octets(self, count: int, write: Callable[[bytes], None]) -> "defer.Deferred[None]":
        """Hand exactly *count* octets of input to *write*, as they arrive (an IMAP literal)."""
        remaining = count

        def reader(data: bytes) -> tuple[int, bool]:
            nonlocal remaining
            take = data[:remaining]
            if take:
                write(take)
            remaining -= len(take)
            return len(take), remaining == 0

        return self.read_raw(reader)

    def discard_input(self) -> None:
        """Forget everything received but not yet read (RFC 3207 6, RFC 2595 3.1)."""
        self.input.clear()

    def start_deflate(self) -> None:
        """DEFLATE from the next octet in both directions (RFC 4978 3); call after the ``OK`` was written.

        Input received but not yet read is the start of the client's
        compressed stream, so it moves to the inflater rather than being
        read or dropped.
        """
        deflate = self.deflate = Deflate()
        deflate.feed(self.input.peek())
        self.input.clear()

    async def _serve(self) -> None:
        """The greeting, then the command loop; see the module docstring."""
        greeting = self.greet()
        if greeting is not None:
            await greeting
        in_a_row = 0
        while not self.closing:
            if self._leaving:
                self.leave()
                return
            self._busy = False
            try:
                line = await self.read_line()
            except ConnectionGone:
                return
            self._busy = True
            self._cancel_idle()  # the server works now; a read or a drain in the command waits anew
            try:
                if isinstance(line, bytes):
                    await self.command(line)
                else:
                    self.line_too_long()
            except ConnectionGone:
                return
            except Exception:
                self.command_failed(Failure())
            in_a_row += 1
            if in_a_row >= self.commands_per_turn:
                in_a_row = 0
                await self.yield_turn()
            if self._output_paused and not self.closing:
                try:
                    await self.drain()
                except ConnectionGone:
                    return

    @property
    def between_commands(self) -> bool:
        """No command runs: the session waits for the client's next line."""
        return not self._busy and not self.closing

    def yield_turn(self) -> "defer.Deferred[None]":
        """Fires on the next reactor turn: long work lets other connections run in between."""
        return task.deferLater(self.clock, 0, lambda: None)

    # -- output ------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send *data* unless the connection is closing (compressed, and flushed on the next turn, after COMPRESS)."""
        if self.closing:
            return
        if self.deflate is not None:
            data = self.deflate.compress(data)
            if self._flush_call is None:
                self._flush_call = self.clock.callLater(0, self._flush_deflate)
        if data:
            self.transport.write(data)

    def _flush_deflate(self) -> None:
        """End a batch of writes: the client can inflate all of it (RFC 4978 4)."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if self.deflate is not None and not self.closing:
            data = self.deflate.flush()
            if data:
                self.transport.write(data)

    def _cancel_deflate_calls(self) -> None:
        for call in (self._flush_call, self._inflate_call):
            if call is not None and call.active():
                call.cancel()
        self._flush_call = self._inflate_call = None

    def drain(self) -> "defer.Deferred[None]":
        """Fires once the client has read enough that more may be written.

        Streaming responses call this between pieces; it has already fired
        while the transport's buffer has room.
        """
        if self.closing:
            return defer.fail(ConnectionGone())
        if not self._output_paused:
            return defer.succeed(None)
        waiter: defer.Deferred[None] = defer.Deferred()
        self._drain_waiters.append(waiter)
        self._arm_idle()  # a client that stops reading is as idle as one that stops writing
        return waiter

    def _output_resumed(self) -> None:
        self._output_paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        if waiters:
            self._cancel_idle()  # a client reading a long response is not idle; the writer goes on
        else:
            self._reset_idle()
        for waiter in waiters:
            waiter.callback(None)
        if self._waiter is not None:
            self._arm_idle()  # a read still waits (IMAP IDLE's DONE): its wait is timed again

    def _output_stopped(self) -> None:
        """The transport is going away: nothing more will be sent, so stop producing it."""
        self.closing = True
        self._producing = False
        self._fail_drain_waiters()

    def _fail_drain_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            waiter.errback(ConnectionGone())

    # -- idle timeout --------------------------------------------------------
    #
    # The timer restarts when a line is complete (or a raw read such as a
    # DATA body or a literal makes progress), not on every packet: a client
    # that trickles a line one octet at a time, never finishing it, holds
    # the connection for ``idle_timeout`` at most (RFC 5321 4.5.3.2.7).

    def _reset_idle(self) -> None:
        if self.idle_timeout is None or self.closing:
            return
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.idle_timeout)
        else:
            self._idle_call = self.clock.callLater(self.idle_timeout, self._idle)

    def _arm_idle(self) -> None:
        """Start the idle timer for a wait on the client, unless it runs (a trickled line keeps its start)."""
        if self._idle_call is None or not self._idle_call.active():
            self._reset_idle()

    def _cancel_idle(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

    def _idle(self) -> None:
        self._idle_call = None
        if not self.closing:
            self.timed_out()

    def set_idle_timeout(self, seconds: float | None) -> None:
        """Change the idle timeout (IMAP allows longer after login, RFC 3501 5.4)."""
        self.idle_timeout = seconds
        self._cancel_idle()
        self._reset_idle()

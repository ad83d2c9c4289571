"""Reading an SMTP connection's input: framing, one command at a time, the DATA body.

This module exists so that everything between the socket and a command
handler lives in one place, apart from what the commands mean
(:mod:`mailsrv.smtp.server`).  :class:`Intake` is the base class of
:class:`~mailsrv.smtp.server.SMTPServer` and replaces Twisted's line reader
(TWISTED-NOTES section 1):

* input is framed by :class:`~mailsrv.smtp.lines.LineFramer` (bounded, an
  over-long line never leaves DATA mode);
* commands run strictly one at a time: while a command waits for a
  Deferred (:meth:`Intake._await`: validation, AUTH, the store) no further
  line is read and the transport is paused, so pipelined replies come in
  order (#8126, RFC 2920 3);
* a message body is taken a chunk at a time (:meth:`Intake._data_chunk`),
  which must do exactly what :meth:`Intake.state_DATA`, the per-line
  reference, does; the two are kept side by side here for that reason.

What it needs of its subclass: ``ctx`` and ``limits``, the body state of
the transaction (``_messages``, ``_data_size``, ``_data_error``), and the
methods ``reply``, ``_peer_ip``, ``_end_data`` (the final dot) and
``_end_auth`` (leaving AUTH mode).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.mail.interfaces import IMessageSMTP
from twisted.mail.smtp import AUTH, DATA, ESMTP
from twisted.python.failure import Failure

from mailsrv.smtp.lines import TOO_LONG, Line, LineFramer
from mailsrv.smtp.replies import Rejection

if TYPE_CHECKING:
    from mailsrv.config import LimitsConfig
    from mailsrv.context import ServerContext

log = Logger()

_SIZE_EXCEEDED = Rejection(552, "5.3.4 Message size exceeds fixed maximum message size")  # RFC 1870 6.3
_LINE_TOO_LONG = Rejection(500, "5.5.2 Line too long")  # RFC 5321 4.5.3.1.6


class Intake(ESMTP):
    """The input side of one SMTP connection; see the module docstring."""

    # Set by the subclass.
    ctx: "ServerContext"
    limits: "LimitsConfig"
    _messages: list[IMessageSMTP]
    _data_size: int
    _data_error: Rejection | None

    def __init__(self, max_line_length: int, **kwargs: Any) -> None:
        """*kwargs* go to ``ESMTP``; lines longer than *max_line_length* (CRLF included) are errors."""
        super().__init__(**kwargs)
        self._framer = LineFramer(max_line_length)
        self._pending: deque[Line] = deque()
        self._blocked = False  # a command's reply waits for a Deferred
        self._draining = False
        self._paused = False

    # -- input: framing and one-command-at-a-time ------------------------

    def dataReceived(self, data: bytes) -> None:
        """Frame *data* into lines and run them in order.

        A message body is taken a chunk at a time (:meth:`_data_chunk`)
        whenever the next line to run is a body line at the start of *data*;
        everything else goes line by line through the framer and
        :meth:`_drain`, which is the reference behaviour the chunk path
        reproduces exactly.

        While a reply waits for a Deferred and lines are queued behind it, the
        transport is paused, so a pipelining client cannot make us queue
        without bound (the framer holds at most one partial line).
        """
        framer = self._framer
        while data:
            if not (
                self.mode == DATA
                and not self._pending
                and not self._blocked
                and not self._draining
                and not self.transport.disconnecting
            ):
                self._pending.extend(framer.feed(data))
                self._drain()
                break
            if not framer.at_line_start:
                # Finish the line begun in an earlier packet the usual way.
                end = framer.line_end(data)
                if end < 0:
                    self._pending.extend(framer.feed(data))  # completes no line
                    break
                self._pending.extend(framer.feed(data[:end]))
                self._drain()
                data = data[end:]
                continue
            data = self._data_chunk(data)
            if self.mode == DATA:
                # Only a partial line (no CRLF) is left: hold it in the framer.
                self._pending.extend(framer.feed(data))
                break
        if self._blocked and self._pending and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self._pending and not self._blocked and not self.transport.disconnecting:
                line = self._pending.popleft()
                try:
                    if line is TOO_LONG:
                        self.resetTimeout()
                        self.lineLengthExceeded(b"")
                    else:
                        self.lineReceived(line)
                except Exception:
                    self._input_failed()
        finally:
            self._draining = False

    def _input_failed(self) -> None:
        """Client input raised unexpectedly (called in the except block): log it, 421, hang up.

        RFC 5321 4.2.1: 421 tells the client to try again later, so no
        message is lost to our bug.
        """
        log.failure("SMTP command failed", client_ip=self._peer_ip())
        self.reply(421, f"4.3.0 {self.ctx.config.hostname} Error: internal error")
        self.transport.loseConnection()

    def _await(
        self,
        d: "defer.Deferred[Any]",
        on_success: Callable[[Any], None],
        on_failure: Callable[[Failure], None] | None = None,
    ) -> None:
        """Send the reply when *d* fires; read no further command until then.

        Twisted keeps executing pipelined commands while a validation
        Deferred is pending, which reorders replies (twisted #8126); RFC 2920
        3 requires them in command order.
        """
        self._blocked = True
        d.addCallbacks(on_success, on_failure or self._refused)
        d.addErrback(self._internal_error)
        d.addBoth(self._unblock)

    def _unblock(self, _: object) -> None:
        self._blocked = False
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        self._drain()

    def _refused(self, failure: Failure) -> None:
        failure.trap(Rejection)
        self.reply(failure.value.code, failure.value.text)

    def _internal_error(self, failure: Failure) -> None:
        log.failure("SMTP command failed", failure, client_ip=self._peer_ip())
        self.reply(451, "4.3.0 Error: local error in processing")

    def lineLengthExceeded(self, line: bytes) -> None:
        """An over-long line is an error, never a change of mode (TWISTED-NOTES 1, Limits).

        Inside DATA the transaction is marked failed and the body is still
        consumed up to the final dot, where the error is answered: switching
        to command mode here would run the rest of the body as commands.
        """
        if self.mode == DATA:
            self._fail_data(_LINE_TOO_LONG)
            return
        if self.mode == AUTH:
            self._end_auth()
        self.reply(_LINE_TOO_LONG.code, _LINE_TOO_LONG.text)

    # -- the DATA body ---------------------------------------------------

    def state_DATA(self, line: bytes) -> None:
        """One line of the message body: unstuff, count, pass on."""
        if line == b".":
            self._end_data()
            return
        if line[:1] == b".":
            line = line[1:]  # RFC 5321 4.5.2 transparency
        if self._data_error is not None:
            return
        self._data_size += len(line) + 2
        if self._data_size > self.limits.max_message_size:
            self._fail_data(_SIZE_EXCEEDED)
            return
        for message in self._messages:
            message.lineReceived(line)

    def _data_chunk(self, data: bytes) -> bytes:
        """Run the complete body lines at the start of *data* at once; return the rest.

        The framer is at a line start, nothing is queued, and the mode is
        DATA, so the lines in *data* are exactly those :meth:`state_DATA`
        would get one by one; this does what those calls would do, in bulk:

        * end of data is a line holding only "." (RFC 5321 3.3, 4.1.1.4):
          the lines before it are the body, :meth:`_end_data` runs, and what
          follows it is returned for the command path, in order;
        * RFC 5321 4.5.3.1.6: a line longer than ``max_line_length`` (CRLF
          included) fails the transaction with 500 at the final dot, as
          :meth:`lineLengthExceeded` does, and never leaves DATA mode;
        * RFC 5321 4.5.2 transparency: a leading "." of every line is removed;
        * RFC 1870: the message size is the unstuffed size with CRLFs, and
          the first line taking it over ``max_message_size`` fails with 552;
        * the first error wins and later lines are neither counted nor kept.

        Without a final dot, the trailing partial line (no CRLF) is returned
        for the framer.  The idle timer is reset once if any line was taken.
        """
        if data[:3] == b".\r\n":
            body_end = 0
        else:
            dot = data.find(b"\r\n.\r\n")
            body_end = dot + 2 if dot >= 0 else data.rfind(b"\r\n") + 2
            if body_end < 2:
                return data  # not one complete line yet
        # Every CRLF in data ends a line (CR is not LF, so none overlap), so
        # the first CRLF "." CRLF is the first "." line.
        final = body_end < len(data) and data[body_end:body_end + 3] == b".\r\n"
        self._draining = True
        try:
            self.resetTimeout()
            if body_end and self._data_error is None:
                self._data_lines(data[:body_end])
            if final:
                self._end_data()
        except Exception:
            self._input_failed()
        finally:
            self._draining = False
        return data[body_end + 3:] if final else data[body_end:]

    def _data_lines(self, body: bytes) -> None:
        """:meth:`state_DATA` for every line of *body* (complete lines, none of them ".")."""
        # RFC 5321 4.5.3.1.6: find the first over-long line.  Each window of
        # max_content + 2 octets from a line start must hold a CRLF; all
        # lines ending in it are short enough, so resume after its last one.
        window = self._framer.max_content + 2
        good = len(body)
        if good > window:
            start = 0
            while good - start > window:
                last = body.rfind(b"\r\n", start, start + window)
                if last < 0:
                    good = start
                    break
                start = last + 2
        # RFC 5321 4.5.2: remove the dot that starts a line.
        lines = body[:good].replace(b"\r\n.", b"\r\n")
        if lines[:1] == b".":
            lines = lines[1:]
        room = self.limits.max_message_size - self._data_size
        if len(lines) > room:
            # RFC 1870 6.3: the line taking the size over the limit is
            # counted, not kept, and fails the transaction.
            over = lines.find(b"\r\n", max(room - 1, 0)) + 2
            self._data_size += over
            before = lines.rfind(b"\r\n", 0, over - 2)  # the CRLF ending the line before it
            self._deliver_lines(lines[: before + 2] if before >= 0 else b"")
            self._fail_data(_SIZE_EXCEEDED)
            return
        self._data_size += len(lines)
        self._deliver_lines(lines)
        if good < len(body):
            self._fail_data(_LINE_TOO_LONG)

    def _deliver_lines(self, lines: bytes) -> None:
        """Pass complete, unstuffed lines (each with its CRLF) to every message."""
        if not lines:
            return
        for message in self._messages:
            bulk = getattr(message, "linesReceived", None)
            if bulk is not None:
                bulk(lines)
            else:
                for line in lines[:-2].split(b"\r\n"):
                    message.lineReceived(line)

    def _fail_data(self, error: Rejection) -> None:
        """Keep the first error for the final dot and discard what was received."""
        if self._data_error is None:
            self._data_error = error
            for message in self._messages:
                message.connectionLost()
            self._messages = []

"""Input framing and command dispatch for the POP3 server.

Twisted's ``POP3`` runs every line of a packet straight away, so STLS cannot
stop plaintext pipelined behind it, and it drops the connection on an
over-long line or a str error text.  :class:`CommandSession` reads lines
from its own buffer, one command at a time: a command that returns a
Deferred (login) pauses the transport until it fires, so pipelined commands
(RFC 2449 section 6.6) are answered in order and a command can discard what
is still buffered.  Any error becomes ``-ERR``, never a dropped connection.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.mail import pop3

log = Logger()

AUTHORIZATION = "AUTHORIZATION"
TRANSACTION = "TRANSACTION"
BOTH = (AUTHORIZATION, TRANSACTION)

_VERB = re.compile(rb"[A-Za-z]{1,20}\Z")
TEMPORARY = b"[SYS/TEMP] Temporary server failure, try again later"


@dataclass(frozen=True)
class _Syntax:
    """Where a command is valid and how its arguments are split."""

    states: tuple[str, ...]
    min_args: int = 0
    max_args: int = 0
    #: Pass everything after the verb as one argument (passwords hold spaces).
    raw: bool = False


def command(*states: str, args: tuple[int, int] = (0, 0), raw: bool = False) -> Callable[[Any], Any]:
    """Mark a ``do_*`` method as a command; unmarked ``do_*`` (Twisted's APOP,
    LAST, RPOP) are thereby unknown commands."""

    def mark(method: Any) -> Any:
        method.pop3_syntax = _Syntax(states, args[0], args[1], raw)
        return method

    return mark


def client_ip(transport: Any) -> str:
    peer = transport.getPeer()
    return str(getattr(peer, "host", peer))


class CommandSession(pop3.POP3):
    """Line handling shared by every POP3 command; subclasses add ``do_*``.

    ``continuation``, when set, receives the next line instead of the
    dispatcher (the SASL response after ``+ ``).
    """

    def __init__(self, max_line: int) -> None:
        self._max_line = max_line
        self._inbuf = b""
        self._pos = 0  # start of the first unprocessed line in _inbuf
        self._skipping = False  # inside an over-long line, until its LF
        self._busy = False  # a command's Deferred is pending
        self._draining = False
        self._gone = False  # connection lost
        self.continuation: Callable[[bytes], Any] | None = None

    def connectionLost(self, reason: Any = None) -> None:
        """Log out without the UPDATE state: DELE marks are forgotten (RFC 1939 section 6)."""
        self._gone = True
        super().connectionLost(reason)

    @property
    def pop3_state(self) -> str:
        return TRANSACTION if self.mbox is not None else AUTHORIZATION

    # -- input --------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        self._inbuf += data
        self._drain()

    def _drain(self) -> None:
        """Run the complete lines in the buffer in order, one command at a time.

        Lines may end in CRLF or a bare LF.  A line longer than
        ``limits.max_line_length`` gets one ``-ERR`` and is skipped up to
        its LF, so neither the session nor the buffer pays for it.
        """
        if self._draining:
            return
        self._draining = True
        try:
            while not self._busy and not self.transport.disconnecting:
                end = self._inbuf.find(b"\n", self._pos)
                if end < 0:
                    if len(self._inbuf) - self._pos > self._max_line:
                        if not self._skipping:
                            self.failResponse(b"Line too long")
                        self.discard_input()
                        self._skipping = True
                    return
                line, self._pos = self._inbuf[self._pos : end], end + 1
                if self._skipping:
                    self._skipping = False  # the tail of an over-long line
                elif len(line) > self._max_line:
                    self.failResponse(b"Line too long")
                else:
                    self.lineReceived(line[:-1] if line.endswith(b"\r") else line)
        finally:
            self._draining = False
            self._inbuf, self._pos = self._inbuf[self._pos :], 0

    def lineReceived(self, line: bytes) -> None:
        """Check and dispatch one line; any error ends as ``-ERR``, never a drop."""
        self.resetTimeout()
        if b"\0" in line or not _is_utf8(line):
            self.continuation = None
            self.failResponse(b"Invalid characters in command")
            return
        try:
            if self.continuation is not None:
                handler, self.continuation = self.continuation, None
                result = handler(line)
            else:
                result = self._dispatch(line)
        except Exception:
            log.failure("POP3 command failed", client_ip=client_ip(self.transport))
            self.failResponse(TEMPORARY)
            return
        if isinstance(result, Deferred) and not result.called:  # a fired one needs no pause
            self._wait_for(result)

    def _dispatch(self, line: bytes) -> Any:
        verb, _, rest = line.partition(b" ")
        handler = getattr(self, "do_" + verb.upper().decode(), None) if _VERB.match(verb) else None
        syntax: _Syntax | None = getattr(handler, "pop3_syntax", None)
        if handler is None or syntax is None:
            self.failResponse(b"Unknown command")
            return None
        if self.pop3_state not in syntax.states:
            self.failResponse(b"Command not valid in this state")
            return None
        args = ([rest] if rest else []) if syntax.raw else rest.split()
        if not syntax.min_args <= len(args) <= syntax.max_args:
            self.failResponse(b"Wrong number of arguments")
            return None
        return handler(*args)

    def _wait_for(self, d: Deferred) -> None:
        """Hold further input until *d* fires, then carry on with the buffer."""
        self._busy = True
        self.setTimeout(None)
        self.transport.pauseProducing()

        def done(result: object) -> object:
            self._busy = False
            if not self._gone:
                self.setTimeout(self.timeOut)
                self.transport.resumeProducing()
                self._drain()
            return result

        d.addBoth(done)

    def discard_input(self) -> None:
        """Forget buffered input: plaintext pipelined behind STLS, or an over-long line."""
        self._inbuf, self._pos = b"", 0
        self._skipping = False

    def multiline(self, first: bytes, body: bytes) -> None:
        """Send ``+OK first`` and an already framed body in one write."""
        self.transport.writeSequence([b"+OK " + first + b"\r\n" if first else b"+OK\r\n", body])

    def successResponse(self, message: bytes = b"") -> None:  # type: ignore[override]
        self.transport.write(b"+OK " + message + b"\r\n" if message else b"+OK\r\n")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

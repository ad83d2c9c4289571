"""The client side of one SMTP connection: commands out, replies in, the message data streamed.

Our own small protocol rather than Twisted's ``ESMTPClient``: that class
drives the whole dialogue itself through callbacks (``getMailFrom``,
``sentMail``...) with one outcome per message, so per-recipient results, a
STARTTLS that must fall back to a new plaintext connection, and PIPELINING
all fight it; and its DATA path stuffs dots wrongly across chunk boundaries
(docs/twisted-notes.rst, "SMTP client: dot-stuffing"); BDAT (RFC 3030) it
does not know.  Here a dialogue
(:mod:`mailsrv.delivery.dialogue`) is straight-line code that sends a
command and awaits :meth:`ClientConnection.read_reply`.  Replies are framed
by our :class:`~mailsrv.net.lines.LineBuffer`; every wait has a timeout
after which the connection is dropped.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import BinaryIO, Callable, Sequence

from cryptography import x509
from twisted.internet import defer, interfaces
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.message import wire
from mailsrv.net.lines import TOO_LONG, LineBuffer

#: RFC 5321 4.5.3.1.5 allows 512 octets per reply line; be lenient with long ones.
_MAX_REPLY_LINE = 4096
#: Lines a reply may have; a peer sending more is broken or hostile.
_MAX_REPLY_LINES = 200
_REPLY_LINE = re.compile(rb"([2-5][0-9][0-9])([ -]|\Z)(.*)", re.S)


class SMTPClientError(Exception):
    """The connection is unusable: lost, timed out, or the peer broke the protocol."""


class CertificateRejected(Exception):
    """The peer's certificate chain is not the one we were told to expect (DANE)."""


#: Judges the certificate chain a server sent (its own first): how it was authenticated
#: (``"DANE-EE 3 1 1"``), or :class:`CertificateRejected`.
Authenticate = Callable[[Sequence[x509.Certificate]], str]


@dataclass(frozen=True)
class Reply:
    """A complete reply: its code and the text of each line (without the code)."""

    code: int
    lines: tuple[str, ...]

    def __str__(self) -> str:
        """The whole reply on one line: ``"550 5.1.1 no such user"`` (a multi-line text is joined by spaces)."""
        return " ".join([str(self.code), *self.lines]).rstrip()

    @property
    def positive(self) -> bool:
        """2xx."""
        return 200 <= self.code < 300

    @property
    def permanent(self) -> bool:
        """5xx."""
        return self.code >= 500


@implementer(interfaces.IPullProducer)
class _BodyProducer:
    """Writes the body a chunk at a time, whenever the transport wants more: stuffed for DATA, or
    exactly *size* octets as they are for BDAT."""

    def __init__(
        self, transport: interfaces.ITransport, body: BinaryIO, progress: Callable[[], None], size: int | None,
    ) -> None:
        self._transport = transport
        self._body = body
        self._progress = progress
        self._chunks = wire.stuffed(wire.wire_chunks(body)) if size is None else wire.wire_chunks(body)
        self._left = size
        self.done: defer.Deferred[None] = defer.Deferred()

    def resumeProducing(self) -> None:
        chunk = next(self._chunks, None)
        if self._left is not None and (len(chunk) > self._left if chunk is not None else self._left > 0):
            # RFC 3030 2: the peer reads exactly the announced octets; any other count would make the
            # rest of the message commands, or our next command message data.  Drop the connection instead.
            self._transport.abortConnection()
            self._finish(Failure(SMTPClientError("the queued message is not the size its record says")))
            return
        if chunk is None:
            self._finish(None)
        else:
            if self._left is not None:
                self._left -= len(chunk)
            self._progress()
            self._transport.write(chunk)

    def stopProducing(self) -> None:
        self._finish(Failure(SMTPClientError("connection lost while sending the message")))

    def _finish(self, result: None | Failure) -> None:
        if self.done.called:
            return
        self._body.close()
        self._transport.unregisterProducer()
        self.done.callback(None) if result is None else self.done.errback(result)


@implementer(interfaces.IHandshakeListener)
class ClientConnection(Protocol):
    """One connection to an SMTP server; replies are read in the order they come.

    Replies that arrive before anyone waits for them are kept, so a
    pipelined batch of commands can be sent first and its replies read
    afterwards.
    """

    def __init__(self, clock: interfaces.IReactorTime) -> None:
        self._clock = clock
        self._buffer = LineBuffer(_MAX_REPLY_LINE)
        self._lines: list[str] = []
        self._replies: deque[Reply] = deque()
        self._waiting: defer.Deferred[Reply] | None = None
        self._handshake: defer.Deferred[None] | None = None
        self._authenticate: Authenticate | None = None
        self._lost: SMTPClientError | None = None
        self._disconnected = False
        self._closing: list[defer.Deferred[None]] = []
        #: ``"TLSv1.3 TLS_AES_256_GCM_SHA384"`` once TLS is up, "" before; with how the peer
        #: was authenticated after it when that was asked for (``"... DANE-EE 3 1 1"``).
        self.tls = ""

    # -- what the dialogue calls

    def send(self, line: str) -> None:
        """Send one command line (CRLF is added)."""
        if self._lost is None:
            self.transport.write(line.encode("utf-8") + b"\r\n")

    def read_reply(self, timeout: float) -> "defer.Deferred[Reply]":
        """The next reply; fails with :class:`SMTPClientError` after *timeout* seconds or on loss."""
        if self._replies:
            return defer.succeed(self._replies.popleft())
        if self._lost is not None:
            return defer.fail(self._lost)
        self._waiting = defer.Deferred()
        return self._with_timeout(self._waiting, timeout, "a reply")

    def start_tls(
        self, creator: object, timeout: float, authenticate: Authenticate | None = None,
    ) -> "defer.Deferred[None]":
        """Start the TLS handshake (after a 220 to STARTTLS); fires when it is complete.

        With *authenticate*, the server's certificate chain is judged once
        the handshake is done, before anything is sent over it; a rejected
        chain fails the handshake (and drops the connection) with the reason.
        """
        self._buffer.clear()  # RFC 3207 6: nothing received before TLS counts
        self._replies.clear()
        self._authenticate = authenticate
        self._handshake = defer.Deferred()
        self.transport.startTLS(creator)
        return self._with_timeout(self._handshake, timeout, "the TLS handshake")

    def send_body(self, body: BinaryIO, timeout: float, size: int | None = None) -> "defer.Deferred[None]":
        """Stream the disk-form *body* as DATA octets (stuffed, with the final dot); closes *body*.

        With *size*, as the octets of a BDAT chunk of that size instead
        (RFC 3030 2: nothing stuffed, no final dot); a body of another size
        fails and drops the connection.  *timeout* limits each block, not
        the whole (RFC 5321 4.5.3.2.5): a large message on a slow link is
        fine as long as it keeps moving.
        """
        producer = _BodyProducer(self.transport, body, lambda: timer.reset(timeout), size)
        d, timer = self._timed(producer.done, timeout, "sending the message")
        self.transport.registerProducer(producer, False)
        return d

    @property
    def reusable(self) -> bool:
        """Open, and in step with the peer: no reply pending or unread, so another transaction may start."""
        return (self._lost is None and self.transport is not None and self._waiting is None
                and self._handshake is None and not self._replies and not self._lines)

    def close(self) -> "defer.Deferred[None]":
        """Drop the connection (after QUIT, or when giving up); fires once it is closed."""
        if self._disconnected:
            return defer.succeed(None)
        d: defer.Deferred[None] = defer.Deferred()
        self._closing.append(d)
        if self.transport is not None:
            self.transport.loseConnection()
        return d

    # -- Twisted's side

    def handshakeCompleted(self) -> None:
        handle = self.transport.getHandle()
        self.tls = f"{handle.get_protocol_version_name()} {handle.get_cipher_name()}"
        if self._authenticate is not None:
            try:
                chain = [certificate.to_cryptography() for certificate in handle.get_peer_cert_chain() or []]
                self.tls += " " + self._authenticate(chain)
            except CertificateRejected as e:
                self._fail(SMTPClientError(str(e)))
                self.transport.abortConnection()
                return
        if self._handshake is not None:
            d, self._handshake = self._handshake, None
            d.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self._buffer.append(data)
        while (line := self._buffer.next_line()) is not None:
            if line is TOO_LONG or not self._reply_line(line):
                self._fail(SMTPClientError("the server sent something that is not an SMTP reply"))
                self.transport.abortConnection()
                return

    def connectionLost(self, reason: Failure = None) -> None:
        message = reason.getErrorMessage() if reason is not None else "closed"
        self._fail(SMTPClientError(f"connection lost: {message}"))
        self._disconnected = True
        closing, self._closing = self._closing, []
        for d in closing:
            d.callback(None)

    # -- inside

    def _reply_line(self, line: bytes) -> bool:
        """Take one reply line; False if it is not one (or one too many)."""
        match = _REPLY_LINE.match(line)
        if match is None or len(self._lines) >= _MAX_REPLY_LINES:
            return False
        self._lines.append(match.group(3).decode("utf-8", "replace"))
        if match.group(2) != b"-":
            reply = Reply(int(match.group(1)), tuple(self._lines))
            self._lines = []
            if self._waiting is not None:
                d, self._waiting = self._waiting, None
                d.callback(reply)
            else:
                self._replies.append(reply)
        return True

    def _fail(self, error: SMTPClientError) -> None:
        if self._lost is not None:
            return
        self._lost = error
        for attr in ("_waiting", "_handshake"):
            d = getattr(self, attr)
            if d is not None:
                setattr(self, attr, None)
                d.errback(error)

    def _with_timeout(self, d: defer.Deferred, timeout: float, what: str) -> defer.Deferred:
        return self._timed(d, timeout, what)[0]

    def _timed(self, d: defer.Deferred, timeout: float, what: str) -> tuple[defer.Deferred, interfaces.IDelayedCall]:
        """*d*, failing (and the connection dropped) unless it fires within *timeout*; and its timer."""

        def expired() -> None:
            self._fail(SMTPClientError(f"timed out after {timeout:g} s waiting for {what}"))
            if self.transport is not None:
                self.transport.abortConnection()

        timer = self._clock.callLater(timeout, expired)

        def cancel(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        return d.addBoth(cancel), timer

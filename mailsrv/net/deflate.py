"""Raw DEFLATE both ways on one connection: IMAP's COMPRESS=DEFLATE (RFC 4978).

The stream is raw DEFLATE (RFC 1951: no zlib header or checksum, window
bits -15, RFC 4978 4), one per direction for the rest of the connection.
It runs above TLS: the protocol compresses what it writes and TLS encrypts
the result, so STARTTLS before and implicit TLS under it need nothing here.

Input is inflated only as the protocol reads it, at most :data:`CHUNK`
octets at a time (``decompressobj`` with ``max_length``), so a few octets
that inflate to gigabytes meet the line and literal limits of
:class:`~mailsrv.net.lines.LineBuffer` and the command reader after one
chunk, not after the server has inflated everything
(:class:`~mailsrv.net.pump.CommandPump` holds the compressed rest and stops
reading the socket meanwhile).

Output is compressed as it is written and goes to the transport as soon as
zlib emits it, so the transport's buffer, and with it flow control, sees
big responses as they are produced; the protocol ends each batch of writes
with :meth:`Deflate.flush` (``Z_SYNC_FLUSH``), after which the client can
inflate everything written so far.
"""

from __future__ import annotations

import zlib

#: The most octets inflated in one step.
CHUNK = 64 * 1024
#: RFC 4978 4: raw DEFLATE with the largest window.
WINDOW_BITS = -15


class CorruptInput(Exception):
    """The client's compressed stream is not valid DEFLATE."""


class Deflate:
    """The two DEFLATE streams of one connection, and the compressed input not yet inflated."""

    def __init__(self) -> None:
        self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, WINDOW_BITS)
        self._decompressor = zlib.decompressobj(WINDOW_BITS)
        self._unread = b""
        #: The last step filled its chunk, so zlib may hold more output even with no input left.
        self._full = False
        #: Octets inflated so far (what the client's input has amounted to).
        self.inflated = 0

    # -- output --------------------------------------------------------------

    def compress(self, data: bytes) -> bytes:
        """Compressed octets for *data*; maybe none yet (zlib keeps some until :meth:`flush`)."""
        return self._compressor.compress(data)

    def flush(self) -> bytes:
        """Everything still held by the compressor, ending on a byte boundary the client can inflate to."""
        return self._compressor.flush(zlib.Z_SYNC_FLUSH)

    # -- input ---------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Keep compressed input from the client until :meth:`inflate` is asked for it."""
        self._unread += data

    @property
    def pending(self) -> bool:
        """Whether compressed input is waiting to be inflated (or zlib may have more of it)."""
        return bool(self._unread) or self._full

    def inflate(self) -> bytes:
        """Up to :data:`CHUNK` octets of the client's input; ``b""`` if what is held inflates to nothing yet.

        :raises CorruptInput: the stream is not DEFLATE (or went on past its end).
        """
        try:
            data = self._decompressor.decompress(self._unread, CHUNK)
        except zlib.error as e:
            self._unread = b""
            raise CorruptInput(str(e)) from None
        if self._decompressor.eof:
            self._unread = b""
            raise CorruptInput("the client ended its DEFLATE stream")
        self._unread = self._decompressor.unconsumed_tail
        self._full = len(data) == CHUNK
        self.inflated += len(data)
        return data

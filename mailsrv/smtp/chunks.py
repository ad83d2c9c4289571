"""The body of a BDAT transaction (RFC 3030 2), chunk after chunk, as the octets arrive.

A chunk is exactly the octets its BDAT announced: no end-of-data line to
look for, no dot-stuffing to undo, no line length to enforce, so its
octets go into the :class:`~mailsrv.message.body.BodyWriter` as they come
(which spools them past the threshold, never holding the chunk whole).
The chunks of one transaction are one octet stream: a CR that ends one
chunk and an LF that starts the next are one CRLF.

What is counted on the way: the RFC 1870 size (the sum of the chunk
sizes, every octet as sent) and whether a bare LF came.  The store keeps
LF line ends (:mod:`mailsrv.message.wire`), so a bare CR is kept octet for
octet, and a bare LF is the one octet it could not give back as it came
(the transaction refuses it, see :mod:`.bdat`).
"""

from __future__ import annotations

from mailsrv.message.body import BodyWriter


class ChunkedBody:
    """The chunks of one BDAT transaction so far, written into *writer*."""

    def __init__(self, writer: BodyWriter) -> None:
        self.writer = writer
        #: RFC 1870 message size so far: every octet of every chunk.
        self.size = 0
        #: An LF not preceded by a CR came, in some chunk.
        self.bare_lf = False
        self._after_cr = False  # the last octet so far was a CR

    def write(self, piece: bytes) -> None:
        """Take the next octets of a chunk (any cut: a CRLF may be split between pieces or chunks)."""
        if not piece:
            return
        self.size += len(piece)
        if not self.bare_lf:
            # Counting is two passes in C, where a search for LF-without-CR
            # would be a regular expression over every line end.
            crlfs = piece.count(b"\r\n") + (self._after_cr and piece[:1] == b"\n")
            self.bare_lf = piece.count(b"\n") != crlfs
        self._after_cr = piece[-1:] == b"\r"
        self.writer.write(piece)

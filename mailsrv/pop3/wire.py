"""Framing of RFC 1939 multi-line responses, streamed: byte-stuffing and TOP.

Twisted's ``POP3.transformChunk`` stuffs each 16 KiB ``FileSender`` chunk on
its own, so a "." at the start of the message or at a chunk boundary goes
out unstuffed: the client sees the end of the response early and reads the
rest of the message as server replies (docs/twisted-notes.rst, "POP3:
dot-stuffing at chunk boundaries").  The stuffer,
:func:`mailsrv.message.wire.stuffed` (SMTP's DATA is framed the same way),
carries "was the last octet a line end?" from one chunk to the next, so
where the chunks are cut does not matter and a 50 MiB message is sent
without being held in memory.
"""

from __future__ import annotations

from typing import Iterable, Iterator

from mailsrv.message.wire import TERMINATOR, stuffed

__all__ = ["TERMINATOR", "stuffed", "top"]


def top(chunks: Iterable[bytes], lines: int) -> Iterator[bytes]:
    """The header section, the empty line after it, and *lines* body lines (RFC 1939 7).

    Reads only as far as it needs.  A message without an empty line is all
    header and is returned whole; a bare LF counts as a line end.
    """
    in_header = True
    # What the current line held before this chunk: b"" nothing yet,
    # b"\r" just a CR (an empty line whose CRLF is split), b"x" text.
    carried = b""
    remaining = lines
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            content = carried + chunk[start:end]
            carried, start = b"", end + 1
            if in_header:
                if content not in (b"", b"\r"):
                    continue
                in_header = False
            else:
                remaining -= 1
            if remaining <= 0 and not in_header:
                yield chunk[:start]
                return
        rest = chunk[start:]
        if rest:
            carried = b"\r" if not carried and rest == b"\r" else b"x"
        yield chunk

"""Framing of RFC 1939 multi-line responses, streamed: byte-stuffing and TOP.

Twisted's ``POP3.transformChunk`` stuffs each 16 KiB ``FileSender`` chunk on
its own, so a "." at the start of the message or at a chunk boundary goes
out unstuffed: the client sees the end of the response early and reads the
rest of the message as server replies (docs/twisted-notes.rst, "POP3:
dot-stuffing at chunk boundaries").  Here the stuffer carries "was the last
octet a line end?" from one chunk to the next, so where the chunks are cut
does not matter and a 50 MiB message is sent without being held in memory.
"""

from __future__ import annotations

from typing import Iterable, Iterator

TERMINATOR = b".\r\n"


def stuffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The wire-form *chunks* byte-stuffed, then the terminating line.

    RFC 1939 3: a line that begins with the termination octet is stuffed,
    the first line included.  A "." is stuffed after every LF, not only
    after CRLF: common clients (poplib among them) split lines at LF, so a
    bare LF followed by "." would otherwise end the response for them
    early.  The terminating "." must be alone on its line, so a message
    without a final line end gets one.
    """
    at_line_start = True
    for chunk in chunks:
        if not chunk:
            continue
        out = chunk.replace(b"\n.", b"\n..")
        if at_line_start and out[:1] == b".":
            out = b"." + out
        at_line_start = out[-1:] == b"\n"
        yield out
    yield TERMINATOR if at_line_start else b"\r\n" + TERMINATOR


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

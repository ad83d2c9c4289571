"""Framing of RFC 1939 multi-line responses: byte-stuffing and TOP.

Twisted's ``POP3.transformChunk`` stuffs each 16 KiB ``FileSender`` chunk on
its own, so a "." at the start of the message or at a chunk boundary goes
out unstuffed: the client sees the end of the response early and reads the
rest of the message as server replies.  These functions work on the whole
message at once, so there are no boundaries to get wrong.
"""

from __future__ import annotations


def multiline(data: bytes) -> bytes:
    """Return *data* byte-stuffed and terminated, to follow a ``+OK`` line.

    A "." is stuffed after every LF, not only after CRLF: common clients
    (poplib among them) split lines at LF, so a bare LF followed by "."
    would otherwise end the response for them early.
    """
    # RFC 1939 section 3: a line that begins with the termination octet is
    # byte-stuffed, and that includes the first line.
    stuffed = data.replace(b"\n.", b"\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    # RFC 1939 section 3: the terminating "." must be alone on its line.
    if stuffed and not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


def top(message: bytes, lines: int) -> bytes:
    """The header section, the empty line after it, and *lines* body lines.

    RFC 1939 section 7 (TOP).  A message without an empty line is all
    header and is returned whole.
    """
    end = _header_end(message)
    if lines >= message.count(b"\n", end):
        return message
    for _ in range(lines):
        end = message.index(b"\n", end) + 1
    return message[:end]


def _header_end(message: bytes) -> int:
    """Offset just past the empty line that ends the header section.

    Searched over the whole message (not a read buffer, unlike Twisted's
    ``_HeadersPlusNLines``), accepting a bare LF as a line end.
    """
    for empty_first_line in (b"\r\n", b"\n"):
        if message.startswith(empty_first_line):
            return len(empty_first_line)
    found = [
        (pos + len(sep))
        for sep in (b"\n\r\n", b"\n\n")
        if (pos := message.find(sep)) >= 0
    ]
    return min(found, default=len(message))

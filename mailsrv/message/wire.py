"""Line ends: CRLF on the wire (RFC 5322 2.1), LF on disk (the Maildir convention).

Every Maildir reader expects LF, and every protocol sends CRLF, so a message
is converted once when it is stored and back when it is sent.  The sizes a
protocol reports (RFC822.SIZE, POP3 octet counts) are those of the wire form,
which :func:`wire_size` computes from the disk form without building it.
Conversion works chunk by chunk as well as whole, so a 50 MiB message is
never held in memory to be sent.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterator

_BARE_LF = re.compile(rb"(?<!\r)\n")

#: Octets read from a file per chunk when streaming a message.
CHUNK = 64 * 1024


def to_disk(data: bytes) -> bytes:
    """Message bytes as stored: LF line ends."""
    return data.replace(b"\r\n", b"\n")


def to_wire(data: bytes) -> bytes:
    """Message bytes as sent over POP3/IMAP: CRLF line ends (RFC 5322 2.1)."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return _BARE_LF.sub(b"\r\n", data)


def wire_size(disk: bytes) -> int:
    """Octets of :func:`to_wire` (*disk*) without building it."""
    return len(disk) + disk.count(b"\n") - disk.count(b"\r\n")


def wire_chunks(stored: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    """The wire form of the disk-form file *stored*, a chunk at a time.

    Joined, the chunks equal ``to_wire(stored.read())``: a CR at the end of
    one chunk still pairs with an LF at the start of the next.
    """
    after_cr = False
    while data := stored.read(chunk):
        if after_cr and data[:1] == b"\n":
            yield b"\n" + to_wire(data[1:])
        else:
            yield to_wire(data)
        after_cr = data[-1:] == b"\r"

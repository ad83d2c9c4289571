"""Line ends: CRLF on the wire (RFC 5322 2.1), LF on disk (the Maildir convention).

Every Maildir reader expects LF, and every protocol sends CRLF, so a message
is converted once when it is stored and back when it is sent.  The sizes a
protocol reports (RFC822.SIZE, POP3 octet counts) are those of the wire form,
which :func:`wire_size` computes from the disk form without building it.
Conversion works chunk by chunk as well as whole, so a 50 MiB message is
never held in memory to be sent.

The two conversions are exact inverses for every message without a bare LF,
so a message comes back octet for octet as it was received (a DKIM body
hash depends on it).  :func:`to_wire` keeps a CRLF it finds on disk (files
other programs wrote with CRLF line ends read as they are), so a line that
ends in a bare CR (``x\r`` + CRLF) keeps its CRLF on disk: stored as
``x\r\n`` it would come back as ``x`` + CRLF.  A bare LF is a line end on
disk; SMTP refuses it (:mod:`mailsrv.smtp.data`), IMAP APPEND stores it as
one.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterable, Iterator

#: An LF that does not end a CRLF.
BARE_LF = re.compile(rb"(?<!\r)\n")
_CRLF_NOT_AFTER_CR = re.compile(rb"(?<!\r)\r\n")

#: Octets read from a file per chunk when streaming a message.
CHUNK = 64 * 1024


def to_disk(data: bytes, after_cr: bool = False) -> bytes:
    """Message bytes as stored: LF line ends, except a CRLF after a CR (see above).

    *after_cr* says that *data* continues a message whose last octet so
    far was a CR, for callers converting it piece by piece.
    """
    kept = b""
    if after_cr and data[:2] == b"\r\n":
        kept, data = b"\r\n", data[2:]
    disk = data.replace(b"\r\n", b"\n")
    # A CRLF is left in the result exactly where a CR came before one: rare,
    # and a result without any CR (a fast scan) has none.
    if b"\r" in disk and b"\r\n" in disk:
        disk = _CRLF_NOT_AFTER_CR.sub(b"\n", data)
    return kept + disk


def to_wire(data: bytes) -> bytes:
    """Message bytes as sent over POP3/IMAP: CRLF line ends (RFC 5322 2.1)."""
    if b"\r" not in data:
        return data.replace(b"\n", b"\r\n")
    return BARE_LF.sub(b"\r\n", data)


def wire_size(disk: bytes) -> int:
    """Octets of :func:`to_wire` (*disk*) without building it.

    Counting CRLFs is four times slower than counting LFs, and a message
    without a CR (nearly all) has none to count.
    """
    size = len(disk) + disk.count(b"\n")
    return size - disk.count(b"\r\n") if b"\r" in disk else size


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


def wire_size_of(stored: BinaryIO, chunk: int = CHUNK) -> int:
    """Octets of the disk-form file *stored* in wire form: :func:`wire_chunks` counted, not built.

    A first sync of a folder other programs wrote counts every file this way.
    """
    total, after_cr = 0, False
    while data := stored.read(chunk):
        total += wire_size(data)
        if after_cr and data[:1] == b"\n":
            total -= 1  # the LF of a CRLF split between chunks, which wire_size took for a bare LF
        after_cr = data[-1:] == b"\r"
    return total


#: Ends a multi-line POP3 response and SMTP's message data.
TERMINATOR = b".\r\n"


def stuffed(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The wire-form *chunks* byte-stuffed, then the terminating line (POP3 responses, SMTP DATA).

    RFC 1939 3 and RFC 5321 4.5.2: a line that begins with the termination
    octet is stuffed, the first line included.  A "." is stuffed after every
    LF, not only after CRLF: common POP3 clients (poplib among them) split
    lines at LF, so a bare LF followed by "." would otherwise end the
    response for them early (:func:`wire_chunks` leaves no bare LF, so for
    SMTP this is the same rule).  The terminating "." must be alone on its
    line, so a message without a final line end gets one.
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

"""The DATA body (RFC 5321 4.1.1.4), read from raw input a packet at a time.

High-level approach: :meth:`DataReader.feed` gets whatever input has
arrived.  It keeps only the unfinished last line between packets (at most
one line's worth: an over-long line is dropped as it arrives), finds the
end of data, and treats the complete lines before it in bulk, which is what
makes intake of large messages fast in Python:

* the end of data is a line holding only "." (RFC 5321 3.3, 4.1.1.4); what
  follows it stays unread, for the command loop, in order;
* RFC 5321 4.5.3.1.6: a line longer than ``max_line`` (CRLF included)
  fails the transaction with 500 at the final dot, and never leaves DATA:
  Twisted's SMTP switches back to command mode there and runs the rest of
  the body as commands (docs/twisted-notes.rst, "SMTP: over-long lines");
* RFC 5321 2.3.8 and 4.1.1.4: CR and LF are line ends only as CRLF.  A
  bare CR is data and kept as it came (the store keeps it byte for byte);
  a bare LF fails the transaction with 554 at the final dot, as a line end
  stored as LF would come back as CRLF and the message would not be what
  was sent;
* RFC 5321 4.5.2 transparency: a leading "." of every line is removed;
* RFC 1870: the message size is the unstuffed size with CRLFs, and the
  first line that takes it over ``max_size`` fails the transaction with 552;
* the first error in the order of the lines wins (wherever the packets were
  cut); after it, lines are neither counted nor kept, and what was kept is
  thrown away.

The lines go, unstuffed and converted to the disk form here (whose wire
size is what tells a bare LF), into a
:class:`~mailsrv.message.body.BodyWriter`, which spools large bodies to disk.
"""

from __future__ import annotations

from mailsrv.message import wire
from mailsrv.message.body import BodyWriter
from mailsrv.smtp import replies
from mailsrv.smtp.replies import Reply


class DataReader:
    """Reads one DATA body into *sink*; a raw reader for :meth:`CommandPump.read_raw`."""

    def __init__(self, sink: BodyWriter, max_line: int, max_size: int) -> None:
        self._sink = sink
        self._max_content = max_line - 2
        self._max_size = max_size
        #: RFC 1870 message size so far: unstuffed octets with their CRLFs.
        self.size = 0
        #: The first error (500 line too long, 552 too big, 554 bare LF), answered at the final dot.
        self.error: Reply | None = None
        self._partial = b""  # the unfinished line, from its start
        self._dropping = False  # inside an over-long line, until its CRLF
        self._held_cr = False  # while dropping: the last octet seen was CR

    def __call__(self, data: bytes) -> tuple[int, bool]:
        """Take *data*; ``(octets consumed, final dot read)``.  All of it is
        consumed unless the final dot was found in it."""
        skipped = 0
        if self._dropping:
            skipped = self._skip_long_line(data)
            if self._dropping:
                return len(data), False
            data = data[skipped:]
        held = len(self._partial)
        buf = self._partial + data
        if buf[:3] == b".\r\n":
            body_end, final = 0, True
        else:
            dot = buf.find(b"\r\n.\r\n")
            if dot >= 0:
                body_end, final = dot + 2, True
            else:
                body_end, final = buf.rfind(b"\r\n") + 2, False  # 1 when there is no CRLF
                if body_end < 2:
                    body_end = 0
        if body_end:
            self._lines(buf[:body_end])
        if final:
            self._partial = b""
            return skipped + body_end + 3 - held, True
        self._partial = buf[body_end:]
        if len(self._partial) - self._partial.endswith(b"\r") > self._max_content:
            self._fail(replies.LINE_TOO_LONG)
            self._dropping, self._held_cr = True, self._partial.endswith(b"\r")
            self._partial = b""
        return skipped + len(data), False

    def _skip_long_line(self, data: bytes) -> int:
        """Drop the rest of an over-long line; the index in *data* just after its CRLF."""
        if self._held_cr and data[:1] == b"\n":
            self._dropping = False
            return 1
        end = data.find(b"\r\n")
        if end < 0:
            self._held_cr = data.endswith(b"\r") or (self._held_cr and not data)
            return len(data)
        self._dropping = False
        return end + 2

    def _lines(self, body: bytes) -> None:
        """Every complete line of *body* (each ends in CRLF, none is the final ".")."""
        if self.error is not None:
            return
        # RFC 5321 4.5.3.1.6: find the first over-long line.  Each window of
        # max_content + 2 octets from a line start must hold a CRLF; every
        # line ending in it is short enough, so resume after its last one.
        window = self._max_content + 2
        good = len(body)
        start = 0
        while good - start > window:
            last = body.rfind(b"\r\n", start, start + window)
            if last < 0:
                good = start
                break
            start = last + 2
        too_long = good < len(body)
        lines, disk, wire_size = _unstuffed(body, good)
        # RFC 5321 2.3.8: the disk form gives back every line but one with a
        # bare LF, which gains a CR; the first such line ends the good ones.
        bare_lf = wire_size != len(lines)
        if bare_lf:
            found = wire.BARE_LF.search(body, 0, good)
            assert found is not None
            line_end = body.rfind(b"\r\n", 0, found.start())
            good = 0 if line_end < 0 else line_end + 2
            lines, disk, wire_size = _unstuffed(body, good)
        room = self._max_size - self.size
        if len(lines) > room:
            # RFC 1870 6.3: the line taking the size over the limit is
            # counted, not kept, and fails the transaction.
            self.size += lines.find(b"\r\n", max(room - 1, 0)) + 2
            self._fail(replies.SIZE_EXCEEDED)
            return
        self.size += len(lines)
        self._sink.write_lines(disk, wire_size)
        if bare_lf:
            self._fail(replies.BARE_LF)
        elif too_long:
            self._fail(replies.LINE_TOO_LONG)

    def _fail(self, error: Reply) -> None:
        """Keep the first error for the final dot and throw away what was kept."""
        if self.error is None:
            self.error = error
            self._sink.abort()


def _unstuffed(body: bytes, end: int) -> tuple[bytes, bytes, int]:
    """The complete lines ``body[:end]`` unstuffed: ``(wire form, disk form, wire size of the disk form)``."""
    # RFC 5321 4.5.2: remove the dot that starts a line.
    lines = body[:end].replace(b"\r\n.", b"\r\n")
    if lines[:1] == b".":
        lines = lines[1:]
    disk = wire.to_disk(lines)
    return lines, disk, wire.wire_size(disk)

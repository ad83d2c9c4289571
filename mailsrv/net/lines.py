"""The input buffer of a connection: bounded lines, and raw octets when a protocol wants them.

Every protocol here reads lines, and two of them also read raw octets in
between (IMAP literals, the SMTP DATA body), so the buffer hands out either,
in order, from one place.  It holds at most one line's worth of unfinished
input: a line that grows past ``max_length`` without ending is reported at
once as :data:`TOO_LONG` (the protocol answers it right away instead of
falling silent until a line end arrives), and the rest of that line is
dropped as it comes.

Twisted's ``LineOnlyReceiver`` keeps an unfinished line however long it
grows, and its SMTP subclass turns an over-long line inside DATA into a
switch back to command mode (docs/twisted-notes.rst, "SMTP: over-long
lines").

Line ends: SMTP accepts only CRLF (RFC 5321 2.3.8: a bare LF is data);
POP3 and IMAP also take a bare LF, as Dovecot does, because clients that
send one mean a line end.
"""

from __future__ import annotations

from typing import Final, Union


class _TooLong:
    """Type of :data:`TOO_LONG`; a named class so test failures read well."""

    def __repr__(self) -> str:
        return "TOO_LONG"


#: Stands in for a line that exceeded the limit; its content is gone.
TOO_LONG: Final = _TooLong()

Line = Union[bytes, _TooLong]

#: How much of an over-long line is kept for the reply (an IMAP tag).
_HEAD = 64
#: Consumed octets are compacted away once this many have piled up.
_COMPACT_AFTER = 64 * 1024


class LineBuffer:
    """Buffered input, read as lines of at most *max_length* octets or as raw octets.

    *max_length* counts a two-octet line end, as RFC 5321 4.5.3.1.6 counts
    the CRLF (1000 is the least a server must accept), so a line's content
    may be ``max_length - 2`` octets.  With *lf_tolerant* a bare LF ends a
    line too, and a CR before it is dropped.
    """

    def __init__(self, max_length: int, lf_tolerant: bool = False) -> None:
        self.max_length = max_length
        self.max_content = max_length - 2
        self.lf_tolerant = lf_tolerant
        self._data = bytearray()
        self._pos = 0  # start of the unread input in _data
        #: Where the search for a line end resumes: before it, the unread input has none.  Without it a
        #: long line sent a few octets at a time would be searched again from its start on every packet.
        self._scanned = 0
        self._discarding = False  # inside an over-long line, until its end
        #: The first octets of the last over-long line (IMAP answers with its tag).
        self.dropped_head = b""

    def __len__(self) -> int:
        """Octets received and not yet read."""
        return len(self._data) - self._pos

    def append(self, data: bytes) -> None:
        """Add input from the connection."""
        self._data += data

    def clear(self) -> None:
        """Forget all unread input (RFC 3207 6: nothing from before TLS survives)."""
        self._data.clear()
        self._pos = self._scanned = 0
        self._discarding = False

    def _end(self) -> tuple[int, int]:
        """``(index of the line end, its length)`` in the unread input, or ``(-1, 0)``."""
        data, pos = self._data, self._pos
        start = max(pos, self._scanned - 1)  # a CR at the end of what was searched may start a CRLF
        end = data.find(b"\n" if self.lf_tolerant else b"\r\n", start)
        if end < 0:
            self._scanned = len(data)
            return -1, 0
        if not self.lf_tolerant:
            return end, 2
        return (end - 1, 2) if end > pos and data[end - 1] == 0x0D else (end, 1)

    def next_line(self) -> Line | None:
        """The next complete line without its end, :data:`TOO_LONG`, or ``None`` (need more input).

        :data:`TOO_LONG` comes once per over-long line, as soon as the
        line is known to be too long; the rest of it is dropped.
        """
        while True:
            end, term = self._end()
            if self._discarding:
                if end < 0:
                    self._drop_unfinished()
                    return None
                self._consume_to(end + term)
                self._discarding = False
                continue
            if end >= 0:
                line = bytes(self._data[self._pos : end])
                self._consume_to(end + term)
                if len(line) <= self.max_content:
                    return line
                self.dropped_head = line[:_HEAD]
                return TOO_LONG
            held_cr = 1 if self._data.endswith(b"\r") else 0
            if len(self) - held_cr > self.max_content:
                self.dropped_head = bytes(self._data[self._pos : self._pos + _HEAD])
                self._discarding = True
                self._drop_unfinished()
                return TOO_LONG
            return None

    def _drop_unfinished(self) -> None:
        """Drop an unfinished over-long line, keeping a trailing CR that may start its CRLF."""
        keep_cr = self._data.endswith(b"\r")
        self._data.clear()
        self._pos = self._scanned = 0
        if keep_cr:
            self._data += b"\r"

    def peek(self) -> bytes:
        """All unread input, not consumed (for raw readers that decide how much to take)."""
        return bytes(self._data[self._pos :])

    def consume(self, count: int) -> None:
        """Mark *count* octets of :meth:`peek` as read."""
        self._consume_to(self._pos + count)

    def _consume_to(self, index: int) -> None:
        self._pos = index
        if self._pos >= len(self._data):
            self._data.clear()
            self._pos = self._scanned = 0
        elif self._pos >= _COMPACT_AFTER:
            del self._data[: self._pos]
            self._scanned = max(0, self._scanned - self._pos)
            self._pos = 0

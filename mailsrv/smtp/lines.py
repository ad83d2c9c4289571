"""CRLF line framing with a hard bound on memory.

Twisted's ``LineOnlyReceiver`` keeps a line without CRLF in memory however
long it grows, and its SMTP subclass turns an over-long line in DATA into a
switch back to command mode (TWISTED-NOTES 1, "Limits").  The framer here
never holds more than ``max_length`` octets of an unfinished line: once a
line is known to be too long, its octets are dropped as they arrive and a
single :data:`TOO_LONG` marker takes its place when its CRLF finally comes,
so the protocol still knows where the next line begins.
"""

from __future__ import annotations

from typing import Final, Union


class _TooLong:
    """Type of :data:`TOO_LONG`; a named class so reprs in test failures read well."""

    def __repr__(self) -> str:
        return "TOO_LONG"


#: Stands in for a line that exceeded the limit; its content is gone.
TOO_LONG: Final = _TooLong()

Line = Union[bytes, _TooLong]


class LineFramer:
    """Split a byte stream on CRLF into lines of at most *max_length* octets.

    *max_length* counts the CRLF, as RFC 5321 4.5.3.1.6 counts it for text
    lines (1000 including CRLF is the minimum a server must accept).
    """

    def __init__(self, max_length: int) -> None:
        self._max_content = max_length - 2
        self._buffer = bytearray()
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Octets held for the unfinished line (for tests and accounting)."""
        return len(self._buffer)

    @property
    def max_content(self) -> int:
        """The longest line content accepted, CRLF excluded."""
        return self._max_content

    @property
    def at_line_start(self) -> bool:
        """True when the next octet fed begins a new line (nothing held or being discarded)."""
        return not self._buffer and not self._discarding

    def line_end(self, data: bytes) -> int:
        """Where in *data* the unfinished line ends: the index just after its CRLF, or -1.

        Feeding ``data[:line_end(data)]`` completes exactly one line and
        leaves the framer :attr:`at_line_start`; the CRLF may straddle the
        previous feed and *data* (a held CR, then LF).
        """
        if self._buffer.endswith(b"\r") and data[:1] == b"\n":
            return 1
        end = data.find(b"\r\n")
        return end + 2 if end >= 0 else -1

    def feed(self, data: bytes) -> list[Line]:
        """Add *data* and return every line it completes, in order."""
        buf = self._buffer
        buf += data
        lines: list[Line] = []
        start = 0
        while True:
            end = buf.find(b"\r\n", start)
            if end < 0:
                break
            if self._discarding or end - start > self._max_content:
                lines.append(TOO_LONG)
                self._discarding = False
            else:
                lines.append(bytes(buf[start:end]))
            start = end + 2
        del buf[:start]
        if len(buf) > self._max_content + 1:
            # Too long already, CRLF or not.  Keep a trailing CR: it may be
            # the first half of the CRLF that ends this line.
            keep = buf.endswith(b"\r")
            buf.clear()
            if keep:
                buf += b"\r"
            self._discarding = True
        return lines

    def clear(self) -> None:
        """Forget the unfinished line (RFC 3207 6: nothing from before TLS survives)."""
        self._buffer.clear()
        self._discarding = False

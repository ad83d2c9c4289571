"""The bounded input buffer: lines, raw octets, and over-long lines reported at once."""

from __future__ import annotations

from twisted.trial import unittest

from mailsrv.net.lines import TOO_LONG, LineBuffer


def lines(buffer: LineBuffer) -> list[object]:
    out = []
    while (line := buffer.next_line()) is not None:
        out.append(line)
    return out


class CRLFTests(unittest.TestCase):
    def test_lines_end_only_at_crlf(self):
        buffer = LineBuffer(100)
        buffer.append(b"EHLO a\r\nbare\nlf\r\npartial")
        self.assertEqual(lines(buffer), [b"EHLO a", b"bare\nlf"])
        self.assertEqual(len(buffer), len(b"partial"))

    def test_crlf_split_across_packets(self):
        buffer = LineBuffer(100)
        buffer.append(b"NOOP\r")
        self.assertEqual(lines(buffer), [])
        buffer.append(b"\nQUIT\r\n")
        self.assertEqual(lines(buffer), [b"NOOP", b"QUIT"])

    def test_limit_counts_the_crlf(self):
        buffer = LineBuffer(10)
        buffer.append(b"12345678\r\n123456789\r\n")
        self.assertEqual(lines(buffer), [b"12345678", TOO_LONG])

    def test_unfinished_over_long_line_is_reported_at_once_and_dropped(self):
        buffer = LineBuffer(10)
        buffer.append(b"x" * 9)
        self.assertEqual(lines(buffer), [TOO_LONG])
        self.assertEqual(len(buffer), 0)
        buffer.append(b"y" * 100_000)
        self.assertEqual(lines(buffer), [])  # one report per line, not per packet
        self.assertEqual(len(buffer), 0)
        buffer.append(b"tail\r\nNEXT\r\n")
        self.assertEqual(lines(buffer), [b"NEXT"])

    def test_a_cr_ending_a_dropped_packet_still_pairs_with_the_next_lf(self):
        buffer = LineBuffer(10)
        buffer.append(b"x" * 20 + b"\r")
        self.assertEqual(lines(buffer), [TOO_LONG])
        buffer.append(b"\nNEXT\r\n")
        self.assertEqual(lines(buffer), [b"NEXT"])

    def test_full_line_awaiting_its_lf_is_not_too_long(self):
        buffer = LineBuffer(10)
        buffer.append(b"12345678\r")
        self.assertEqual(lines(buffer), [])
        buffer.append(b"\n")
        self.assertEqual(lines(buffer), [b"12345678"])

    def test_clear_forgets_unread_input(self):
        buffer = LineBuffer(100)
        buffer.append(b"STARTTLS\r\nRSET\r\n")
        self.assertEqual(buffer.next_line(), b"STARTTLS")
        buffer.clear()
        self.assertEqual(lines(buffer), [])

    def test_raw_octets_between_lines(self):
        buffer = LineBuffer(100)
        buffer.append(b"a APPEND x {5}\r\nhello)\r\nb NOOP\r\n")
        self.assertEqual(buffer.next_line(), b"a APPEND x {5}")
        self.assertEqual(buffer.peek()[:5], b"hello")
        buffer.consume(5)
        self.assertEqual(lines(buffer), [b")", b"b NOOP"])


class LFTolerantTests(unittest.TestCase):
    def test_bare_lf_and_crlf_both_end_lines(self):
        buffer = LineBuffer(100, lf_tolerant=True)
        buffer.append(b"USER a\nPASS b c\r\n\n")
        self.assertEqual(lines(buffer), [b"USER a", b"PASS b c", b""])

    def test_many_small_lines_are_read_without_quadratic_copying(self):
        buffer = LineBuffer(100, lf_tolerant=True)
        buffer.append(b"STAT\r\n" * 200_000)
        self.assertEqual(len(lines(buffer)), 200_000)

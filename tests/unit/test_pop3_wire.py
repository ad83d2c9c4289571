"""RFC 1939 framing: byte-stuffing of every line and TOP's header/body split, streamed."""

from __future__ import annotations

import random

from twisted.trial import unittest

from mailsrv.pop3 import wire


def multiline(data: bytes) -> bytes:
    return b"".join(wire.stuffed([data]))


def top(data: bytes, lines: int) -> bytes:
    return b"".join(wire.top([data], lines))


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    """*data* in random pieces, empty ones included."""
    cuts = sorted(rng.randint(0, len(data)) for _ in range(rng.randint(0, 6)))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]


class StuffingTests(unittest.TestCase):
    def test_first_line_starting_with_dot_is_stuffed(self):
        self.assertEqual(multiline(b".first\r\nsecond\r\n"), b"..first\r\nsecond\r\n.\r\n")

    def test_lone_dot_first_line_is_stuffed(self):
        self.assertEqual(multiline(b".\r\nafter\r\n"), b"..\r\nafter\r\n.\r\n")

    def test_dot_line_at_exactly_16_kib_is_stuffed(self):
        # Twisted's FileSender chunks are 16 KiB: its transformChunk misses this line.
        head = b"x" * (16 * 1024 - 2) + b"\r\n"
        self.assertEqual(len(head), 16 * 1024)
        data = head + b".\r\nQUIT\r\n"
        self.assertEqual(multiline(data), head + b"..\r\nQUIT\r\n.\r\n")

    def test_every_dot_line_is_stuffed_once(self):
        data = b"a\r\n.\r\n..\r\n.b\r\nc.\r\n"
        self.assertEqual(multiline(data), b"a\r\n..\r\n...\r\n..b\r\nc.\r\n.\r\n")

    def test_missing_final_crlf_is_added_before_the_terminator(self):
        self.assertEqual(multiline(b"Subject: x\r\n\r\nno newline"), b"Subject: x\r\n\r\nno newline\r\n.\r\n")

    def test_dot_after_bare_lf_is_stuffed_for_lf_splitting_clients(self):
        self.assertEqual(multiline(b"a\n.\r\n"), b"a\n..\r\n.\r\n")

    def test_empty_message_is_just_the_terminator(self):
        self.assertEqual(multiline(b""), b".\r\n")

    def test_where_the_chunks_are_cut_does_not_matter(self):
        rng = random.Random(1939)
        for _ in range(2000):
            data = bytes(rng.choice(b"a.\r\n") for _ in range(rng.randint(0, 40)))
            self.assertEqual(b"".join(wire.stuffed(cut(data, rng))), multiline(data), data)


class TopTests(unittest.TestCase):
    message = b"From: a\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"

    def test_zero_lines_is_header_and_blank_line(self):
        self.assertEqual(top(self.message, 0), b"From: a\r\nSubject: s\r\n\r\n")

    def test_n_lines_of_body(self):
        self.assertEqual(top(self.message, 2), b"From: a\r\nSubject: s\r\n\r\nline 1\r\nline 2\r\n")

    def test_more_lines_than_the_body_has_is_the_whole_message(self):
        self.assertEqual(top(self.message, 999999999), self.message)

    def test_last_line_without_crlf_is_counted(self):
        self.assertEqual(top(b"H: v\r\n\r\nb1\r\nb2", 2), b"H: v\r\n\r\nb1\r\nb2")

    def test_split_found_past_a_large_header_section(self):
        header = b"".join(b"X-Pad-%05d: %s\r\n" % (i, b"p" * 60) for i in range(1000))
        self.assertGreater(len(header), 64 * 1024)
        message = header + b"\r\nbody 1\r\nbody 2\r\n"
        self.assertEqual(top(message, 1), header + b"\r\nbody 1\r\n")

    def test_message_without_blank_line_is_all_header(self):
        self.assertEqual(top(b"A: 1\r\nB: 2\r\n", 0), b"A: 1\r\nB: 2\r\n")

    def test_message_starting_with_blank_line_has_empty_header(self):
        self.assertEqual(top(b"\r\nbody\r\nmore\r\n", 1), b"\r\nbody\r\n")

    def test_blank_line_in_body_is_not_mistaken_for_the_split(self):
        message = b"H: v\r\n\r\nb1\r\n\r\nb3\r\n"
        self.assertEqual(top(message, 2), b"H: v\r\n\r\nb1\r\n\r\n")

    def test_where_the_chunks_are_cut_does_not_matter(self):
        rng = random.Random(7)
        for _ in range(5000):
            data = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randint(0, 40)))
            lines = rng.randint(0, 4)
            self.assertEqual(b"".join(wire.top(cut(data, rng), lines)), top(data, lines), (data, lines))

    def test_reads_no_further_than_it_needs(self):
        chunks = iter([b"H: v\r\n\r\nb1\r\n", b"b2\r\n"])
        self.assertEqual(b"".join(wire.top(chunks, 1)), b"H: v\r\n\r\nb1\r\n")
        self.assertEqual(next(chunks), b"b2\r\n")

"""message/wire.py: the two line-end forms."""

from __future__ import annotations

import io
import random

from twisted.trial import unittest

from mailsrv.message import wire


class WireFormTests(unittest.SynchronousTestCase):
    def test_wire_size_matches_to_wire(self):
        for disk in (b"", b"a\nb\n", b"a\r\nb\n", b"no newline", b"\n\n\r\n", b"a\rb\n", b"\r"):
            self.assertEqual(wire.wire_size(disk), len(wire.to_wire(disk)))
        rng = random.Random(1939)
        for _ in range(2000):
            disk = bytes(rng.choice(b"a\r\n") for _ in range(rng.randint(0, 40)))
            self.assertEqual(wire.wire_size(disk), len(wire.to_wire(disk)), disk)

    def test_a_files_wire_size_is_that_of_its_chunks_wherever_they_are_cut(self):
        rng = random.Random(3501)
        for _ in range(2000):
            disk = bytes(rng.choice(b"a\r\n") for _ in range(rng.randint(0, 40)))
            chunk = rng.randint(1, 8)
            expected = sum(len(piece) for piece in wire.wire_chunks(io.BytesIO(disk), chunk))
            self.assertEqual(expected, len(wire.to_wire(disk)), disk)
            self.assertEqual(wire.wire_size_of(io.BytesIO(disk), chunk), expected, (disk, chunk))

    def test_disk_form_gives_back_every_message_without_a_bare_lf(self):
        # A CR before a CRLF is kept: "x\r\r\n" must not come back as "x\r\n".
        for sent in (b"x\r\r\ny", b"\r\r\n", b"\r\r\r\n", b"a\rb\r\n", b"\r\n\r\n", b"x\r", b"\r"):
            self.assertEqual(wire.to_wire(wire.to_disk(sent)), sent, sent)
        self.assertEqual(wire.to_disk(b"x\r\r\ny\r\n"), b"x\r\r\ny\n")
        rng = random.Random(2038)
        for _ in range(2000):
            sent = bytes(rng.choice(b"a\r\r\n") for _ in range(rng.randint(0, 40))).replace(b"\n", b"\r\n")
            self.assertEqual(wire.to_wire(wire.to_disk(sent)), sent, sent)

    def test_piecewise_conversion_equals_the_whole(self):
        rng = random.Random(5321)
        for _ in range(2000):
            sent = bytes(rng.choice(b"a\r\n") for _ in range(rng.randint(0, 40)))
            cut = rng.randint(0, len(sent))
            head, tail = sent[:cut], sent[cut:]
            if head.endswith(b"\r") and tail.startswith(b"\n"):
                continue  # a writer holds that CR back until it sees what follows
            pieces = wire.to_disk(head) + wire.to_disk(tail, after_cr=head.endswith(b"\r"))
            self.assertEqual(pieces, wire.to_disk(sent), (head, tail))

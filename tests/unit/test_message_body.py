"""Message bodies: in memory while small, spooled to a file past the threshold, sizes counted on the way in."""

from __future__ import annotations

import os
import random

from twisted.trial import unittest

from mailsrv.message import wire
from mailsrv.message.body import Body, BodyType, BodyWriter


class BodyWriterTests(unittest.TestCase):
    def setUp(self) -> None:
        self.spool = self.mktemp()

    def test_small_body_stays_in_memory_in_disk_form(self):
        writer = BodyWriter(self.spool, threshold=1000)
        writer.write(b"Subject: x\r\n\r\nhello\r\n")
        body = writer.finish()
        self.assertTrue(body.in_memory)
        self.assertEqual(body.read(), b"Subject: x\n\nhello\n")
        self.assertEqual((body.size, body.wire_size), (18, 21))
        self.assertFalse(os.path.exists(self.spool))  # no file was made

    def test_large_body_is_spooled_and_memory_stays_small(self):
        writer = BodyWriter(self.spool, threshold=1000)
        line = b"x" * 998 + b"\r\n"
        for _ in range(200):
            writer.write(line)
            self.assertLess(len(writer._memory), 70 * 1024)
        self.assertTrue(writer.spooled)
        body = writer.finish()
        self.assertFalse(body.in_memory)
        self.assertEqual(os.path.dirname(body.path), os.path.abspath(self.spool))
        self.assertEqual(os.path.getsize(body.path), body.size)
        self.assertEqual((body.size, body.wire_size), (200 * 999, 200 * 1000))
        body.discard()
        self.assertEqual(os.listdir(self.spool), [])

    def test_abort_removes_the_spool_file(self):
        writer = BodyWriter(self.spool, threshold=10)
        writer.write(b"y" * 100 + b"\r\n")
        writer.abort()
        self.assertEqual(os.listdir(self.spool), [])

    def test_pieces_may_be_cut_anywhere(self):
        rng = random.Random(6152)
        for _ in range(1500):
            data = bytes(rng.choice(b"ab\r\n.") for _ in range(rng.randint(0, rng.choice((12, 3000)))))
            writer = BodyWriter(self.spool, threshold=rng.choice((10, 100, 100_000)))
            start = 0
            while start < len(data):
                end = start + rng.randint(1, 50)
                writer.write(data[start:end])
                start = end
            body = writer.finish()
            disk = wire.to_disk(data)
            self.assertEqual(body.read(), disk, data)
            self.assertEqual((body.size, body.wire_size), (len(disk), wire.wire_size(disk)), data)
            body.discard()

    def test_declared_body_type_travels_with_the_body(self):
        writer = BodyWriter(self.spool, body_type=BodyType.declared("8bitmime"))
        writer.write(b"caf\xc3\xa9\r\n")
        self.assertIs(writer.finish().body_type, BodyType.EIGHT_BIT_MIME)


class InsertTests(unittest.TestCase):
    def test_header_lines_go_where_asked_in_memory_and_spooled(self):
        spool = self.mktemp()
        for threshold in (10, 1_000_000):
            writer = BodyWriter(spool, threshold)
            writer.write(b"Received: x\r\nSubject: x\r\n\r\nhello\r\n" * 5)
            body = writer.finish()
            spooled = not body.in_memory
            old_path = body.path
            new = body.insert([(0, b"X-Check: 1\r\n"), (len(b"Received: x\n"), b"Date: now\r\n")])
            self.assertEqual(new.read(), b"X-Check: 1\nReceived: x\nDate: now\nSubject: x\n\nhello\n"
                             + b"Received: x\nSubject: x\n\nhello\n" * 4)
            self.assertEqual(new.wire_size, len(b"X-Check: 1\r\nDate: now\r\n")
                             + len(b"Received: x\r\nSubject: x\r\n\r\nhello\r\n") * 5)
            self.assertEqual(not new.in_memory, spooled)
            if old_path:
                self.assertFalse(os.path.exists(old_path))  # the old spool file went
            new.discard()

    def test_a_large_spooled_body_is_copied_a_block_at_a_time(self):
        spool = self.mktemp()
        writer = BodyWriter(spool, threshold=1000)
        writer.write(b"Received: x\r\n")
        for _ in range(3000):
            writer.write(b"y" * 998 + b"\r\n")
        body = writer.finish()
        blocks = []
        real_open = body.open

        def counting_open():
            reader = real_open()
            read = reader.read
            reader.read = lambda size=-1: blocks.append(size) or read(size)
            return reader

        body.open = counting_open
        new = body.insert([(len(b"Received: x\n"), b"Date: now\r\n")])
        self.assertTrue(blocks and all(0 < size <= 64 * 1024 for size in blocks), blocks[:5])
        self.assertEqual(new.size, body_size := len(b"Received: x\nDate: now\n") + 3000 * 999)
        self.assertEqual(os.path.getsize(new.path), body_size)
        new.discard()

    def test_from_wire(self):
        body = Body.from_wire(b"a\r\nb\r\n")
        self.assertEqual((body.read(), body.size, body.wire_size), (b"a\nb\n", 4, 6))

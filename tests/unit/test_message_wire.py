"""message/wire.py: the two line-end forms."""

from __future__ import annotations

from twisted.trial import unittest

from mailsrv.message import wire


class WireFormTests(unittest.SynchronousTestCase):
    def test_wire_size_matches_to_wire(self):
        for disk in (b"", b"a\nb\n", b"a\r\nb\n", b"no newline", b"\n\n\r\n"):
            self.assertEqual(wire.wire_size(disk), len(wire.to_wire(disk)))

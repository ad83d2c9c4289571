"""Resolving sequence sets (RFC 3501 9) against a mailbox's sorted UIDs."""

from __future__ import annotations

import unittest

from mailsrv.imap.sequences import parse_sequence_set, resolve_set


class ResolveSet(unittest.TestCase):
    UIDS = [2, 4, 6, 8, 10, 12]

    def resolve(self, text: bytes) -> list[int]:
        return resolve_set(self.UIDS, parse_sequence_set(text))

    def test_each_message_once_in_mailbox_order(self) -> None:
        """Overlapping and unordered ranges name a message once, in ascending order (RFC 3501 9: a set, not a list)."""
        self.assertEqual(self.resolve(b"8:12,1:5,4:9,6"), [0, 1, 2, 3, 4, 5])
        self.assertEqual(self.resolve(b"10,3:5"), [1, 4])
        self.assertEqual(self.resolve(b"5:7,7:5"), [2])

    def test_star_and_gaps(self) -> None:
        """``*`` is the highest UID in use; numbers between UIDs name nothing."""
        self.assertEqual(self.resolve(b"11:*"), [5])
        self.assertEqual(self.resolve(b"*"), [5])
        self.assertEqual(self.resolve(b"3,5,7"), [])
        self.assertEqual(resolve_set([], parse_sequence_set(b"1:*")), [])

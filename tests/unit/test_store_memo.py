"""Memo: a conversion remembered per key while its table is the same object, bounded."""

from __future__ import annotations

from twisted.trial import unittest

from mailsrv.store.memo import Memo


class MemoTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.calls: list[str] = []
        self.memo = Memo(self.convert, limit=3)

    def convert(self, key: str, table: dict[str, str]) -> frozenset[str]:
        self.calls.append(key)
        return frozenset(table.get(c, c) for c in key)

    def test_one_shared_result_per_key(self):
        table = {"S": "\\Seen"}
        first = self.memo("S", table)
        self.assertIs(self.memo("S", table), first)
        self.assertEqual(self.calls, ["S"])

    def test_a_new_table_starts_over(self):
        self.memo("S", {"S": "\\Seen"})
        self.assertEqual(self.memo("S", {"S": "$Other"}), frozenset({"$Other"}))
        self.assertEqual(self.calls, ["S", "S"])

    def test_past_the_limit_it_starts_over(self):
        table: dict[str, str] = {}
        for key in ("a", "b", "c", "d", "a"):
            self.memo(key, table)
        self.assertEqual(self.calls, ["a", "b", "c", "d", "a"])  # full at d: a was forgotten

"""The per-user message cache: rows, the full-text table, pruning, and a file that cannot be read."""

from __future__ import annotations

import glob
import os
import sqlite3
import threading
from contextlib import closing

from twisted.internet.task import Clock
from twisted.trial import unittest

from mailsrv.message.body import Body
from mailsrv.store import UserStore, cache, idledb
from mailsrv.store.cache import FILENAME, MessageCache
from mailsrv.store.userstore import PRUNE_DELAY
from mailsrv.workers import InlineExecutor


class Cache(unittest.TestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        os.makedirs(self.root)
        self.cache = MessageCache(self.root)

    def test_rows_keep_what_was_stored_first(self) -> None:
        self.assertTrue(self.cache.put({"k1": {"envelope": b"(E1)", "h_from": b"alice"}}))
        self.assertTrue(self.cache.put({"k1": {"envelope": b"(other)", "bodystructure": b"(B)"}}))
        self.assertEqual(self.cache.get(["k1", "k2"], ("envelope", "bodystructure", "body")),
                         {"k1": (b"(E1)", b"(B)", None)})
        self.assertEqual(self.cache.get(["k1", "k2"]), {"k1": ()})

    def test_a_file_of_the_earlier_schema_gets_the_new_columns_and_keeps_its_rows(self) -> None:
        path = os.path.join(self.root, FILENAME)
        with closing(sqlite3.connect(path)) as db:  # the release before the sort keys had their columns
            db.executescript(cache._SCHEMA.replace(", s_from BLOB, s_to BLOB, s_cc BLOB, s_subject BLOB, s_sent BLOB", ""))
            db.execute("INSERT INTO entries (key, fields) VALUES ('k1', x'4631')")
            db.commit()
            self.assertNotIn("s_from", {row[1] for row in db.execute("PRAGMA table_info(entries)")})
        self.assertEqual(self.cache.get(["k1"], ("fields", "s_from", "s_sent")), {"k1": (b"F1", None, None)})
        self.assertTrue(self.cache.put({"k1": {"s_from": b"ALICE", "s_sent": 1.5}}))
        self.assertEqual(self.cache.get(["k1"], ("fields", "s_from", "s_sent")), {"k1": (b"F1", b"ALICE", 1.5)})
        self.assertEqual(self.cache.lacking("s_from", ["k1", "k2"]), [1])

    def test_many_keys_are_read_in_one_scan(self) -> None:
        self.cache.put({f"k{n}": {"envelope": b"%d" % n} for n in range(6000)})
        found = self.cache.get([f"k{n}" for n in range(0, 12000, 2)], ("envelope",))
        self.assertEqual(len(found), 3000)
        self.assertEqual(found["k5998"], (b"5998",))

    def test_columns_follow_the_keys_order_with_none_for_a_key_without_a_row(self) -> None:
        self.cache.put({"k1": {"s_from": b"A", "s_sent": 1.5}, "k2": {"s_from": b"B"}})
        self.assertEqual(self.cache.columns(["k2", "k9", "k1"], ("s_from", "s_sent")),
                         [[b"B", None, b"A"], [None, None, 1.5]])
        self.assertEqual(self.cache.columns(["k1"], ("s_from",)), [[b"A"]])
        self.assertEqual(self.cache.columns(["k9"], ("s_from",)), [[None]])
        self.assertEqual(self.cache.columns([], ("s_from", "s_to")), [[], []])

    def test_columns_of_many_keys_come_from_one_scan_alike(self) -> None:
        self.cache.put({f"k{n}": {"s_subject": b"%d" % n} for n in range(6000)})
        keys = [f"k{n}" for n in range(12000, 0, -2)]
        [subjects] = self.cache.columns(keys, ("s_subject",))
        self.assertEqual(subjects, [b"%d" % n if n < 6000 else None for n in range(12000, 0, -2)])

    def test_header_matching_is_substring_of_the_utf8_text(self) -> None:
        self.cache.put({"a": {"h_present": 1, "h_from": "jürgen <j@x>".encode()}, "b": {"h_present": 3, "h_from": b""},
                        "c": {"h_present": 2, "h_from": b""}, "d": {}})
        self.assertEqual(self.cache.matching("h_from", "ürg".encode()), {"a"})
        self.assertEqual(self.cache.matching("h_from", b""), {"a", "b"})  # no field: no match, even for ""

    def test_lacking_names_the_keys_without_the_column(self) -> None:
        self.cache.put({"a": {"h_present": 0}, "b": {"envelope": b"(E)"}})
        self.assertEqual(self.cache.lacking("h_present", ["a", "b", "c"]), [1, 2])
        self.cache.put({"b": {"h_present": 1}})
        self.assertEqual(self.cache.lacking("h_present", ["c", "b", "a"]), [0])

    def test_what_lacking_remembers_is_forgotten_when_another_process_prunes(self) -> None:
        self.cache.put({"a": {"h_present": 0}, "b": {"h_present": 0}})
        self.assertEqual(self.cache.lacking("h_present", ["a", "b"]), [])  # now remembered
        other = MessageCache(self.root)  # another process on the same file
        self.assertEqual(other.prune({"a"}), 1)
        self.assertEqual(self.cache.lacking("h_present", ["a", "b"]), [1])

    def test_what_lacking_remembers_is_forgotten_with_the_file(self) -> None:
        self.cache.put({"a": {"h_present": 0}})
        self.assertEqual(self.cache.lacking("h_present", ["a"]), [])
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.cache.path + suffix):
                os.remove(self.cache.path + suffix)  # an operator deleting the cache
        self.assertEqual(self.cache.lacking("h_present", ["a"]), [0])

    def test_texts_match_substrings_of_any_length(self) -> None:
        self.assertEqual(self.cache.index([[("a", "subject: hi", "the quick fox"), ("b", "x", 'say "hi" straße')],
                                           [("c", "", "abc xbcd")]]), {"a", "b", "c"})
        self.assertEqual(self.cache.unindexed(["a", "b", "c", "d"]), ["d"])

        def find(columns: str, needle: str) -> set[str] | None:
            return self.cache.texts_matching(columns, needle, lambda head, body: needle in body or (
                columns != "body" and needle in head))

        self.assertEqual(find("body", "uick f"), {"a"})
        self.assertEqual(find("body", '"hi"'), {"b"})
        self.assertEqual(find("body", "aße"), {"b"})
        self.assertEqual(find("body", "hi"), {"b"})  # two characters: every row read and confirmed
        self.assertEqual(find("head body", "hi"), {"a", "b"})
        self.assertEqual(find("body", ""), {"a", "b", "c"})
        self.assertEqual(find("body", "nowhere"), set())
        self.assertEqual(find("body", "abcd"), set())  # every trigram there, not the substring: confirmed away

    def test_a_failed_batch_keeps_the_batches_before_it(self) -> None:
        def batches():
            yield [("a", "", "first")]
            yield [("b", "", "second")]
            raise sqlite3.OperationalError("database or disk is full")  # as a failed INSERT would

        self.assertEqual(self.cache.index(batches()), {"a", "b"})
        self.assertEqual(self.cache.unindexed(["a", "b", "c"]), ["c"])

    def test_prune_forgets_keys_no_folder_holds(self) -> None:
        self.cache.put({"a": {"envelope": b"A"}, "b": {"envelope": b"B"}})
        self.cache.index([[("b", "", "text"), ("c", "", "text")]])
        self.assertEqual(self.cache.prune({"a"}), 2)
        self.assertEqual(self.cache.get(["a", "b"]), {"a": ()})
        self.assertEqual(self.cache.unindexed(["a", "b", "c"]), ["a", "b", "c"])

    def test_a_corrupt_file_is_moved_aside_and_started_anew(self) -> None:
        self.cache.put({"a": {"envelope": b"A"}})
        path = os.path.join(self.root, FILENAME)
        idledb.close_all()  # damaged while nobody had it open (its WAL checkpointed in)
        with open(path, "r+b") as f:
            f.write(b"garbage!" * 512)
        self.assertEqual(self.cache.get(["a"], ("envelope",)), {})
        self.assertEqual(len(glob.glob(path + ".corrupt-*")), 1)
        self.assertTrue(self.cache.put({"a": {"envelope": b"A"}}))
        self.assertEqual(self.cache.get(["a"], ("envelope",)), {"a": (b"A",)})

    def test_a_cache_that_cannot_be_written_answers_not_cached(self) -> None:
        self.cache.put({"a": {"envelope": b"A"}})
        db = sqlite3.connect(os.path.join(self.root, FILENAME), isolation_level=None)
        self.addCleanup(db.close)
        db.execute("BEGIN EXCLUSIVE")  # another process holds the write lock past the timeout
        self.patch(cache, "BUSY_TIMEOUT_MS", 50)  # the test need not wait 5 s
        fresh = MessageCache(self.root)
        self.assertFalse(fresh.put({"b": {"envelope": b"B"}}))

    def test_it_is_used_from_any_thread(self) -> None:
        self.cache.put({"a": {"envelope": b"A"}})
        found = []
        thread = threading.Thread(target=lambda: found.append(self.cache.get(["a"], ("envelope",))))
        thread.start()
        thread.join()
        self.assertEqual(found, [{"a": (b"A",)}])



class Pruning(unittest.TestCase):
    def test_a_user_store_prunes_the_rows_no_folder_holds_when_a_folder_is_opened(self) -> None:
        root = self.mktemp()
        user = UserStore("alice@example.test", root, InlineExecutor())
        self.successResultOf(user.create_folder("Archive"))
        inbox = self.successResultOf(user.open("INBOX"))
        self.successResultOf(inbox.append(Body.from_wire(b"Subject: kept\r\n\r\nx\r\n")))
        held = inbox.messages()[0].key
        user.cache.put({held: {"envelope": b"(kept)"}, "gone": {"envelope": b"(gone)"}})
        self.successResultOf(user.open("Archive"))  # pruned at most once an hour
        self.assertEqual(set(user.cache.get([held, "gone"])), {held, "gone"})
        user._pruned_at = None
        self.successResultOf(user.open("Archive"))
        self.assertEqual(set(user.cache.get([held, "gone"])), {held})

    def test_with_a_clock_the_pruning_waits_until_the_opening_client_is_answered(self) -> None:
        clock = Clock()
        user = UserStore("alice@example.test", self.mktemp(), InlineExecutor(), clock)
        inbox = self.successResultOf(user.open("INBOX"))
        user.cache.put({"gone": {"envelope": b"(gone)"}})
        self.successResultOf(user.open("INBOX"))
        clock.advance(PRUNE_DELAY - 1)
        self.assertEqual(set(user.cache.get(["gone"])), {"gone"})
        clock.advance(1)
        self.assertEqual(user.cache.get(["gone"]), {})
        self.assertEqual(inbox.messages(), [])

"""The persisted folder snapshot (``mailsrv-snapshot``): trusted, stale, missing, corrupt, shared."""

from __future__ import annotations

import os
import re

from store_harness import ALICE, ManualExecutor, StoreTestCase, age_directories

from twisted.internet import task

from mailsrv.store import Store, folder as folder_module, modseqs, snapfile, uidlist, writing
from mailsrv.store.message import MessageInfo
from mailsrv.workers import InlineExecutor

OTHER = b"Subject: x\n\nfrom another program\n"


def _rows(folder) -> list[tuple[MessageInfo, str]]:
    return [(info, folder._snap.rel(info.uid)) for info in folder.messages()]


class PersistedSnapshotTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        for _ in range(3):
            self.deliver()
        self.inbox = self.folder()
        self.done(self.inbox.store_flags([(2, frozenset({"\\Seen", "$Label1"}))]))
        self.path = self.inbox.path
        self.relist_settled()

    def relist_settled(self) -> None:
        """Date the directories back and list again: the file then reflects a listing it can trust."""
        age_directories(self.path)
        self.done(self.inbox.sync())

    def restart(self) -> tuple[ManualExecutor, object]:
        """A new process's store opening alice's INBOX: its jobs, and the folder."""
        executor = ManualExecutor()
        opened = Store(self.root, executor).user(ALICE).open("INBOX")
        executor.run_all()
        return executor, self.successResultOf(opened)

    def test_an_unchanged_folder_is_opened_from_the_file_alone(self):
        executor, inbox = self.restart()
        self.assertNotIn("list_folder", executor.ran)
        self.assertNotIn("describe", executor.ran)
        self.assertEqual(_rows(inbox), _rows(self.inbox))
        self.assertEqual((inbox.uidvalidity, inbox.uidnext, inbox.highest_modseq),
                         (self.inbox.uidvalidity, self.inbox.uidnext, self.inbox.highest_modseq))
        self.assertEqual(inbox.recent_count(), 2)  # 1 and 3 are still in new/

    def test_the_file_records_what_a_listing_found(self):
        os.unlink(os.path.join(self.path, snapfile.FILENAME))
        self.relist_settled()  # the stamps moved: the next sync lists, and writes the file again
        executor, inbox = self.restart()
        self.assertNotIn("list_folder", executor.ran)
        self.assertEqual(_rows(inbox), _rows(self.inbox))

    def test_a_missing_file_means_a_listing(self):
        os.unlink(os.path.join(self.path, snapfile.FILENAME))
        executor, inbox = self.restart()
        self.assertIn("list_folder", executor.ran)
        self.assertEqual(_rows(inbox), _rows(self.inbox))

    def test_a_corrupt_file_is_not_used_and_is_written_anew(self):
        path = os.path.join(self.path, snapfile.FILENAME)
        with open(path, "r+b") as f:
            data = f.read()
            f.seek(len(data) - 40)
            f.write(bytes(b ^ 0x55 for b in data[-40:-39]))
        self.assertIsNone(snapfile.read(self.path))
        executor, inbox = self.restart()
        self.assertIn("list_folder", executor.ran)
        self.assertEqual(_rows(inbox), _rows(self.inbox))
        self.assertIsNotNone(snapfile.read(self.path))

    def test_truncated_or_foreign_files_read_as_none(self):
        path = os.path.join(self.path, snapfile.FILENAME)
        with open(path, "rb") as f:
            data = f.read()
        for bad in (data[:-1], data[: len(snapfile.MAGIC) + 5], b"mailsrv-snapshot 99\n{}\n", b"", b"\0" * 64):
            with open(path, "wb") as f:
                f.write(bad)
            self.assertIsNone(snapfile.read(self.path), bad[:30])

    def test_files_whose_uids_or_names_do_not_hold_read_as_none(self):
        persisted = snapfile.read(self.path)
        sources, snap = persisted.sources, persisted.snapshot
        order, infos, places = snap.ordered(), snap.infos, snap.places
        self.assertEqual(snapfile.decode(snapfile.encode(sources, order, infos, places)).snapshot.places, places)
        first, second = order[0], order[1]
        self.assertEqual(places[first], "new/")
        bad = {
            "duplicate UID": ([first, first] + order[2:], infos, places),
            "descending UIDs": ([second, first] + order[2:], infos, places),
            "another key's file": (order, infos, {**places, first: "new/x"}),
            "a file outside new/ and cur/": (order, infos, {**places, first: "tmp/"}),
        }
        for why, (uids, rows, names) in bad.items():
            with self.assertRaises(snapfile.Unreadable, msg=why):
                snapfile.decode(snapfile.encode(sources, uids, rows, names))

    def test_a_restart_maps_every_message_by_uid_key_and_file(self):
        _, inbox = self.restart()
        snap = inbox._snap
        self.assertEqual(inbox.uids(), [1, 2, 3])
        self.assertEqual({key: uid for uid, key in ((u, snap.infos[u].key) for u in snap.infos)}, snap.uid_of)
        self.assertEqual(snap.in_new, {uid for uid in snap.places if snap.rel(uid).startswith("new/")})
        self.assertEqual({snap.rel(uid) for uid in snap.places},
                         {f"{sub}/{name}" for sub in ("new", "cur") for name in os.listdir(os.path.join(inbox.path, sub))})
        self.assertEqual(snap.in_new, {1, 3})
        self.assertIs(snap.places[1], snap.places[3])  # "new/": one string for both
        uids = inbox.uids()
        uids.append(99)  # a session's own copy
        self.assertEqual(inbox.uids(), [1, 2, 3])

    def test_changes_made_while_we_were_down_are_reconciled_from_the_file(self):
        # Another process (a second store on the same directory) expunges 1, flags 3, and a program delivers.
        other = self.folder(store=Store(self.root, InlineExecutor()))
        self.done(other.store_flags([(1, frozenset({"\\Deleted"}))]))
        self.done(other.expunge([1]))
        self.done(other.store_flags([(3, frozenset({"\\Flagged"}))]))
        writing.write_file(os.path.join(self.path, "new", "1.M1P1.other"), OTHER)
        age_directories(self.path)
        executor, inbox = self.restart()
        self.assertIn("list_folder", executor.ran)
        self.assertEqual(executor.ran.count("describe"), 1)  # the new file only: the others came from the file
        self.assertEqual([(i.uid, sorted(i.flags)) for i in inbox.messages()],
                         [(2, ["$Label1", "\\Seen"]), (3, ["\\Flagged"]), (4, [])])
        self.assertEqual(inbox.get(3).modseq, other.get(3).modseq)

    def test_a_flag_change_made_and_undone_elsewhere_still_brings_its_newer_modseq(self):
        # Another mailsrv changed 2's flags and back: the name is as the file has it, the modseq is newer.
        other = self.folder(store=Store(self.root, InlineExecutor()))
        self.done(other.store_flags([(2, frozenset())]))
        self.done(other.store_flags([(2, frozenset({"\\Seen", "$Label1"}))]))
        executor, inbox = self.restart()
        self.assertEqual(inbox.get(2).modseq, other.get(2).modseq)
        self.assertGreater(inbox.get(2).modseq, self.inbox.get(2).modseq)

    def test_a_new_uidvalidity_makes_the_file_useless(self):
        uids = os.path.join(self.path, uidlist.FILENAME)
        with open(uids) as f:
            lines = f.read().splitlines()
        renumbered = [f"3 V{self.inbox.uidvalidity + 7} N14 G{'0' * 32}"]
        renumbered += [f"{10 + n} :{line.partition(':')[2]}" for n, line in enumerate(lines[1:], 1)]
        with open(uids, "w") as f:
            f.write("\n".join(renumbered) + "\n")
        executor, inbox = self.restart()
        self.assertIn("list_folder", executor.ran)
        self.assertEqual(inbox.uidvalidity, self.inbox.uidvalidity + 7)
        self.assertEqual([i.uid for i in inbox.messages()], [11, 12, 13])

    def test_an_entry_the_uid_list_no_longer_has_is_found_again_by_the_listing(self):
        uids = os.path.join(self.path, uidlist.FILENAME)
        with open(uids) as f:
            lines = f.read().splitlines()
        first_key = lines[1].partition(":")[2]
        lines = [lines[0]] + lines[2:] + [f"9 :{first_key}"]  # another writer gave message 1 a new UID
        with open(uids, "w") as f:
            f.write("\n".join(lines) + "\n")
        executor, inbox = self.restart()
        self.assertEqual([i.uid for i in inbox.messages()], [2, 3, 9])
        self.assertEqual(inbox.get(9).key, first_key)

    def test_no_file_is_written_while_uids_are_in_flight_but_soon_after(self):
        clock = task.Clock()
        inbox = self.done(Store(self.root, InlineExecutor(), clock).user(ALICE).open("INBOX"))
        clock.advance(folder_module.SAVE_DELAY)
        os.unlink(os.path.join(self.path, snapfile.FILENAME))
        inbox._arrivals["pending"] = object()  # a delivery waiting for its UID
        inbox._unsaved = True
        self.assertIsNone(inbox._save())
        self.assertFalse(os.path.exists(os.path.join(self.path, snapfile.FILENAME)))
        del inbox._arrivals["pending"]
        clock.advance(folder_module.SAVE_DELAY)
        self.assertEqual(snapfile.read(self.path).snapshot.infos, inbox._snap.infos)

    def uid_list(self) -> dict[str, int]:
        with open(os.path.join(self.path, uidlist.FILENAME)) as f:
            return uidlist.parse(f.read(), "test")[1].by_key

    def test_unchanged_uid_list_and_modseq_log_are_parsed_only_by_the_first_commit(self):
        executor, inbox = self.restart()
        self.assertNotIn("commit", executor.ran)  # which parses both files
        self.assertFalse(inbox._uids.read)
        self.done_by(executor, inbox.store_flags([(1, frozenset({"\\Flagged"}))]))
        self.assertIn("commit", executor.ran)
        self.assertTrue(inbox._uids.read)
        self.assertEqual(inbox.get(1).modseq, self.inbox.highest_modseq + 1)
        self.assertEqual(inbox._uids.by_key, self.uid_list())
        self.assertEqual(self.uid_list(), {info.key: info.uid for info in self.inbox.messages()})
        by_key = inbox._uids.by_key
        for info in inbox.messages():  # the commit keeps the snapshot's key strings, not copies of its own
            self.assertIs(next(key for key in by_key if key == info.key), info.key)

    def test_a_uid_list_gone_before_the_first_commit_is_written_again_with_the_same_uids(self):
        executor, inbox = self.restart()
        os.unlink(os.path.join(self.path, uidlist.FILENAME))
        self.done_by(executor, inbox.store_flags([(1, frozenset({"\\Flagged"}))]))
        self.assertEqual(self.uid_list(), {info.key: info.uid for info in self.inbox.messages()})
        self.assertEqual(inbox.uidvalidity, self.inbox.uidvalidity)

    def test_the_expunges_qresync_asks_for_are_read_when_first_asked_for(self):
        self.done(self.inbox.store_flags([(3, frozenset({"\\Deleted"}))]))
        self.done(self.inbox.expunge([3]))
        self.relist_settled()
        executor, inbox = self.restart()
        self.assertNotIn("commit", executor.ran)
        self.assertIsNone(inbox.expunged_since(0))  # not read yet: RFC 7162 3.2.5.2's fallback
        executor.run_all()
        self.assertEqual(inbox.expunged_since(0), [3])
        self.assertEqual(inbox.highest_modseq, self.inbox.highest_modseq)

    def test_a_file_that_recorded_no_uidnext_has_both_files_parsed_at_once(self):
        path = os.path.join(self.path, snapfile.FILENAME)
        with open(path, "rb") as f:
            magic, header, body = f.read().split(b"\n", 2)
        header = re.sub(rb',"uidnext":\d+,"highest_modseq":\d+', b"", header)  # as older versions wrote it
        with open(path, "wb") as f:
            f.write(b"\n".join((magic, header, body)))
        executor, inbox = self.restart()
        self.assertIn("commit", executor.ran)
        self.assertTrue(inbox._uids.read)
        self.assertEqual(_rows(inbox), _rows(self.inbox))

    def done_by(self, executor: ManualExecutor, d):
        executor.run_all()
        return self.successResultOf(d)


class FirstListingTests(StoreTestCase):
    def test_a_folder_without_index_is_admitted_in_slices_with_reactor_turns_between(self):
        self.patch(folder_module, "ARRIVAL_SLICE", 2)
        cur = os.path.join(self.maildir(), "cur")
        os.makedirs(cur)
        keys = [f"{1_700_000_000 + n}.M{n}P1.other" for n in range(5)]
        for key in keys:
            writing.write_file(os.path.join(cur, key + ":2,S"), OTHER)
        clock = task.Clock()
        user = Store(self.root, InlineExecutor(), clock).user(ALICE)
        opened = user.open("INBOX")
        inbox = user.loaded_folder("INBOX")
        admitted = []
        while not opened.called:
            admitted.append(len(inbox.messages()))
            turn = clock.calls.pop(0)  # one reactor turn: what clock.advance(0) does, but only one call
            self.assertEqual(turn.getTime(), 0)
            turn.called = 1
            turn.func(*turn.args, **turn.kw)
        self.assertEqual(admitted, [2, 4])  # a slice per turn; the open fires with the last
        self.assertEqual([(i.uid, i.key) for i in inbox.messages()], list(enumerate(keys, 1)))


class WrittenFormParsingTests(StoreTestCase):
    """The one-pass parsers of the UID list and the modseq log agree with the line-by-line ones."""

    def setUp(self) -> None:
        super().setUp()
        for _ in range(4):
            self.deliver()
        inbox = self.folder()
        self.done(inbox.store_flags([(2, frozenset({"\\Seen"})), (3, frozenset({"\\Flagged"}))]))
        self.done(inbox.store_flags([(3, frozenset({"\\Deleted"}))]))
        self.done(inbox.expunge([3]))
        self.path = inbox.path

    def text(self, name: str) -> str:
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def test_uid_list(self):
        text = self.text(uidlist.FILENAME)
        fast = uidlist.parse(text, "x")
        self.assertEqual(uidlist.parse(text + "junk line\n", "x"), fast)  # one odd line: the line loop
        self.assertEqual(sorted(fast[1].by_key.values()), [1, 2, 4])
        fields = text.replace(" :", " G0123 :", 1)  # an entry with a field is read by the line loop
        self.assertEqual(uidlist.parse(fields, "x")[1].fields, {next(iter(fast[1].by_key)): "G0123"})

    def test_modseq_log(self):
        text = self.text(modseqs.FILENAME)
        self.assertIn("\nX ", text)
        fast = modseqs.parse(text, "x")
        slow = modseqs.parse(text + "junk line\n", "x")
        self.assertEqual((fast.by_uid, fast.expunged, fast.highest), (slow.by_uid, slow.expunged, slow.highest))
        self.assertEqual(sorted(fast.by_uid), [1, 2, 4])
        self.assertEqual([uid for _, uid in fast.expunged], [3])

"""Per-message mod-sequences on disk (``mailsrv-modseq``): restarts, other processes, other programs."""

from __future__ import annotations

import os

from store_harness import StoreTestCase, age_directories

from mailsrv.store import Store, modseqs
from mailsrv.store.files import read_text
from mailsrv.workers import InlineExecutor


class PersistenceTests(StoreTestCase):
    def restarted(self) -> object:
        """alice's INBOX as a new process (a second store on the same Maildir) opens it."""
        return self.folder(store=Store(self.root, InlineExecutor()))

    def modseqs_of(self, folder: object) -> dict[int, int]:
        return {info.uid: info.modseq for info in folder.messages()}  # type: ignore[attr-defined]

    def test_modseqs_survive_a_restart(self):
        inbox = self.folder()
        self.deliver()
        self.deliver()
        self.done(inbox.store_flags([(2, frozenset({"\\Flagged"}))]))
        self.done(inbox.expunge([1]))
        before = self.modseqs_of(inbox)
        restarted = self.restarted()
        self.assertEqual(self.modseqs_of(restarted), before)
        self.assertEqual(restarted.highest_modseq, inbox.highest_modseq)
        self.assertEqual(restarted.expunged_since(before[2]), [1])

    def test_a_change_by_another_process_keeps_its_modseq(self):
        inbox = self.folder()
        self.deliver()
        age_directories(inbox.path)
        other = self.restarted()
        (changed,) = self.done(other.store_flags([(1, frozenset({"\\Seen"}))]))
        self.done(inbox.sync())
        self.assertEqual(inbox.get(1).flags, {"\\Seen"})
        self.assertEqual(inbox.get(1).modseq, changed.modseq)
        self.assertEqual(inbox.highest_modseq, changed.modseq)
        (mine,) = self.done(inbox.store_flags([(1, frozenset())]))
        self.assertGreater(mine.modseq, changed.modseq)  # one counter for both processes

    def test_a_change_by_a_program_without_modseqs_gets_a_new_one(self):
        inbox = self.folder()
        self.deliver()
        age_directories(inbox.path)
        highest = inbox.highest_modseq
        name = os.listdir(os.path.join(inbox.path, "new"))[0]
        os.rename(os.path.join(inbox.path, "new", name), os.path.join(inbox.path, "cur", name + ":2,S"))  # mutt
        self.done(inbox.sync())
        self.assertGreater(inbox.get(1).modseq, highest)
        self.assertEqual(inbox.highest_modseq, inbox.get(1).modseq)

    def test_a_change_made_while_stopped_gets_a_new_one(self):
        inbox = self.folder()
        self.deliver()
        highest = inbox.highest_modseq
        name = os.listdir(os.path.join(inbox.path, "new"))[0]
        os.rename(os.path.join(inbox.path, "new", name), os.path.join(inbox.path, "cur", name + ":2,F"))
        restarted = self.restarted()
        self.assertEqual(restarted.get(1).flags, {"\\Flagged"})
        self.assertGreater(restarted.get(1).modseq, highest)

    def test_a_folder_without_the_file_numbers_every_message(self):
        inbox = self.folder()
        self.deliver()
        self.deliver()
        os.unlink(os.path.join(inbox.path, modseqs.FILENAME))  # as Dovecot or an older mailsrv left it
        restarted = self.restarted()
        self.assertTrue(all(m > 0 for m in self.modseqs_of(restarted).values()))
        self.assertTrue(os.path.exists(os.path.join(inbox.path, modseqs.FILENAME)))


class FileTests(StoreTestCase):
    def test_the_log_is_appended_then_compacted_keeping_the_newest_expunges(self):
        self.patch(modseqs, "KEEP_EXPUNGED", 2)
        inbox = self.folder()
        for _ in range(6):
            self.deliver()
        path = os.path.join(inbox.path, modseqs.FILENAME)
        first_expunge = inbox.highest_modseq
        for uid in (1, 2, 3):
            self.done(inbox.expunge([uid]))
        self.assertEqual(inbox.expunged_since(first_expunge), [1, 2, 3])
        third = inbox.highest_modseq
        self.done(inbox.expunge([4, 5]))  # past twice the bound: compacted to the newest two
        self.assertIsNone(inbox.expunged_since(first_expunge))
        self.assertEqual(modseqs.parse(read_text(path), path).expunged_since(third), [4, 5])
        table = modseqs.Table(1, 10, 0, {4: (9, "")}, [(5, 1), (6, 2), (7, 3)], lines=2000)
        modseqs._rewrite(path, table)
        self.assertEqual(table.expunged, [(6, 2), (7, 3)])
        self.assertEqual(table.forgotten, 5)
        reread = modseqs.parse(read_text(path), path)
        self.assertEqual((reread.highest, reread.forgotten, reread.by_uid), (10, 5, {4: (9, "")}))
        self.assertIsNone(reread.expunged_since(4))  # older than what is kept: unknown (RFC 7162 3.2.5.2)
        self.assertEqual(reread.expunged_since(5), [2, 3])

    def test_unreadable_and_torn_lines_are_skipped(self):
        table = modseqs.parse("1 V7 H9 F0\n1 3 S\nnonsense\nX 4 2\n3 8", "f")
        self.assertEqual((table.uidvalidity, table.highest), (7, 9))
        self.assertEqual(table.by_uid, {1: (3, "S")})
        self.assertEqual(table.expunged, [(4, 2)])


def test_messages_numbered_together_share_one_pair():
    table = modseqs.Table()
    table.apply([(1, 5, "S"), (2, 5, "S"), (3, 5, "FS"), (4, 6, "S")], [])
    assert table.by_uid[1] is table.by_uid[2]  # a first sync gives 100,000 messages one modseq
    assert table.by_uid[3] == (5, "FS") and table.by_uid[4] == (6, "S")
    parsed = modseqs.parse("1 V1 H6 F0\n1 5 S\n2 5 S\n3 5 FS\n4 6 S\n", "test").by_uid
    assert parsed == table.by_uid and parsed[1] is parsed[2] and parsed[1] is not parsed[4]

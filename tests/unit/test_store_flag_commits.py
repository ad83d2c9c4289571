"""What a flags-only STORE costs the disk: one shared modseq commit, no UID list, no listing after it."""

from __future__ import annotations

import os

from store_harness import ALICE, ManualExecutor, Recorder, StoreTestCase, age_directories

from mailsrv.store import Store, fileops, files, uidlist
from mailsrv.store import folder as folder_module
from mailsrv.store.files import FileStamp
from mailsrv.workers import InlineExecutor

SEEN = frozenset({"\\Seen"})
FLAGGED = frozenset({"\\Flagged"})


class SharedCommitTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        for _ in range(4):
            self.deliver()
        self.folder().claim_recent()  # the files are in cur/, as a client's STOREs find them
        self.fdatasyncs: list[int] = []
        real = os.fdatasync
        self.patch(files.os, "fdatasync", lambda fd: (self.fdatasyncs.append(fd), real(fd))[1])

    def test_concurrent_stores_share_the_modseq_fdatasync(self):
        executor, inbox = self.manual()
        # Four sessions' STOREs at once: the first commit starts at once, the other three share the next.
        stores = [inbox.store_flags([(uid, SEEN)]) for uid in (1, 2, 3, 4)]
        self.fdatasyncs.clear()
        executor.run_all()
        infos = [self.successResultOf(d)[0] for d in stores]
        self.assertEqual(len(self.fdatasyncs), 2)
        modseqs = [info.modseq for info in infos]
        self.assertEqual(modseqs, sorted(set(modseqs)))  # each STORE its own modseq (RFC 7162 3.1)
        self.assertEqual(inbox.highest_modseq, modseqs[-1])

    def test_a_flags_only_store_leaves_dovecots_uidlist_alone(self):
        executor, inbox = self.manual()
        first = inbox.store_flags([(1, FLAGGED)])  # a new process's first commit parses the files it adopted
        executor.run_all()
        self.successResultOf(first)
        self.assertEqual(executor.ran[-1], "commit")
        path = os.path.join(inbox.path, uidlist.FILENAME)
        before = FileStamp.of(path)
        dotlocks = []
        self.patch(uidlist, "dotlocked", lambda *a, **k: dotlocks.append(a))
        stored = inbox.store_flags([(1, SEEN)])
        executor.run_all()
        self.successResultOf(stored)
        self.assertEqual((FileStamp.of(path), dotlocks), (before, []))
        self.assertEqual(executor.ran[-1], "number_only")

    def test_the_reply_waits_for_the_durable_modseq(self):
        executor, inbox = self.manual()
        stored = inbox.store_flags([(1, SEEN)])
        executor.run_next()  # the rename
        self.assertNoResult(stored)
        self.assertEqual(self.fdatasyncs, [])
        executor.run_next()  # the modseq commit
        (told,) = self.successResultOf(stored)
        self.assertEqual(len(self.fdatasyncs), 1)
        # A crash now: a new process reads what is on disk and never goes below what a client was told.
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertEqual(restarted.get(1).modseq, told.modseq)
        self.assertGreaterEqual(restarted.highest_modseq, told.modseq)

    def test_a_crash_before_the_modseq_commit_gives_the_change_a_newer_modseq(self):
        executor, inbox = self.manual()
        told = inbox.highest_modseq
        stored = inbox.store_flags([(1, SEEN)])
        executor.run_next()  # the rename reached the disk; the process dies before the commit
        self.assertNoResult(stored)
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertEqual(restarted.get(1).flags, SEEN)
        self.assertGreater(restarted.get(1).modseq, told)


class OwnRenameTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.deliver()
        self.deliver()
        self.folder().claim_recent()
        age_directories(self.maildir())  # any later change moves the stamps for certain
        self.now = [os.stat(self.maildir()).st_mtime_ns]
        self.patch(folder_module.time, "time_ns", lambda: self.now[0])

    def stored(self) -> tuple[ManualExecutor, object, Recorder]:
        """alice's INBOX after our own STORE of message 1, and a listener."""
        executor, inbox = self.manual()
        rec = Recorder()
        inbox.add_listener(rec)
        d = inbox.store_flags([(1, SEEN)])
        executor.run_all()
        self.successResultOf(d)
        return executor, inbox, rec

    def external_rename(self, inbox: object, uid: int, info: str) -> None:
        cur = os.path.join(inbox.path, "cur")
        (name,) = [n for n in os.listdir(cur) if n.startswith(inbox.get(uid).key)]
        os.rename(os.path.join(cur, name), os.path.join(cur, inbox.get(uid).key + ":2," + info))

    def test_our_own_store_costs_no_listing(self):
        executor, inbox, _ = self.stored()
        self.now[0] += folder_module.OWN_TRUST_NS - 1
        self.successResultOf(inbox.sync())
        self.assertEqual(executor.jobs, [])

    def test_the_stamps_of_our_renames_are_trusted_for_a_bounded_time(self):
        executor, inbox, _ = self.stored()
        self.now[0] += folder_module.OWN_TRUST_NS
        d = inbox.sync()
        self.assertEqual([fn.__name__ for fn, *_ in executor.jobs], ["list_folder"])
        executor.run_all()
        self.successResultOf(d)

    def test_an_external_rename_before_ours_is_seen_at_once(self):
        executor, inbox = self.manual()
        rec = Recorder()
        inbox.add_listener(rec)
        self.external_rename(inbox, 2, "F")
        d = inbox.store_flags([(1, SEEN)])
        executor.run_all()
        self.successResultOf(d)
        synced = inbox.sync()
        self.assertEqual([fn.__name__ for fn, *_ in executor.jobs], ["list_folder"])
        executor.run_all()
        self.successResultOf(synced)
        self.assertEqual(inbox.get(2).flags, FLAGGED)
        self.assertIn(("flags", [(2, ["\\Flagged"])]), rec.events)

    def test_an_external_rename_during_ours_is_seen_once_the_trust_ends(self):
        executor, inbox = self.manual()
        rec = Recorder()
        inbox.add_listener(rec)
        real = fileops.each

        def each_and_another_program(op, jobs):  # in the same instant as our rename, inside its stamps
            result = real(op, jobs)
            self.external_rename(inbox, 2, "F")
            return result

        self.patch(fileops, "each", each_and_another_program)
        d = inbox.store_flags([(1, SEEN)])
        executor.run_all()
        self.successResultOf(d)
        self.patch(fileops, "each", real)
        self.now[0] += folder_module.OWN_TRUST_NS
        synced = inbox.sync()
        executor.run_all()
        self.successResultOf(synced)
        self.assertEqual((inbox.get(1).flags, inbox.get(2).flags), (SEEN, FLAGGED))
        self.assertEqual(rec.events, [("flags", [(1, ["\\Seen"])]), ("flags", [(2, ["\\Flagged"])])])

    def test_an_external_rename_after_ours_is_seen_at_once_when_it_moves_the_stamp(self):
        executor, inbox, rec = self.stored()
        cur = os.path.join(inbox.path, "cur")
        past = os.stat(cur).st_mtime_ns - 10_000_000_000
        self.external_rename(inbox, 2, "F")
        os.utime(cur, ns=(past, past))  # a stamp other than the one our rename left
        synced = inbox.sync()
        executor.run_all()
        self.successResultOf(synced)
        self.assertEqual(inbox.get(2).flags, FLAGGED)
        self.assertEqual(rec.events[-1], ("flags", [(2, ["\\Flagged"])]))

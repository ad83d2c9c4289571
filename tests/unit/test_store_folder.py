"""Folder: the snapshot and its syncs, message files, flags, APPEND/COPY/EXPUNGE, mod-sequences."""

from __future__ import annotations

import errno
import fcntl
import os

from twisted.internet import task

from store_harness import ALICE, BOB, MSG, ManualExecutor, Recorder, StoreTestCase, age_directories

from mailsrv.message import wire
from mailsrv.message.body import Body
from mailsrv.store import (
    InvalidFlag,
    KeywordLimit,
    MessageGone,
    NoSuchFolder,
    Store,
    Target,
    folder as folder_module,
    keywords,
    writing,
)
from mailsrv.store.files import replace_file
from mailsrv.store.scan import DirStamps
from mailsrv.workers import InlineExecutor

OTHER = b"Subject: x\n\nbody\n"  # as another writer leaves it: LF, no S=/W= in the name


class SyncTests(StoreTestCase):
    def test_changes_behind_our_back_are_found_and_announced(self):
        self.deliver()
        self.deliver()
        age_directories(self.maildir())
        inbox = self.folder()
        rec = Recorder()
        inbox.add_listener(rec)
        cur, new = os.path.join(inbox.path, "cur"), os.path.join(inbox.path, "new")
        first, second = inbox.get(1).key, inbox.get(2).key
        os.rename(os.path.join(new, first), os.path.join(cur, first + ":2,S"))
        os.unlink(os.path.join(new, second))
        writing.write_file(os.path.join(new, "1.M1P1.other"), OTHER)
        self.done(inbox.sync())
        self.assertEqual(rec.events, [("expunged", [2]), ("flags", [(1, ["\\Seen"])]), ("added", [3])])
        self.assertEqual(inbox.get(3).size, len(wire.to_wire(OTHER)))
        self.assertEqual(inbox.recent_count(), 1)

    def test_unchanged_directories_cost_no_listing(self):
        age_directories(self.folder().path)
        executor, inbox = self.manual()
        for _ in range(100):
            self.successResultOf(inbox.sync())
        self.assertEqual(executor.jobs, [])

    def test_concurrent_syncs_share_one_listing(self):
        age_directories(self.folder().path)
        executor, inbox = self.manual()
        self.deliver()  # another node's delivery moves new/
        syncs = [inbox.sync() for _ in range(10)]
        self.assertEqual([fn.__name__ for fn, *_ in executor.jobs], ["list_folder"])
        executor.run_all()
        for d in syncs:
            self.successResultOf(d)
        self.assertEqual(executor.ran.count("list_folder"), 2)  # the open's, and one for all ten
        self.assertEqual(len(inbox.messages()), 1)

    def test_a_sync_asked_for_during_a_listing_waits_for_a_fresh_one(self):
        age_directories(self.folder().path)
        executor, inbox = self.manual()
        age_directories(inbox.path, seconds=1800)  # something moved: the next sync lists
        first = inbox.sync()
        second: list[object] = []
        # Another node delivers after the listing read the directories, and a session asks again.
        executor.run_next(between=lambda: (self.deliver(), second.append(inbox.sync())))
        executor.run_all()
        self.successResultOf(first)
        self.successResultOf(second[0])
        self.assertEqual(len(inbox.messages()), 1)

    def test_a_listing_right_after_a_change_is_repeated_once_when_the_window_has_passed(self):
        self.deliver()
        mtime = DirStamps.of(self.maildir()).newest_mtime_ns  # as the store sees it
        clock = [mtime + 1_000_000]  # the open lists 1 ms after the last change: not trusted yet
        self.patch(folder_module.time, "time_ns", lambda: clock[0])
        executor, inbox = self.manual()
        for clock[0] in (mtime + 10_000_000, mtime + 1_000_000_000, mtime + folder_module.TRUST_AFTER_NS - 1):
            self.successResultOf(inbox.sync())  # a burst of NOOPs: no listing each
        self.assertEqual(executor.jobs, [])
        clock[0] = mtime + folder_module.TRUST_AFTER_NS
        d = inbox.sync()
        self.assertEqual([fn.__name__ for fn, *_ in executor.jobs], ["list_folder"])
        executor.run_all()
        self.successResultOf(d)
        clock[0] += 1_000_000_000
        self.successResultOf(inbox.sync())
        self.assertEqual(executor.jobs, [])  # settled

    def listing_pending(self) -> tuple[ManualExecutor, object, Recorder, object]:
        """A manual-store INBOX with a listener, and a sync whose listing is queued."""
        age_directories(self.folder().path)
        executor, inbox = self.manual()
        rec = Recorder()
        inbox.add_listener(rec)
        age_directories(inbox.path, seconds=1800)  # the stamps moved: the sync lists
        return executor, inbox, rec, inbox.sync()

    def test_a_listing_does_not_undo_a_flag_change_made_while_it_ran(self):
        self.deliver()
        executor, inbox, rec, synced = self.listing_pending()
        stored = []
        executor.run_next(between=lambda: stored.append(inbox.store_flags([(1, frozenset({"\\Seen"}))])))
        executor.run_all()
        self.successResultOf(synced)
        self.successResultOf(stored[0])
        self.assertEqual(inbox.get(1).flags, {"\\Seen"})
        self.assertEqual(rec.events, [("flags", [(1, ["\\Seen"])])])
        with self.successResultOf(inbox.open_message(1)) as message:  # found where it is: no rescan
            self.assertEqual(message.file.read(), wire.to_disk(MSG))
        self.assertEqual(executor.jobs, [])

    def test_a_listing_does_not_drop_a_delivery_made_while_it_ran(self):
        executor, inbox, rec, synced = self.listing_pending()
        delivered = self.manual_store.deliver([Target(ALICE)], Body.from_wire(MSG))
        executor.run_next(between=executor.run_next)  # the delivery lands after the listing read the directory
        executor.run_all()
        self.successResultOf(synced)
        self.successResultOf(delivered)
        self.assertEqual([i.uid for i in inbox.messages()], [1])
        self.assertEqual(rec.events, [("added", [1])])

    def test_deleted_folder_fails_the_sync(self):
        user = self.store.user(ALICE)
        self.done(user.create_folder("Work"))
        work = self.folder("Work")
        os.rename(work.path, work.path + "-gone")
        self.failed(work.sync(), NoSuchFolder)


class MessageFileTests(StoreTestCase):
    def test_open_message_follows_a_rename_by_another_session(self):
        self.deliver()
        inbox = self.folder()
        (name,) = self.files("new")
        os.rename(os.path.join(inbox.path, "new", name), os.path.join(inbox.path, "cur", name + ":2,S"))
        with self.done(inbox.open_message(1)) as message:
            self.assertEqual(message.file.read(), wire.to_disk(MSG))
            self.assertEqual(message.info.uid, 1)
        self.assertEqual(inbox.get(1).flags, {"\\Seen"})  # the rescan saw the rename

    def test_open_message_of_a_message_gone_elsewhere(self):
        self.deliver()
        inbox = self.folder()
        os.unlink(os.path.join(inbox.path, "new", self.files("new")[0]))
        self.failed(inbox.open_message(1), MessageGone)
        self.failed(inbox.read(1), MessageGone)
        self.assertIsNone(inbox.get(1))
        self.failed(inbox.open_message(99), MessageGone)

    def test_an_open_message_stays_readable_after_an_expunge(self):
        self.deliver()
        inbox = self.folder()
        message = self.done(inbox.open_message(1))
        self.addCleanup(message.close)
        self.assertEqual(self.done(inbox.expunge([1])), [1])
        self.assertEqual(self.files("new"), [])
        self.assertEqual(message.file.read(), wire.to_disk(MSG))
        self.assertEqual(message.info.uid, 1)

    def test_read_gives_the_wire_form(self):
        self.deliver(data=b"a\r\nb\r\n")
        self.assertEqual(self.done(self.folder().read(1)), b"a\r\nb\r\n")


class FlagTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.deliver()
        self.deliver()
        self.inbox = self.folder()

    def test_rename_keeps_key_and_uid_and_survives_a_restart(self):
        info = self.inbox.get(1)
        (stored,) = self.done(self.inbox.store_flags([(1, frozenset({"\\Seen", "\\Flagged", "$Junk", "\\Recent"}))]))
        self.assertEqual(stored.flags, {"\\Seen", "\\Flagged", "$Junk"})
        self.assertIn(info.key + ":2,FSa", self.files("cur"))
        again = self.folder(store=Store(self.root, InlineExecutor())).get(1)
        self.assertEqual((again.uid, again.key, again.flags), (1, info.key, {"\\Seen", "\\Flagged", "$Junk"}))

    def test_one_call_changes_many_and_announces_once(self):
        rec = Recorder()
        self.inbox.add_listener(rec)
        seen = frozenset({"\\Seen"})
        infos = self.done(self.inbox.store_flags([(1, seen), (2, seen), (7, frozenset())]))
        self.assertEqual([i.uid for i in infos], [1, 2])
        self.assertEqual(rec.events, [("flags", [(1, ["\\Seen"]), (2, ["\\Seen"])])])
        self.assertEqual(self.done(self.inbox.store_flags([(1, frozenset({"\\Seen"}))]))[0].uid, 1)
        self.assertEqual(len(rec.events), 1)  # nothing changed, nothing announced

    def test_a_file_renamed_elsewhere_is_followed(self):
        rec = Recorder()
        self.inbox.add_listener(rec)
        key = self.inbox.get(1).key
        os.rename(os.path.join(self.inbox.path, "new", key), os.path.join(self.inbox.path, "cur", key + ":2,D"))
        (stored,) = self.done(self.inbox.store_flags([(1, frozenset({"\\Seen"}))]))
        self.assertEqual(stored.flags, {"\\Seen"})
        self.assertIn(key + ":2,S", self.files("cur"))
        self.assertEqual(rec.events, [("flags", [(1, ["\\Draft"])]), ("flags", [(1, ["\\Seen"])])])

    def test_keywords_past_26_are_refused_not_dropped(self):
        self.done(self.inbox.store_flags([(1, frozenset(f"kw{i:02}" for i in range(26)))]))
        self.assertFalse(self.inbox.can_add_keywords())
        self.failed(self.inbox.store_flags([(2, frozenset({"one-more"}))]), KeywordLimit)
        self.assertEqual(self.inbox.get(2).flags, frozenset())
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertEqual(restarted.get(1).flags, {f"kw{i:02}" for i in range(26)})

    def test_invalid_flags_change_nothing(self):
        for bad in ("\\Bogus", "two words", "x" * 129, "caf\u00e9", "a]b", ""):
            self.failed(self.inbox.store_flags([(1, frozenset({"\\Seen"})), (2, frozenset({bad}))]), InvalidFlag)
        self.assertFalse(os.path.exists(os.path.join(self.inbox.path, keywords.FILENAME)))
        self.assertEqual([i.flags for i in self.inbox.messages()], [frozenset(), frozenset()])

    def test_claim_recent_moves_new_to_cur_once(self):
        self.assertEqual(self.inbox.recent_count(), 2)
        self.assertEqual(self.inbox.claim_recent(), {1, 2})
        self.assertEqual((self.inbox.recent_count(), self.inbox.claim_recent()), (0, set()))
        self.assertEqual(self.files("new"), [])
        self.assertEqual(self.done(self.inbox.read(1)), MSG)

    def test_a_file_another_process_claimed_stays_where_it_went(self):
        key = self.inbox.get(1).key
        os.rename(os.path.join(self.inbox.path, "new", key), os.path.join(self.inbox.path, "cur", key + ":2,F"))
        self.assertEqual(self.inbox.claim_recent(), {1, 2})  # this process's claim: nobody here had them
        self.done(self.inbox.sync())  # a rescan was asked for
        self.assertEqual(self.inbox.recent_count(), 0)
        self.assertEqual(self.inbox.get(1).flags, {"\\Flagged"})
        self.assertEqual(sorted(os.listdir(os.path.join(self.inbox.path, "cur"))),
                         sorted([key + ":2,F", self.inbox.get(2).key + ":2,"]))

    def test_flags_stored_between_the_claim_and_the_move_stay_on_disk(self):
        clock = task.Clock()
        inbox = self.folder(store=Store(self.root, InlineExecutor(), clock))
        key = inbox.get(1).key
        self.assertEqual(inbox.claim_recent(), {1, 2})  # SELECT; the move waits to share its trip
        self.done(inbox.store_flags([(1, frozenset({"\\Answered"}))]))  # the client's first command
        clock.advance(folder_module.BATCH_DELAY)
        self.assertEqual(self.files("new"), [])
        self.assertIn(key + ":2,R", self.files("cur"))
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertEqual(restarted.get(1).flags, {"\\Answered"})

    def test_the_claim_is_made_at_once_and_the_files_move_in_the_pool(self):
        executor, inbox = self.manual()
        self.assertEqual(inbox.claim_recent(), {1, 2})
        self.assertEqual((inbox.claim_recent(), inbox.recent_count()), (set(), 0))  # another session's turn
        self.assertEqual(len(self.files("new")), 2)  # nothing moved on the caller's thread
        self.assertEqual([fn.__name__ for fn, *_ in executor.jobs], ["around"])
        executor.run_all()
        self.assertEqual(self.files("new"), [])
        read = inbox.read(1)
        executor.run_all()
        self.assertEqual(self.successResultOf(read), MSG)

    def test_claims_made_close_together_share_one_trip_to_the_pool(self):
        from twisted.internet.task import Clock

        from mailsrv.store.uidlist import BATCH_DELAY

        class Counting(InlineExecutor):
            ran: list[str] = []

            def run(self, fn, *args, **kwargs):
                self.ran.append(fn.__name__)
                return super().run(fn, *args, **kwargs)

        clock, executor = Clock(), Counting()
        first = self.done(Store(self.root, executor, clock).user(ALICE).open("INBOX"))
        self.assertEqual(first.claim_recent(), {1, 2})
        self.deliver()  # by another store, say another process
        self.done(first.sync())
        self.assertEqual(first.claim_recent(), {3})
        self.assertEqual(len(self.files("new")), 3)  # nothing moved yet: the trip waits for more claims
        executor.ran.clear()
        clock.advance(BATCH_DELAY)
        self.assertEqual((self.files("new"), executor.ran), ([], ["around"]))
        self.assertEqual(first.recent_count(), 0)

    def test_store_and_expunge_touch_files_only_in_the_pool(self):
        executor, inbox = self.manual()
        stored = inbox.store_flags([(1, frozenset({"\\Seen"})), (2, frozenset({"\\Deleted"}))])
        self.assertEqual(sorted(self.files("new")), sorted(i.key for i in inbox.messages()))
        executor.run_all()
        self.assertEqual([i.flags for i in self.successResultOf(stored)], [{"\\Seen"}, {"\\Deleted"}])
        expunged = inbox.expunge([2])
        self.assertEqual(len(self.files("cur")), 2)
        executor.run_all()
        self.assertEqual(self.successResultOf(expunged), [2])
        self.assertEqual([i.uid for i in inbox.messages()], [1])
        self.assertEqual(len(self.files("cur")), 1)

    def test_a_failed_rename_asks_the_next_sync_to_list_the_folder(self):
        from unittest import mock

        executor, inbox = self.manual()
        with mock.patch.object(os, "rename", side_effect=OSError(errno.EIO, "I/O error")):
            d = inbox.store_flags([(1, frozenset({"\\Seen"}))])
            executor.run_all()
        self.failureResultOf(d, OSError)
        self.assertTrue(inbox._rescan_wanted)
        self.assertEqual(inbox.get(1).flags, frozenset())


class KeywordFileTests(StoreTestCase):
    def test_an_edit_within_one_mtime_tick_is_seen(self):
        """Another node adds a keyword in the tick of our last read, and uses it."""
        self.deliver()
        inbox = self.folder()
        self.done(inbox.store_flags([(1, frozenset({"$Junk"}))]))
        age_directories(inbox.path)
        self.done(inbox.sync())
        path = os.path.join(inbox.path, keywords.FILENAME)
        mtime = os.stat(path).st_mtime_ns
        replace_file(path, b"0 $Junk\n1 $Work\n")
        os.utime(path, ns=(mtime, mtime))  # as far as mtime tells, nothing changed
        key = inbox.get(1).key
        os.rename(os.path.join(inbox.path, "cur", key + ":2,a"), os.path.join(inbox.path, "cur", key + ":2,ab"))
        self.done(inbox.sync())
        self.assertEqual(inbox.get(1).flags, {"$Junk", "$Work"})

    def test_two_writers_never_give_one_letter_twice(self):
        self.deliver()
        here = self.folder()
        there = self.folder(store=Store(self.root, InlineExecutor()))
        self.done(here.store_flags([(1, frozenset({"$A"}))]))
        self.done(there.store_flags([(1, frozenset({"$B"}))]))
        self.done(here.store_flags([(1, frozenset({"$A", "$C"}))]))
        table = keywords.read(here.path, None)
        self.assertEqual(sorted(table.letter_of.values()), ["a", "b", "c"])
        self.assertEqual(sorted(table.letter_of), ["$A", "$B", "$C"])


class AppendCopyTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = self.store.user(ALICE)
        self.done(self.user.create_folder("Sent"))
        self.sent = self.folder("Sent")

    def test_append_with_flags_and_date_is_durable_before_it_fires(self):
        synced: list[str] = []
        real = writing.fsync_dir
        self.patch(writing, "fsync_dir", lambda path: (synced.append(path), real(path))[1])
        uid = self.done(self.sent.append(Body.from_wire(MSG), {"\\Seen", "$Sent"}, internaldate=1_000_000_000.0))
        info = self.sent.get(uid)
        self.assertEqual((info.flags, info.internaldate), ({"\\Seen", "$Sent"}, 1_000_000_000.0))
        self.assertEqual(self.done(self.sent.read(uid)), MSG)
        self.assertEqual(synced, [os.path.join(self.sent.path, "cur")])
        self.assertEqual(os.listdir(os.path.join(self.sent.path, "tmp")), [])

    def test_append_with_an_invalid_flag_writes_nothing(self):
        self.failed(self.sent.append(Body.from_wire(MSG), {"\\Bogus"}), InvalidFlag)
        self.assertEqual(os.listdir(os.path.join(self.sent.path, "cur")), [])

    def test_copy_links_and_returns_uid_pairs(self):
        self.deliver()
        inbox = self.folder()
        self.done(inbox.store_flags([(1, frozenset({"\\Flagged", "$Work"}))]))
        pairs = self.done(inbox.copy([1, 42], self.sent))
        self.assertEqual(pairs, [(1, 1)])
        self.assertEqual(self.done(self.sent.read(1)), MSG)
        self.assertEqual(self.sent.get(1).flags, {"\\Flagged", "$Work"})
        self.assertEqual(self.sent.get(1).internaldate, inbox.get(1).internaldate)
        src = os.path.join(inbox.path, "cur", self.files("cur")[0])
        (dst,) = os.listdir(os.path.join(self.sent.path, "cur"))
        self.assertEqual(os.stat(src).st_ino, os.stat(os.path.join(self.sent.path, "cur", dst)).st_ino)

    def test_copy_falls_back_to_a_copy_across_file_systems(self):
        self.deliver()
        inbox = self.folder()

        def cross_device(src: str, dst: str) -> None:
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        self.patch(writing.os, "link", cross_device)
        self.assertEqual(self.done(inbox.copy([1], self.sent)), [(1, 1)])
        self.assertEqual(self.done(self.sent.read(1)), MSG)
        self.assertEqual(self.sent.get(1).internaldate, inbox.get(1).internaldate)
        self.assertEqual(os.listdir(os.path.join(self.sent.path, "tmp")), [])

    def test_copy_of_a_message_gone_meanwhile_skips_it(self):
        self.deliver()
        self.deliver()
        inbox = self.folder()
        os.unlink(os.path.join(inbox.path, "new", inbox.get(1).key))
        self.assertEqual(self.done(inbox.copy([1, 2], self.sent)), [(2, 1)])

    def test_expunge_announces_unlinks_and_forgets(self):
        self.deliver()
        inbox = self.folder()
        rec = Recorder()
        inbox.add_listener(rec)
        self.assertEqual(self.done(inbox.expunge([1, 99])), [1])
        self.assertEqual(rec.events, [("expunged", [1])])
        self.assertEqual((self.files("new"), inbox.messages()), ([], []))
        self.assertEqual(self.done(inbox.expunge([1])), [])


class ModseqTests(StoreTestCase):
    def test_every_change_steps_the_folder_modseq(self):
        inbox = self.folder()
        start = inbox.highest_modseq
        self.deliver()
        added = inbox.highest_modseq
        self.assertGreater(added, start)
        self.assertEqual(inbox.get(1).modseq, added)
        (changed,) = self.done(inbox.store_flags([(1, frozenset({"\\Seen"}))]))
        self.assertGreater(changed.modseq, added)
        self.assertEqual(inbox.highest_modseq, changed.modseq)
        self.done(inbox.store_flags([(1, frozenset({"\\Seen"}))]))  # no change, no step
        self.assertEqual(inbox.highest_modseq, changed.modseq)
        self.done(inbox.expunge([1]))
        self.assertGreater(inbox.highest_modseq, changed.modseq)


class OffTheReactorTests(StoreTestCase):
    """No fsync, fdatasync or flock outside an executor job, whatever the operation."""

    def test_blocking_calls_run_only_in_jobs(self):
        executor = ManualExecutor()
        store = Store(self.root, executor)
        outside: list[str] = []
        in_job = [False]
        real_run_next = executor.run_next

        def run_next() -> str:
            in_job[0] = True
            try:
                return real_run_next()
            finally:
                in_job[0] = False

        executor.run_next = run_next  # type: ignore[method-assign]
        for module, name in ((os, "fsync"), (os, "fdatasync"), (fcntl, "flock"), (os, "listdir")):
            self.patch(module, name, _watched(getattr(module, name), name, in_job, outside))

        def run(d):
            executor.run_all()
            return self.successResultOf(d)

        user = store.user(ALICE)
        inbox = run(user.open("INBOX"))
        run(store.deliver([Target(ALICE), Target(BOB)], Body.from_wire(MSG)))
        executor.run_all()
        run(inbox.store_flags([(1, frozenset({"$Work", "\\Seen"}))]))
        run(user.create_folder("Archive"))
        archive = run(user.open("Archive"))
        run(inbox.copy([1], archive))
        run(archive.append(Body.from_wire(MSG), {"$Other"}))
        run(inbox.expunge([1]))
        run(user.subscribe("Archive"))
        run(user.list_folders())
        run(user.rename_folder("Archive", "Old"))
        run(user.delete_folder("Old"))
        self.assertEqual(outside, [])


def _watched(real, name: str, in_job: list[bool], outside: list[str]):
    def call(*args, **kwargs):
        if not in_job[0]:
            outside.append(name)
        return real(*args, **kwargs)

    return call

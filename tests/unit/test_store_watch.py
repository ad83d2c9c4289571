"""Live updates from changes other programs make: the watcher (:mod:`mailsrv.store.watch`, :mod:`.inotifier`).

Checks and debouncing run on a fake clock; the inotify tests use the real
kernel and reactor, on temp dirs.
"""

from __future__ import annotations

import os
import shutil
import struct
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial import unittest

from store_harness import ALICE, MSG, Recorder, StoreTestCase

from mailsrv.message.body import Body
from mailsrv.store import NoSuchFolder, Store, Target, watch
from mailsrv.store.polling import Polling
from mailsrv.store.watch import DELAY, Changes, Watcher
from mailsrv.workers import InlineExecutor

try:
    from mailsrv.store import inotifier
except ImportError:  # not Linux
    inotifier = None  # type: ignore[assignment]


class FakeFolder:
    """What a watcher asks of a folder: the files it shows, syncs, the news of its deletion."""

    def __init__(self, path: str = "/nowhere") -> None:
        self.path = path
        self.files: set[str] = set()
        self.syncs = 0
        self.sync_error: Exception | None = None
        self.deleted = 0

    def shows(self, rel: str) -> bool:
        return rel in self.files

    def sync(self) -> defer.Deferred[None]:
        self.syncs += 1
        return defer.fail(self.sync_error) if self.sync_error else defer.succeed(None)

    def announce_deleted(self) -> None:
        self.deleted += 1


class ChangesTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.folder = FakeFolder()
        self.changes = Changes(self.folder, self.clock)  # type: ignore[arg-type]

    def checks(self, count: int) -> None:
        for _ in range(count):
            self.clock.advance(DELAY)

    def test_the_folders_own_writes_cost_no_sync(self):
        self.folder.files |= {"new/a", "cur/b:2,S"}
        self.changes.file_event("new/a", True)  # its delivery
        self.changes.file_event("cur/b:2,", False)  # its STORE: the rename's two events
        self.changes.file_event("cur/b:2,S", True)
        self.checks(3)
        self.assertEqual(self.folder.syncs, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_an_own_write_still_on_its_way_back_costs_no_sync(self):
        self.changes.file_event("new/a", True)
        self.checks(1)  # the delivery's job has not reported back yet
        self.folder.files.add("new/a")
        self.checks(2)
        self.assertEqual(self.folder.syncs, 0)

    def test_another_programs_change_syncs_at_the_second_check(self):
        self.changes.file_event("new/x", True)
        self.checks(1)
        self.assertEqual(self.folder.syncs, 0)
        self.checks(1)
        self.assertEqual(self.folder.syncs, 1)
        self.checks(5)
        self.assertEqual(self.folder.syncs, 1)

    def test_a_file_gone_that_the_folder_still_shows_is_an_expunge_to_sync(self):
        self.folder.files.add("cur/a:2,S")
        self.changes.file_event("cur/a:2,S", False)
        self.checks(2)
        self.assertEqual(self.folder.syncs, 1)

    def test_a_burst_of_a_thousand_files_is_one_sync(self):
        for i in range(1000):
            self.changes.file_event(f"new/{i}", True)
        self.checks(10)
        self.assertEqual(self.folder.syncs, 1)

    def test_more_names_than_kept_are_synced_without_looking(self):
        for i in range(watch.MAX_NAMES + 1):
            self.changes.file_event(f"new/{i}", True)
        self.checks(1)
        self.assertEqual(self.folder.syncs, 1)

    def test_a_change_to_the_directory_itself_syncs_at_the_first_check(self):
        self.changes.changed()
        self.checks(1)
        self.assertEqual(self.folder.syncs, 1)

    def test_a_folder_gone_is_announced_once_and_no_longer_checked(self):
        self.folder.sync_error = NoSuchFolder("INBOX")
        self.changes.changed()
        self.checks(1)
        self.changes.changed()
        self.checks(2)
        self.assertEqual((self.folder.syncs, self.folder.deleted), (1, 1))

    def test_a_failed_sync_is_logged(self):
        self.folder.sync_error = OSError("disk on fire")
        self.changes.changed()
        self.checks(1)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)

    def test_stopped_it_checks_nothing(self):
        self.changes.file_event("new/x", True)
        self.changes.stop()
        self.changes.file_event("new/y", True)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class PollingTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.path, sub))
        self.clock = Clock()
        self.folder = FakeFolder(self.path)
        self.changes = Changes(self.folder, self.clock)  # type: ignore[arg-type]
        self.polling = Polling(self.changes, self.path, InlineExecutor(), self.clock, 0.5)
        self.settled()

    def settled(self) -> None:
        """Date the directories back, so that an unmoved stamp can be trusted."""
        for sub in ("new", "cur"):
            os.utime(os.path.join(self.path, sub), (1_000_000, 1_000_000))

    def test_a_moved_stamp_syncs_and_a_still_one_does_not(self):
        self.clock.advance(0.5)  # the first reading: the folder decides
        self.clock.advance(DELAY)
        self.assertEqual(self.folder.syncs, 1)
        for _ in range(4):
            self.clock.advance(0.5)
        self.assertEqual(self.folder.syncs, 1)
        open(os.path.join(self.path, "new", "x"), "wb").close()
        self.settled()
        os.utime(os.path.join(self.path, "new"), (2_000_000, 2_000_000))
        self.clock.advance(0.5)
        self.clock.advance(DELAY)
        self.assertEqual(self.folder.syncs, 2)

    def test_a_fresh_stamp_is_not_trusted_until_it_settled(self):
        self.clock.advance(0.5)
        self.clock.advance(DELAY)
        os.utime(os.path.join(self.path, "new"))  # now: a second change in this tick would not move it
        self.clock.advance(0.5)
        self.clock.advance(0.5)
        self.clock.advance(DELAY)
        self.assertEqual(self.folder.syncs, 3)

    def test_a_folder_gone_stops_the_polling(self):
        shutil.rmtree(self.path)
        self.folder.sync_error = NoSuchFolder("INBOX")
        self.clock.advance(0.5)
        self.clock.advance(DELAY)
        self.assertEqual(self.folder.deleted, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stopped_it_reads_nothing_more(self):
        self.polling.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class FakeWatcher:
    def __init__(self) -> None:
        self.following: list[Any] = []

    def follow(self, folder: Any) -> Any:
        self.following.append(folder)
        return lambda: self.following.remove(folder)


class FolderHookTests(StoreTestCase):
    """A folder is watched while it has listeners, and says which files it shows."""

    def test_watched_from_the_first_listener_to_the_last(self):
        watcher = FakeWatcher()
        store = Store(self.root, InlineExecutor(), watcher=watcher)  # type: ignore[arg-type]
        inbox = self.folder(store=store)
        one, two = Recorder(), Recorder()
        self.assertEqual(watcher.following, [])
        inbox.add_listener(one)
        inbox.add_listener(two)
        self.assertEqual(watcher.following, [inbox])
        inbox.remove_listener(one)
        self.assertEqual(watcher.following, [inbox])
        inbox.remove_listener(two)
        self.assertEqual(watcher.following, [])

    def test_shows_the_files_of_its_messages_as_they_are_now(self):
        key = self.deliver()
        inbox = self.folder()
        self.assertTrue(inbox.shows("new/" + key))
        self.assertFalse(inbox.shows("cur/" + key + ":2,"))
        inbox.claim_recent()
        self.assertTrue(inbox.shows("cur/" + key + ":2,"))
        self.assertFalse(inbox.shows("new/" + key))
        self.assertFalse(inbox.shows("new/1.M1P1Q1.elsewhere"))


def maildir_file(folder_path: str, name: str, sub: str = "new", data: bytes = MSG) -> str:
    """Deliver as procmail does: write in tmp/, rename into *sub*/."""
    tmp = os.path.join(folder_path, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data.replace(b"\r\n", b"\n"))
    target = os.path.join(folder_path, sub, name)
    os.rename(tmp, target)
    return target


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class _Failing:
    def __init__(self, reactor: Any) -> None:
        raise inotifier.inotify.INotifyError("INotify initialization error.")


class _NoMoreWatches(inotifier.Descriptor if inotifier else object):  # type: ignore[misc]
    def watch(self, *args: Any, **kwargs: Any) -> int:
        raise inotifier.inotify.INotifyError("Failed to add watch (-1)")  # as at max_user_watches


class WatcherTests(unittest.TestCase):
    """The real thing: a Store on a temp dir, the reactor, the kernel's inotify."""

    if inotifier is None:
        skip = "no inotify on this system"

    def setUp(self) -> None:
        self.root = self.mktemp()
        self.directories = inotifier.Directories(reactor)
        # The store's own timers (the snapshot file's delayed write) on a clock of the test's:
        # the kernel's events come through the reactor, the store's batching need not.
        self.store_clock = task.Clock()
        self.watcher = Watcher(reactor, InlineExecutor(), directories=self.directories, poll_interval=0.05)
        self.store = Store(self.root, InlineExecutor(), self.store_clock, self.watcher)
        self.store.deliver([Target(ALICE)], Body.from_wire(MSG))
        self.store.user(ALICE).create_folder("Other")

    def selected(self, name: str = "INBOX") -> defer.Deferred[tuple[Any, Any]]:
        d = self.store.user(ALICE).open(name)

        def listen(folder: Any) -> tuple[Any, Any]:
            rec = Recorder()
            folder.add_listener(rec)
            self.addCleanup(folder.remove_listener, rec)
            return folder, rec

        return d.addCallback(listen)

    async def heard(self, rec: Recorder, count: int) -> list[tuple[str, object]]:
        """Waits (30 s at most: a failure, not a timing bound) for *count* announcements."""
        for _ in range(3000):
            if len(rec.events) >= count:
                return rec.events
            await task.deferLater(reactor, 0.01, lambda: None)
        self.fail(f"heard only {rec.events}")

    @defer.inlineCallbacks
    def test_new_mail_flags_and_expunges_written_by_another_program_are_announced(self):
        inbox, rec = yield self.selected()
        maildir_file(inbox.path, "1700000000.M1P99Q1.procmail")
        yield defer.Deferred.fromCoroutine(self.heard(rec, 1))
        self.assertEqual(rec.events, [("added", [2])])
        os.rename(os.path.join(inbox.path, "new", "1700000000.M1P99Q1.procmail"),
                  os.path.join(inbox.path, "cur", "1700000000.M1P99Q1.procmail:2,S"))
        yield defer.Deferred.fromCoroutine(self.heard(rec, 2))
        self.assertEqual(rec.events[1], ("flags", [(2, ["\\Seen"])]))
        os.unlink(os.path.join(inbox.path, "cur", "1700000000.M1P99Q1.procmail:2,S"))
        yield defer.Deferred.fromCoroutine(self.heard(rec, 3))
        self.assertEqual(rec.events[2], ("expunged", [2]))

    @defer.inlineCallbacks
    def test_the_last_listener_leaves_no_watch_and_no_descriptor(self):
        before = open_fds()
        inbox, rec = yield self.selected()
        self.assertEqual(self.directories.watching(), 2)
        self.assertEqual(open_fds(), before + 1)
        inbox.remove_listener(rec)
        self.assertEqual(self.directories.watching(), 0)
        self.assertEqual(open_fds(), before)

    @defer.inlineCallbacks
    def test_a_folder_deleted_by_another_program_ends_its_sessions_and_spares_the_others(self):
        inbox, inbox_rec = yield self.selected()
        other, other_rec = yield self.selected("Other")
        shutil.rmtree(other.path)
        yield defer.Deferred.fromCoroutine(self.heard(other_rec, 1))
        self.assertEqual(other_rec.events, [("deleted", "Other")])
        maildir_file(inbox.path, "1700000000.M2P99Q1.procmail")  # the shared descriptor still works
        yield defer.Deferred.fromCoroutine(self.heard(inbox_rec, 1))
        self.assertEqual(inbox_rec.events, [("added", [2])])

    @defer.inlineCallbacks
    def test_two_stores_of_one_maildir_in_a_process_each_hear(self):
        second = Store(self.root, InlineExecutor(), self.store_clock, self.watcher)
        inbox, rec = yield self.selected()
        again = yield second.user(ALICE).open("INBOX")
        rec2 = Recorder()
        again.add_listener(rec2)
        self.addCleanup(again.remove_listener, rec2)
        maildir_file(inbox.path, "1700000000.M3P99Q1.procmail")
        yield defer.Deferred.fromCoroutine(self.heard(rec, 1))
        yield defer.Deferred.fromCoroutine(self.heard(rec2, 1))

    @defer.inlineCallbacks
    def test_without_inotify_it_polls_and_says_so_once(self):
        warned: list[dict] = []
        self.patch(watch, "log", Logger(observer=warned.append))
        self.watcher = Watcher(reactor, InlineExecutor(), poll_interval=0.05,
                               directories=inotifier.Directories(reactor, make=_Failing))
        self.store = Store(self.root, InlineExecutor(), self.store_clock, self.watcher)
        inbox, rec = yield self.selected()
        _, _ = yield self.selected("Other")
        maildir_file(inbox.path, "1700000000.M4P99Q1.procmail")
        yield defer.Deferred.fromCoroutine(self.heard(rec, 1))
        self.assertEqual(rec.events, [("added", [2])])
        self.assertEqual([e["log_level"].name for e in warned], ["warn"])
        self.assertIn("INotify initialization error", warned[0]["error"])

    @defer.inlineCallbacks
    def test_out_of_watches_it_polls_and_keeps_no_descriptor_open(self):
        warned: list[dict] = []
        self.patch(watch, "log", Logger(observer=warned.append))
        before = open_fds()
        directories = inotifier.Directories(reactor, make=_NoMoreWatches)
        self.watcher = Watcher(reactor, InlineExecutor(), poll_interval=0.05, directories=directories)
        self.store = Store(self.root, InlineExecutor(), self.store_clock, self.watcher)
        inbox, rec = yield self.selected()
        self.assertEqual((directories.watching(), open_fds()), (0, before))
        maildir_file(inbox.path, "1700000000.M5P99Q1.procmail")
        yield defer.Deferred.fromCoroutine(self.heard(rec, 1))
        self.assertEqual(rec.events, [("added", [2])])
        self.assertEqual(len(warned), 1)
        self.assertIn("Failed to add watch", warned[0]["error"])

    @defer.inlineCallbacks
    def test_an_overflow_of_the_kernels_queue_syncs_every_watched_folder(self):
        inbox, rec = yield self.selected()
        other, other_rec = yield self.selected("Other")
        maildir_file(inbox.path, "1700000000.M6P99Q1.procmail")  # as if its event were lost:
        maildir_file(other.path, "1700000000.M7P99Q1.procmail")
        descriptor = self.directories._descriptor
        try:
            while os.read(descriptor.fileno(), 65536):
                pass  # the kernel's queue, lost unread
        except BlockingIOError:
            pass
        overflow = struct.pack("=LLLL", inotifier.OVERFLOW_WD, inotifier.inotify.IN_Q_OVERFLOW, 0, 0)
        descriptor._doRead(overflow)  # the record the kernel writes then, through Twisted's reader
        yield defer.Deferred.fromCoroutine(self.heard(rec, 1))
        yield defer.Deferred.fromCoroutine(self.heard(other_rec, 1))


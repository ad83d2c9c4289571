"""Files a crash left in Maildir tmp/ directories go after 36 hours (maildir(5)); fresh ones stay."""

from __future__ import annotations

import os
import time

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import formatEvent, globalLogPublisher

from mailsrv.store import cleanup
from store_harness import ALICE, BOB, StoreTestCase

DAY = 24 * 3600


class StaleTmpTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.deliver(ALICE, BOB)  # both Maildirs exist
        self.done(self.store.user(ALICE).create_folder("Archive/2024"))
        self.alice = self.store.user(ALICE).path
        self.bob = self.store.user(BOB).path

    def leave(self, maildir: str, name: str, age: float) -> str:
        """A file in *maildir*'s tmp/ last touched *age* seconds ago."""
        path = os.path.join(maildir, "tmp", name)
        with open(path, "wb") as f:
            f.write(b"half a message")
        then = time.time() - age
        os.utime(path, (then, then))
        return path

    def test_old_files_go_in_every_folder_of_every_user_fresh_ones_stay(self):
        archive = os.path.join(self.alice, ".Archive.2024")
        old = [
            self.leave(self.alice, "crashed-1", 2 * DAY),
            self.leave(archive, "crashed-2", 37 * 3600),
            self.leave(self.bob, "crashed-3", 40 * DAY),
        ]
        fresh = [
            self.leave(self.alice, "arriving", 0),  # a delivery in progress
            self.leave(self.bob, "slow-but-alive", 35 * 3600),
        ]
        log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.assertEqual(self.done(self.store.remove_stale_tmp()), 3)
        self.assertEqual([os.path.exists(p) for p in old], [False] * 3)
        self.assertEqual([os.path.exists(p) for p in fresh], [True] * 2)
        self.assertEqual(
            [formatEvent(e) for e in log if e["log_namespace"].startswith("mailsrv.store")],
            ["removed 3 files left in Maildir tmp/ directories for over 36 hours"],
        )

    def test_delivered_mail_and_other_files_are_never_touched(self):
        then = time.time() - 40 * DAY
        for dirpath, _, filenames in os.walk(self.alice):
            for name in filenames:
                os.utime(os.path.join(dirpath, name), (then, then))
        before = sorted(os.path.join(d, n) for d, _, names in os.walk(self.alice) for n in names)
        os.mkdir(os.path.join(self.alice, "tmp", "a-directory"))
        self.assertEqual(self.done(self.store.remove_stale_tmp()), 0)
        self.assertEqual(sorted(os.path.join(d, n) for d, _, names in os.walk(self.alice) for n in names), before)

    def test_a_file_read_recently_counts_as_touched(self):
        path = self.leave(self.alice, "read", 2 * DAY)
        os.utime(path, (time.time(), time.time() - 2 * DAY))
        self.assertEqual(cleanup.remove_stale_tmp(self.root, time.time()), 0)

    def test_no_mail_dir_yet(self):
        self.assertEqual(cleanup.remove_stale_tmp(self.mktemp(), time.time()), 0)

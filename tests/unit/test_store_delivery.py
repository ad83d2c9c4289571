"""Store.deliver: durable files, one inode for all, per-recipient folders and flags, spooled bodies."""

from __future__ import annotations

import errno
import os

from store_harness import ALICE, BOB, MSG, ManualExecutor, Recorder, StoreTestCase

from mailsrv.message import wire
from mailsrv.message.body import Body, BodyWriter
from mailsrv.store import InvalidAddress, Store, Target, writing


class PlainDeliveryTests(StoreTestCase):
    def test_lf_file_in_new_read_back_as_crlf(self):
        name = self.deliver()
        self.assertEqual(self.files("new"), [name])
        with open(os.path.join(self.maildir(), "new", name), "rb") as f:
            self.assertEqual(f.read(), wire.to_disk(MSG))
        self.assertIn(f",S={len(wire.to_disk(MSG))},W={len(MSG)}", name)
        self.assertEqual(self.files("tmp"), [])
        inbox = self.folder()
        (info,) = inbox.messages()
        self.assertEqual((info.uid, info.key, info.size), (1, name, len(MSG)))
        self.assertEqual(self.done(inbox.read(1)), MSG)

    def test_a_folder_delivery_without_flags_waits_in_new_and_is_recent(self):
        self.done(self.store.user(ALICE).create_folder("Junk"))
        name = self.done(self.store.deliver([Target(ALICE, "Junk")], Body.from_wire(MSG)))
        junk = self.folder("Junk")
        self.assertTrue(os.path.exists(os.path.join(junk.path, "new", name)))  # RFC 3501 2.3.2: \Recent
        self.assertEqual(junk.recent_count(), 1)

    def test_one_file_hard_linked_for_all_recipients(self):
        self.deliver(ALICE, BOB, "ALICE@example.test")
        inodes = {os.stat(os.path.join(self.maildir(a), "new", self.files("new", a)[0])).st_ino for a in (ALICE, BOB)}
        self.assertEqual(len(inodes), 1)
        self.assertEqual(len(self.files("new")), 1)  # the duplicate recipient got one copy

    def test_announced_to_an_open_inbox_with_its_uid(self):
        inbox = self.folder()
        rec = Recorder()
        inbox.add_listener(rec)
        self.deliver()
        self.assertEqual(rec.events, [("added", [1])])
        self.assertEqual([i.uid for i in inbox.messages()], [1])

    def test_fires_with_the_base_name_and_logs_nothing_for_a_closed_folder(self):
        name = self.deliver()
        self.assertIsNone(self.store.user(ALICE).loaded_folder("INBOX"))
        self.assertEqual(self.files("new"), [name])

    def test_addresses_that_escape_the_root_are_refused(self):
        for bad in ("../x@example.test", "a@..", "a/b@example.test", "noat", ".hidden@example.test", "a@b/c"):
            self.assertRaises(InvalidAddress, self.store.user, bad)
            self.failed(self.store.deliver([Target(bad)], Body.from_wire(MSG)), InvalidAddress)
        self.assertFalse(os.path.exists(self.root))


class TargetTests(StoreTestCase):
    """Per recipient folder and flags, as Sieve will ask for them."""

    def setUp(self) -> None:
        super().setUp()
        self.done(self.store.user(BOB).create_folder("Lists/python"))

    def test_folder_and_flags_go_to_cur_with_the_flags_in_the_name(self):
        targets = [Target(ALICE), Target(BOB, "Lists/python", frozenset({"\\Seen", "$Label1"}))]
        name = self.done(self.store.deliver(targets, Body.from_wire(MSG)))
        self.assertEqual(self.files("new"), [name])
        (bobs,) = self.files("cur", BOB, ".Lists.python")
        self.assertEqual(bobs, name + ":2,Sa")
        lists = self.folder("Lists/python", BOB)
        self.assertEqual(lists.messages()[0].flags, {"\\Seen", "$Label1"})
        self.assertEqual(lists.recent_count(), 0)

    def test_flags_in_the_inbox_also_mean_cur(self):
        self.done(self.store.deliver([Target(ALICE, flags=frozenset({"\\Flagged"}))], Body.from_wire(MSG)))
        self.assertEqual(self.files("new"), [])
        self.assertTrue(self.files("cur")[0].endswith(":2,F"))

    def test_missing_or_invalid_folder_falls_back_to_the_inbox(self):
        targets = [Target(BOB, "Nope"), Target(ALICE, "../../etc")]
        name = self.done(self.store.deliver(targets, Body.from_wire(MSG)))
        self.assertEqual(self.files("new", BOB), [name])
        self.assertEqual(self.files("new", ALICE), [name])

    def test_unstorable_flags_are_dropped_not_the_message(self):
        targets = [Target(ALICE, flags=frozenset({"\\Bogus", "two words", "\\Seen", "\\Recent"}))]
        self.done(self.store.deliver(targets, Body.from_wire(MSG)))
        self.assertTrue(self.files("cur")[0].endswith(":2,S"))

    def test_a_keyword_that_no_longer_fits_is_dropped_not_the_message(self):
        inbox = self.folder()
        self.deliver()
        self.done(inbox.store_flags([(1, frozenset(f"kw{i:02}" for i in range(26)))]))
        self.done(self.store.deliver([Target(ALICE, flags=frozenset({"$New", "\\Seen"}))], Body.from_wire(MSG)))
        self.assertEqual(inbox.get(2).flags, {"\\Seen"})

    def test_open_target_folder_is_told(self):
        lists = self.folder("Lists/python", BOB)
        rec = Recorder()
        lists.add_listener(rec)
        self.done(self.store.deliver([Target(BOB, "Lists/python")], Body.from_wire(MSG)))
        self.assertEqual(rec.events, [("added", [1])])


class SpooledBodyTests(StoreTestCase):
    """A body that went to the spool while it arrived is linked, never read into memory."""

    def spooled(self, data: bytes = MSG * 100) -> Body:
        writer = BodyWriter(os.path.join(self.root, "spool"), threshold=64)
        writer.write(data)
        body = writer.finish()
        self.assertIsNotNone(body.path)
        return body

    def test_spool_file_is_fsynced_before_it_is_linked(self):
        body = self.spooled()
        spool_inode = os.stat(body.path).st_ino
        events: list[tuple[str, int]] = []
        real_fsync, real_link = writing.os.fsync, writing.os.link
        self.patch(writing.os, "fsync", lambda fd: (events.append(("fsync", os.fstat(fd).st_ino)), real_fsync(fd))[1])
        self.patch(writing.os, "link", lambda a, b: (events.append(("link", os.stat(a).st_ino)), real_link(a, b))[1])
        self.done(self.store.deliver([Target(ALICE)], body))
        self.assertLess(events.index(("fsync", spool_inode)), events.index(("link", spool_inode)))

    def test_spool_file_becomes_the_message_file(self):
        body = self.spooled()
        spool_inode = os.stat(body.path).st_ino
        self.patch(Body, "read", lambda body: self.fail("a spooled body was read into memory"))
        self.patch(Body, "open", lambda body: self.fail("a spooled body was read into memory"))
        name = self.done(self.store.deliver([Target(ALICE), Target(BOB)], body))
        for address in (ALICE, BOB):
            self.assertEqual(os.stat(os.path.join(self.maildir(address), "new", name)).st_ino, spool_inode)
        body.discard()
        with open(os.path.join(self.maildir(), "new", name), "rb") as f:
            self.assertEqual(f.read(), wire.to_disk(MSG * 100))

    def test_spooled_body_on_another_file_system_is_streamed_across(self):
        body = self.spooled()
        self.patch(writing.os, "link", _cross_device_from(body.path))
        name = self.done(self.store.deliver([Target(ALICE), Target(BOB)], body))
        body.discard()
        inodes = {os.stat(os.path.join(self.maildir(a), "new", name)).st_ino for a in (ALICE, BOB)}
        self.assertEqual(len(inodes), 1)  # copied once, then linked from the copy
        self.assertEqual(self.done(self.folder().read(1)), wire.to_wire(wire.to_disk(MSG * 100)))
        self.assertEqual(self.files("tmp"), [])


class CopyFallbackTests(StoreTestCase):
    """os.link fails (EXDEV, another file system): the message is copied, durably, via tmp/."""

    def test_recipients_on_another_file_system_get_a_copy(self):
        self.patch(writing.os, "link", _cross_device_always)
        name = self.deliver(ALICE, BOB)
        inodes = set()
        for address in (ALICE, BOB):
            path = os.path.join(self.maildir(address), "new", name)
            inodes.add(os.stat(path).st_ino)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), wire.to_disk(MSG))
            self.assertEqual(self.files("tmp", address), [])
        self.assertEqual(len(inodes), 2)

    def test_copy_is_fsynced_before_the_rename_into_place(self):
        events: list[str] = []
        real_fsync, real_rename = writing.os.fsync, writing.os.rename
        self.patch(writing.os, "link", _cross_device_always)
        self.patch(writing.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
        self.patch(
            writing.os, "rename", lambda a, b: (events.append("rename " + os.path.dirname(b)[-3:]), real_rename(a, b))[1]
        )
        self.deliver(ALICE, BOB)
        # alice: write, fsync, rename; bob: copy, fsync, rename; then both new/ fsynced.
        self.assertEqual(events[:4], ["fsync", "rename new", "fsync", "rename new"])
        self.assertEqual(events[4:], ["fsync", "fsync"])


class DurabilityOrderTests(StoreTestCase):
    def test_directory_fsynced_before_the_deferred_fires(self):
        executor = ManualExecutor()
        store = Store(self.root, executor)
        synced: list[str] = []
        real = writing.fsync_dir
        self.patch(writing, "fsync_dir", lambda path: (synced.append(path), real(path))[1])
        d = store.deliver([Target(ALICE), Target(BOB)], Body.from_wire(MSG))
        self.assertNoResult(d)
        executor.run_all()
        self.successResultOf(d)
        self.assertEqual(sorted(os.path.basename(os.path.dirname(p)) for p in synced), ["alice", "bob"])

    def test_failed_write_fails_the_delivery_and_leaves_no_file(self):
        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(writing.os, "fsync", full)
        self.failed(self.store.deliver([Target(ALICE)], Body.from_wire(MSG)), OSError)
        self.assertEqual((self.files("new"), self.files("tmp")), ([], []))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)  # and it is logged


def _cross_device_always(src: str, dst: str) -> None:
    raise OSError(errno.EXDEV, "Invalid cross-device link")


def _cross_device_from(spool_path: str):
    """An os.link that fails only for links out of the spool file (the spool is elsewhere)."""
    real = os.link

    def link(src: str, dst: str) -> None:
        if src == spool_path:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    return link


class NewMaildirTests(StoreTestCase):
    def test_new_is_made_last_so_a_quick_check_never_sees_half_a_maildir(self):
        """Two first deliveries to a new user race in two threads: the one that finds
        ``new/`` must find ``tmp/`` too (it writes there next)."""
        from unittest import mock

        from mailsrv.store import maildir

        real = os.makedirs
        for made in range(3):
            path = self.mktemp()
            os.makedirs(path)
            calls = []

            def interrupted(p, *a, **kw):
                if len(calls) == made:
                    raise OSError(errno.EIO, "interrupted")
                calls.append(p)
                return real(p, *a, **kw)

            with mock.patch.object(maildir.os, "makedirs", interrupted):
                with self.assertRaises(OSError):
                    maildir.ensure_maildir(path, quick=True)
            if os.path.isdir(os.path.join(path, "new")):
                self.assertTrue(os.path.isdir(os.path.join(path, "tmp")))
                self.assertTrue(os.path.isdir(os.path.join(path, "cur")))
        maildir.ensure_maildir(path, quick=True)
        self.assertEqual(sorted(os.listdir(path)), ["cur", "new", "tmp"])

"""The Maildir++ store: delivery durability, UIDs, flags, folders, change feed."""

from __future__ import annotations

import os

from twisted.trial import unittest
from zope.interface import implementer

from mailsrv.store import (
    FolderExists,
    FolderHasChildren,
    InvalidFlag,
    KeywordLimit,
    IFolderListener,
    InvalidAddress,
    InvalidFolderName,
    MessageGone,
    NoSuchFolder,
    Store,
)
from mailsrv.message import wire
from mailsrv.store import maildir

MSG = b"From: a@example.test\r\nSubject: hi\r\n\r\nline one\r\n.dot line\r\n"


@implementer(IFolderListener)
class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def messages_added(self, folder, infos):
        self.events.append(("added", [i.uid for i in infos]))

    def flags_changed(self, folder, infos):
        self.events.append(("flags", [(i.uid, sorted(i.flags)) for i in infos]))

    def messages_expunged(self, folder, uids):
        self.events.append(("expunged", list(uids)))

    def folder_deleted(self, folder):
        self.events.append(("deleted", folder.name))


class StoreTestCase(unittest.TestCase):
    def setUp(self) -> None:
        self.root = self.mktemp()
        self.store = Store(self.root)

    def inbox(self, address="alice@example.test"):
        return self.store.user(address).folder("INBOX")


class DeliveryTests(StoreTestCase):
    async def test_deliver_writes_lf_file_in_new_and_reads_back_crlf(self):
        await self.store.deliver(["alice@example.test"], MSG)
        newdir = os.path.join(self.root, "example.test", "alice", "new")
        (name,) = os.listdir(newdir)
        with open(os.path.join(newdir, name), "rb") as f:
            self.assertEqual(f.read(), MSG.replace(b"\r\n", b"\n"))
        self.assertIn(f",W={len(MSG)}", name)
        self.assertEqual(os.listdir(os.path.join(self.root, "example.test", "alice", "tmp")), [])
        inbox = self.inbox()
        (info,) = inbox.messages()
        self.assertEqual(info.size, len(MSG))
        self.assertEqual(inbox.read(info.uid), MSG)

    async def test_one_write_hard_linked_for_all_recipients(self):
        await self.store.deliver(["alice@example.test", "bob@example.test", "ALICE@example.test"], MSG)
        inodes = set()
        for user in ("alice", "bob"):
            newdir = os.path.join(self.root, "example.test", user, "new")
            (name,) = os.listdir(newdir)
            inodes.add(os.stat(os.path.join(newdir, name)).st_ino)
        self.assertEqual(len(inodes), 1)

    async def test_delivery_announced_to_open_inbox(self):
        inbox = self.inbox()
        rec = Recorder()
        inbox.add_listener(rec)
        await self.store.deliver(["alice@example.test"], MSG)
        self.assertEqual(rec.events, [("added", [1])])
        self.assertEqual([i.uid for i in inbox.messages()], [1])

    def test_addresses_that_escape_the_root_are_refused(self):
        for bad in ("../x@example.test", "a@..", "a/b@example.test", "noat", ".hidden@example.test", "a@b/c"):
            self.assertRaises(InvalidAddress, self.store.user, bad)


class UIDTests(StoreTestCase):
    async def test_uids_and_uidvalidity_persist_across_restart(self):
        for _ in range(3):
            await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        before = [(i.uid, i.key) for i in inbox.messages()]
        validity = inbox.uidvalidity
        inbox.expunge([2])
        restarted = Store(self.root).user("alice@example.test").folder("INBOX")
        self.assertEqual([(i.uid, i.key) for i in restarted.messages()], [before[0], before[2]])
        self.assertEqual(restarted.uidvalidity, validity)
        self.assertEqual(restarted.uidnext, 4)
        await self.store.deliver(["alice@example.test"], MSG)
        restarted.sync(force=True)
        self.assertEqual([i.uid for i in restarted.messages()], [1, 3, 4])

    async def test_flag_rename_keeps_key_and_uid(self):
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        (info,) = inbox.messages()
        inbox.set_flags(info.uid, {"\\Seen", "\\Flagged", "$Junk"})
        (name,) = os.listdir(os.path.join(inbox.path, "cur"))
        self.assertTrue(name.endswith(":2,FSa"), name)
        reread = Store(self.root).user("alice@example.test").folder("INBOX")
        (again,) = reread.messages()
        self.assertEqual((again.uid, again.key), (info.uid, info.key))
        self.assertEqual(again.flags, {"\\Seen", "\\Flagged", "$Junk"})

    async def test_claim_recent_moves_new_to_cur_once(self):
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        self.assertEqual(inbox.recent_count(), 1)
        self.assertEqual(inbox.claim_recent(), {1})
        self.assertEqual(inbox.recent_count(), 0)
        self.assertEqual(inbox.claim_recent(), set())
        self.assertEqual(os.listdir(os.path.join(inbox.path, "new")), [])
        self.assertEqual(inbox.read(1), MSG)


class ChangeFeedTests(StoreTestCase):
    async def test_changes_behind_our_back_are_found_by_sync(self):
        await self.store.deliver(["alice@example.test"], MSG)
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        rec = Recorder()
        inbox.add_listener(rec)
        cur, new = os.path.join(inbox.path, "cur"), os.path.join(inbox.path, "new")
        first, second = sorted(os.listdir(new), key=lambda n: inbox.get(1).key not in n)
        os.rename(os.path.join(new, first), os.path.join(cur, first + ":2,S"))
        os.unlink(os.path.join(new, second))
        maildir.write_file(os.path.join(new, "1.M1P1.other"), b"Subject: x\n\nbody\n")
        inbox.sync(force=True)
        self.assertEqual(
            rec.events, [("expunged", [2]), ("flags", [(1, ["\\Seen"])]), ("added", [3])]
        )
        self.assertEqual(inbox.get(3).size, len(b"Subject: x\r\n\r\nbody\r\n"))

    async def test_read_follows_a_rename_and_reports_gone(self):
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        new = os.path.join(inbox.path, "new")
        (name,) = os.listdir(new)
        os.rename(os.path.join(new, name), os.path.join(inbox.path, "cur", name + ":2,S"))
        self.assertEqual(inbox.read(1), MSG)
        os.unlink(os.path.join(inbox.path, "cur", name + ":2,S"))
        self.assertRaises(MessageGone, inbox.read, 1)

    async def test_expunge_announces_and_unlinks(self):
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        rec = Recorder()
        inbox.add_listener(rec)
        self.assertEqual(inbox.expunge([1, 99]), [1])
        self.assertEqual(rec.events, [("expunged", [1])])
        self.assertEqual(os.listdir(os.path.join(inbox.path, "new")), [])


class FlagValidationTests(StoreTestCase):
    async def test_keywords_past_26_are_refused_not_dropped(self):
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        inbox.set_flags(1, {f"kw{i:02}" for i in range(26)})
        self.assertRaises(KeywordLimit, inbox.set_flags, 1, {f"kw{i:02}" for i in range(27)})
        restarted = Store(self.root).user("alice@example.test").folder("INBOX")
        self.assertEqual(restarted.get(1).flags, {f"kw{i:02}" for i in range(26)})

    async def test_unknown_system_flags_and_bad_keywords_are_refused(self):
        await self.store.deliver(["alice@example.test"], MSG)
        inbox = self.inbox()
        for bad in ("\\Bogus", "two words", "x" * 129, "caf\u00e9", "a]b", ""):
            self.assertRaises(InvalidFlag, inbox.set_flags, 1, {bad})
        self.assertFalse(os.path.exists(os.path.join(inbox.path, "dovecot-keywords")))
        self.assertEqual(inbox.set_flags(1, {"$Junk", "\\Seen"}).flags, {"$Junk", "\\Seen"})


class AppendCopyTests(StoreTestCase):
    async def test_append_with_flags_and_date(self):
        user = self.store.user("alice@example.test")
        user.create_folder("Sent")
        sent = user.folder("Sent")
        uid = await sent.append(MSG, {"\\Seen"}, internaldate=1_000_000_000.0)
        info = sent.get(uid)
        self.assertEqual((info.flags, info.internaldate), (frozenset({"\\Seen"}), 1_000_000_000.0))
        self.assertEqual(sent.read(uid), MSG)

    async def test_copy_links_and_returns_uid_pairs(self):
        await self.store.deliver(["alice@example.test"], MSG)
        user = self.store.user("alice@example.test")
        user.create_folder("Archive/2024")
        target = user.folder("Archive/2024")
        pairs = await self.inbox().copy([1, 42], target)
        self.assertEqual(pairs, [(1, 1)])
        self.assertEqual(target.read(1), MSG)


class FolderTreeTests(StoreTestCase):
    def test_create_list_rename_delete(self):
        user = self.store.user("alice@example.test")
        user.create_folder("Archive/2024")
        user.create_folder("Entwürfe")
        user.create_folder("Mr. X")
        self.assertEqual(user.list_folders(), ["INBOX", "Archive", "Archive/2024", "Entwürfe", "Mr. X"])
        self.assertTrue(os.path.isdir(os.path.join(user.path, ".Entw&APw-rfe", "cur")))
        self.assertTrue(os.path.isdir(os.path.join(user.path, ".Mr&AC4- X", "cur")))
        self.assertRaises(FolderExists, user.create_folder, "archive/2024".replace("a", "A", 1))
        user.rename_folder("Archive", "Old/Archive")
        self.assertEqual(user.list_folders(), ["INBOX", "Entwürfe", "Mr. X", "Old", "Old/Archive", "Old/Archive/2024"])
        self.assertRaises(FolderHasChildren, user.delete_folder, "Old/Archive")
        user.delete_folder("Old/Archive/2024")
        user.delete_folder("Old/Archive")
        self.assertEqual(user.list_folders(), ["INBOX", "Entwürfe", "Mr. X", "Old"])
        self.assertRaises(NoSuchFolder, user.folder, "Nope")
        self.assertRaises(InvalidFolderName, user.delete_folder, "inbox")

    def test_hostile_names_never_touch_the_disk(self):
        user = self.store.user("alice@example.test")
        for bad in ("..", "a/../b", "../../etc", "a\x00b", "/abs", "a//b", ".hidden", "a\\b", "tab\there", "*", ""):
            self.assertRaises(InvalidFolderName, user.create_folder, bad)
        self.assertEqual(sorted(os.listdir(os.path.dirname(user.path))) if os.path.isdir(user.path) else [], [])

    async def test_rename_inbox_moves_mail(self):
        await self.store.deliver(["alice@example.test"], MSG)
        user = self.store.user("alice@example.test")
        inbox = self.inbox()
        user.rename_folder("INBOX", "Old mail")
        self.assertEqual(inbox.messages(), [])
        self.assertEqual(user.folder("Old mail").read(1), MSG)

    def test_deleted_folder_is_reported_to_a_session_holding_it(self):
        user = self.store.user("alice@example.test")
        user.create_folder("Work")
        held = user.folder("Work")
        rec = Recorder()
        held.add_listener(rec)
        user.delete_folder("Work")
        self.assertEqual(rec.events, [("deleted", "Work")])
        self.assertRaises(NoSuchFolder, held.sync, True)
        self.assertRaises(NoSuchFolder, user.folder, "Work")

    def test_subscriptions(self):
        user = self.store.user("alice@example.test")
        user.subscribe("Lists/python")
        user.subscribe("INBOX")
        self.assertEqual(user.subscriptions(), {"Lists/python", "INBOX"})
        user.unsubscribe("Lists/python")
        self.assertEqual(user.subscriptions(), {"INBOX"})
        self.assertRaises(NoSuchFolder, user.unsubscribe, "never")


class WireFormTests(unittest.TestCase):
    def test_wire_size_matches_to_wire(self):
        for disk in (b"", b"a\nb\n", b"a\r\nb\n", b"no newline", b"\n\n\r\n"):
            self.assertEqual(wire.wire_size(disk), len(wire.to_wire(disk)))

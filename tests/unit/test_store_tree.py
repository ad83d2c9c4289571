"""UserStore: the folder tree (CREATE, LIST, RENAME, DELETE) and subscriptions."""

from __future__ import annotations

import os
import threading

from store_harness import ALICE, MSG, Recorder, StoreTestCase

from mailsrv.store import FolderExists, FolderHasChildren, InvalidFolderName, NoSuchFolder, Store, subscriptions
from mailsrv.workers import InlineExecutor


class FolderTreeTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = self.store.user(ALICE)

    def names(self) -> list[str]:
        return self.done(self.user.list_folders())

    def test_create_list_rename_delete(self):
        for name in ("Archive/2024", "Entwürfe", "Mr. X"):
            self.done(self.user.create_folder(name))
        self.assertEqual(self.names(), ["INBOX", "Archive", "Archive/2024", "Entwürfe", "Mr. X"])
        self.assertTrue(os.path.isdir(os.path.join(self.user.path, ".Entw&APw-rfe", "cur")))
        self.assertTrue(os.path.isdir(os.path.join(self.user.path, ".Mr&AC4- X", "cur")))
        self.failed(self.user.create_folder("Archive/2024"), FolderExists)
        self.done(self.user.rename_folder("Archive", "Old/Archive"))
        self.assertEqual(self.names(), ["INBOX", "Entwürfe", "Mr. X", "Old", "Old/Archive", "Old/Archive/2024"])
        self.done(self.user.delete_folder("Old/Archive"))  # RFC 3501 6.3.4: its subfolder stays
        self.assertEqual(self.names(), ["INBOX", "Entwürfe", "Mr. X", "Old", "Old/Archive/2024"])
        self.failed(self.user.delete_folder("Old/Archive"), FolderHasChildren)  # now a \Noselect name
        self.done(self.user.delete_folder("Old/Archive/2024"))
        self.assertEqual(self.names(), ["INBOX", "Entwürfe", "Mr. X", "Old"])
        self.failed(self.user.open("Nope"), NoSuchFolder)
        self.failed(self.user.delete_folder("inbox"), InvalidFolderName)
        self.failed(self.user.delete_folder("Nope"), NoSuchFolder)
        self.failed(self.user.rename_folder("Nope", "Other"), NoSuchFolder)
        self.failed(self.user.rename_folder("Old", "Mr. X"), FolderExists)
        self.failed(self.user.rename_folder("Old", "Old/Inside"), InvalidFolderName)

    def test_hostile_names_never_touch_the_disk(self):
        for bad in ("..", "a/../b", "../../etc", "a\x00b", "/abs", "a//b", ".hidden", "tab\there", "*", ""):
            for call in (self.user.create_folder, self.user.open, self.user.delete_folder, self.user.subscribe):
                self.failed(call(bad), InvalidFolderName)
        self.assertFalse(os.path.exists(self.root))

    def test_rename_inbox_moves_its_mail_and_an_open_inbox_sees_it(self):
        self.deliver()
        inbox = self.folder()
        rec = Recorder()
        inbox.add_listener(rec)
        self.done(self.user.rename_folder("INBOX", "Old mail"))
        self.assertEqual(inbox.messages(), [])
        self.assertEqual(rec.events, [("expunged", [1])])
        self.assertEqual(self.done(self.folder("Old mail").read(1)), MSG)

    def test_a_session_holding_a_deleted_folder_is_told(self):
        self.done(self.user.create_folder("Work"))
        held = self.folder("Work")
        rec = Recorder()
        held.add_listener(rec)
        self.done(self.user.delete_folder("Work"))
        self.assertEqual(rec.events, [("deleted", "Work")])
        self.failed(held.sync(), NoSuchFolder)
        self.failed(self.user.open("Work"), NoSuchFolder)
        self.assertIsNone(self.user.loaded_folder("Work"))

    def test_a_renamed_folder_is_gone_for_those_holding_it(self):
        self.done(self.user.create_folder("Work/2024"))
        held = self.folder("Work/2024")
        self.done(self.user.rename_folder("Work", "Done"))
        self.failed(held.sync(), NoSuchFolder)
        self.assertIsNot(self.folder("Done/2024"), held)

    def test_open_is_shared_by_sessions(self):
        self.assertIs(self.folder(), self.folder())
        self.assertIs(self.user.loaded_folder("inbox".upper()), self.folder())


class SubscriptionTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = self.store.user(ALICE)

    def test_subscribe_unsubscribe(self):
        self.done(self.user.subscribe("Lists/python"))
        self.done(self.user.subscribe("INBOX"))
        self.done(self.user.subscribe("inbox"))
        self.assertEqual(self.done(self.user.subscriptions()), {"Lists/python", "INBOX"})
        self.done(self.user.unsubscribe("Lists/python"))
        self.assertEqual(self.done(self.user.subscriptions()), {"INBOX"})
        self.failed(self.user.unsubscribe("never"), NoSuchFolder)

    def test_subscriptions_file_is_dovecots_version_2(self):
        for name in ("Archive/2024", "Ünïcode/x.y", "INBOX"):
            self.done(self.user.subscribe(name))
        with open(os.path.join(self.user.path, "subscriptions"), encoding="ascii") as f:
            self.assertEqual(f.read(), "V\t2\n\nArchive\t2024\nINBOX\n&ANw-n&AO8-code\tx&AC4-y\n")
        self.assertEqual(self.done(self.user.subscriptions()), {"Archive/2024", "Ünïcode/x.y", "INBOX"})
        self.assertFalse(os.path.exists(os.path.join(self.user.path, "subscriptions.lock")))

    def test_version_1_file_of_older_mailsrv_is_read_and_upgraded(self):
        os.makedirs(self.user.path)
        with open(os.path.join(self.user.path, "subscriptions"), "w", encoding="utf-8") as f:
            f.write("Lists/python\nEntwürfe\n")
        self.assertEqual(self.done(self.user.subscriptions()), {"Lists/python", "Entwürfe"})
        self.done(self.user.subscribe("INBOX"))
        with open(os.path.join(self.user.path, "subscriptions"), encoding="ascii") as f:
            self.assertEqual(f.read(), "V\t2\n\nEntw&APw-rfe\nINBOX\nLists\tpython\n")

    def test_concurrent_writers_lose_no_subscription(self):
        """Two nodes subscribing at once: the edit lock keeps every one (read-modify-write)."""
        names = [f"List{i}" for i in range(40)]
        errors: list[BaseException] = []

        def node(mine: list[str]) -> None:
            try:
                for name in mine:
                    subscriptions.edit(self.user.path, lambda subs, n=name: subs | {n})
            except BaseException as e:  # reported below; a thread cannot fail the test itself
                errors.append(e)

        threads = [threading.Thread(target=node, args=(names[i::2],)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        other = Store(self.root, InlineExecutor()).user(ALICE)
        self.assertEqual(self.done(other.subscriptions()), set(names))

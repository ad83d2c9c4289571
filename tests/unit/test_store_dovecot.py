"""Maildirs shared with a real Dovecot 2.3: what one writes, the other reads with the same UIDs.

Dovecot makes the fixtures itself (``doveadm save``, ``flags add``,
``expunge``), so the tests check against what Dovecot really writes, not
against our reading of its documentation; the round trip then hands the
Maildir back to Dovecot after mailsrv changed it.
"""

from __future__ import annotations

import os

from dovecot_harness import Doveadm
from store_harness import ALICE, MSG, StoreTestCase

from mailsrv.message.body import Body
from mailsrv.store import Store, Target, maildirsize, uidlist
from mailsrv.store.maildirsize import Limits, Usage
from mailsrv.store.files import read_text
from mailsrv.workers import InlineExecutor


def message(n: int) -> bytes:
    return f"From: a@example.test\nSubject: message {n}\n\nbody {n}\n".encode()


class DovecotTestCase(StoreTestCase):
    """The store on the Maildirs a :class:`Doveadm` works on."""

    def setUp(self) -> None:
        self.dovecot = Doveadm(self)
        self.root = self.dovecot.root
        self.store = Store(self.root, InlineExecutor())


class RoundTripTests(DovecotTestCase):
    """Dovecot -> mailsrv -> Dovecot on alice's INBOX."""

    def setUp(self) -> None:
        super().setUp()
        for n in range(1, 6):
            self.dovecot.save(ALICE, message(n))
        self.dovecot.run(ALICE, "flags", "add", "\\Seen $Junk", "mailbox", "INBOX", "uid", "1")
        self.dovecot.run(ALICE, "flags", "add", "\\Flagged work", "mailbox", "INBOX", "uid", "2")
        self.dovecot.run(ALICE, "flags", "add", "\\Answered \\Draft", "mailbox", "INBOX", "uid", "4")
        self.dovecot.run(ALICE, "expunge", "mailbox", "INBOX", "uid", "3")
        self.before = self.dovecot.uids_and_flags(ALICE)
        self.status = self.dovecot.status(ALICE)

    def mailsrv_view(self, store: Store | None = None) -> dict[int, set[str]]:
        return {i.uid: set(i.flags) for i in self.folder(store=store).messages()}

    def test_the_fixture_is_what_the_issue_describes(self):
        self.assertEqual(sorted(self.before), [1, 2, 4, 5])
        self.assertEqual(self.status["uidnext"], 6)

    def test_mailsrv_keeps_every_uid_uidvalidity_flag_and_keyword(self):
        inbox = self.folder()
        self.assertEqual(self.mailsrv_view(), self.before)
        self.assertEqual(self.before[1], {"\\Seen", "$Junk"})
        self.assertEqual((inbox.uidvalidity, inbox.uidnext), (self.status["uidvalidity"], 6))

    def test_dovecot_sees_what_mailsrv_changed_with_the_same_uids(self):
        inbox = self.folder()
        self.deliver()
        self.done(inbox.store_flags([(5, frozenset({"\\Seen", "$Forwarded", "later"})), (1, frozenset())]))
        self.done(inbox.expunge([2]))
        ours = self.mailsrv_view()
        self.assertEqual(sorted(ours), [1, 4, 5, 6])
        self.assertEqual(self.dovecot.uids_and_flags(ALICE), ours)
        status = self.dovecot.status(ALICE)
        self.assertEqual((status["uidvalidity"], status["uidnext"], status["messages"]),
                         (self.status["uidvalidity"], 7, 4))

    def test_uids_dovecot_gives_after_mailsrv_wrote_are_seen_by_mailsrv(self):
        self.folder()
        self.deliver()  # uid 6, appended by mailsrv
        self.dovecot.save(ALICE, message(7))  # uid 7, appended by Dovecot
        restarted = Store(self.root, InlineExecutor())
        self.assertEqual(sorted(self.mailsrv_view(restarted)), [1, 2, 4, 5, 6, 7])
        self.assertEqual(sorted(self.dovecot.uids_and_flags(ALICE)), [1, 2, 4, 5, 6, 7])

    def test_flags_dovecot_changes_get_new_modseqs_here(self):
        inbox = self.folder()
        modseqs = {i.uid: i.modseq for i in inbox.messages()}
        self.assertTrue(all(modseqs.values()))  # Dovecot's messages were numbered at the first open
        highest = inbox.highest_modseq
        self.dovecot.run(ALICE, "flags", "add", "\\Flagged", "mailbox", "INBOX", "uid", "5")
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertIn("\\Flagged", restarted.get(5).flags)
        self.assertGreater(restarted.get(5).modseq, highest)  # a CONDSTORE client will fetch it
        self.assertEqual({u: restarted.get(u).modseq for u in modseqs if u != 5},
                         {u: m for u, m in modseqs.items() if u != 5})

    def test_our_modseq_survives_dovecots_rewrite(self):
        inbox = self.folder()
        self.done(inbox.expunge([1]))  # we rewrite: M is in the header, the expunge's modseq in ours
        modseq = inbox.highest_modseq
        path = os.path.join(inbox.path, uidlist.FILENAME)
        self.assertIn(3, uidlist.parse(read_text(path), path)[1].by_key.values())  # Dovecot's expunge, kept
        self.dovecot.run(ALICE, "expunge", "mailbox", "INBOX", "uid", "2,4")  # Dovecot compacts the list
        header, entries = uidlist.parse(read_text(path), path)
        self.assertEqual(sorted(entries.by_key.values()), [5])  # so Dovecot rewrote it
        self.assertGreater(header.highest_modseq, 0)  # M kept, a lower bound
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertEqual(restarted.highest_modseq, modseq)  # mailsrv-modseq: Dovecot left it alone


class MailsrvFirstTests(DovecotTestCase):
    """A Maildir mailsrv made from scratch, opened by Dovecot."""

    def test_dovecot_reads_our_uidlist_and_keywords(self):
        dovecot = self.dovecot
        for _ in range(3):
            self.deliver(data=MSG)
        inbox = self.folder()
        self.done(inbox.store_flags([(2, frozenset({"\\Flagged", "project-x"}))]))
        self.done(inbox.expunge([1]))
        self.assertEqual(dovecot.uids_and_flags(ALICE), {2: {"\\Flagged", "project-x"}, 3: set()})
        self.assertEqual(dovecot.status(ALICE)["uidvalidity"], inbox.uidvalidity)


class FolderTreeTests(DovecotTestCase):
    """Maildir++ folder names and subscriptions, written by one and read by the other."""

    NAMES = ["Archive/2024", "Sent", "Ünïcode/xy"]

    def test_dovecots_folders_and_subscriptions_are_ours(self):
        for name in self.NAMES:
            self.dovecot.run(ALICE, "mailbox", "create", "-s", name)
        self.dovecot.run(ALICE, "mailbox", "subscribe", "Not/There")
        self.dovecot.save(ALICE, message(1), mailbox="Ünïcode/xy")
        user = self.store.user(ALICE)
        # Dovecot makes no directory for a parent level: only the folders themselves exist.
        self.assertEqual(self.done(user.list_folders()), ["INBOX", *self.NAMES])
        self.assertEqual(self.done(user.subscriptions()), {*self.NAMES, "Not/There"})
        self.assertEqual([i.uid for i in self.folder("Ünïcode/xy").messages()], [1])

    def test_our_folders_and_subscriptions_are_dovecots(self):
        user = self.store.user(ALICE)
        for name in self.NAMES:
            self.done(user.create_folder(name))
            self.done(user.subscribe(name))
        self.done(user.subscribe("Not/There"))
        self.done(self.store.deliver([Target(ALICE, "Ünïcode/xy")], Body.from_wire(MSG)))
        listed = self.dovecot.run(ALICE, "mailbox", "list").split()
        self.assertEqual(sorted(listed), sorted(["INBOX", "Archive", *self.NAMES, "Ünïcode"]))
        self.assertEqual(sorted(self.dovecot.run(ALICE, "mailbox", "list", "-s").split()),
                         sorted([*self.NAMES, "Not/There"]))
        self.assertEqual(list(self.dovecot.uids_and_flags(ALICE, "Ünïcode/xy")), [1])


class QuotaTests(DovecotTestCase):
    """``maildirsize``: Dovecot's maildir quota backend and mailsrv keep one account."""

    def quota(self) -> dict[str, tuple[str, str]]:
        """Resource -> (value, limit) as ``doveadm quota get`` shows them (STORAGE in KiB)."""
        rows = [line.split() for line in self.dovecot.run(ALICE, "quota", "get").splitlines()[1:] if line]
        return {row[-4]: (row[-3], row[-2]) for row in rows}

    def test_each_reads_and_extends_the_others_accounting(self):
        for n in range(3):
            self.dovecot.save(ALICE, message(n))  # Dovecot makes the file and counts these
        user = self.store.user(ALICE)
        counted = maildirsize._counted(user.path)
        self.assertEqual(self.done(user.quota_usage()), Usage(*counted, Limits()))
        usage = self.done(user.quota_usage(Limits(storage=10 * 1024, messages=50)))
        self.deliver()  # recorded by mailsrv
        self.assertEqual(self.quota(), {"STORAGE": ("1", "10"), "MESSAGE": ("4", "50")})
        self.dovecot.save(ALICE, message(5))  # recorded by Dovecot
        after = self.done(user.quota_usage())
        self.assertEqual((after.messages, after.limits), (5, Limits(10 * 1024, 50)))
        self.assertEqual((after.storage, after.messages), maildirsize._counted(user.path))
        self.assertGreater(after.storage, usage.storage)

"""UID assignment: group commit, concurrent writers, the file format, persistence."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from typing import Any

from twisted.internet.task import Clock

from store_harness import ALICE, MSG, ManualExecutor, Recorder, StoreTestCase, age_directories, repo_root

from mailsrv.message.body import Body
from mailsrv.store import Store, Target, keywords, modseqs, subscriptions, uidlist
from mailsrv.store.files import read_text
from mailsrv.store.uidlist import UIDList
from mailsrv.workers import InlineExecutor


_fdatasync = os.fdatasync


def entries(path: str) -> dict[str, int]:
    return uidlist.parse(read_text(os.path.join(path, uidlist.FILENAME)), path)[1].by_key


class GroupCommitTests(StoreTestCase):
    """Deliveries into a folder a session holds open: UIDs by group commit, off the reactor."""

    def setUp(self) -> None:
        super().setUp()
        self.executor = ManualExecutor()
        self.store = Store(self.root, self.executor)
        opened = self.store.user(ALICE).open("INBOX")
        self.executor.run_all()
        self.inbox = self.successResultOf(opened)
        self.rec = Recorder()
        self.inbox.add_listener(self.rec)
        self.executor.ran.clear()

    def test_deliveries_during_a_commit_share_the_next_one(self):
        delivered = [self.store.deliver([Target(ALICE)], Body.from_wire(MSG)) for _ in range(10)]
        for _ in range(10):
            self.assertEqual(self.executor.run_next(), "_deliver")
        for d in delivered:
            self.successResultOf(d)  # durable: SMTP may answer 250 without waiting for a UID
        self.assertEqual([fn.__name__ for fn, *_ in self.executor.jobs], ["commit"])
        self.executor.run_all()
        self.assertEqual(self.executor.ran.count("commit"), 2)
        self.assertEqual(self.rec.events, [("added", [1]), ("added", list(range(2, 11)))])
        self.assertEqual(sorted(entries(self.inbox.path).values()), list(range(1, 11)))

    def test_with_a_clock_deliveries_wait_to_share_one_commit(self):
        clock = Clock()
        store, inbox, rec = self.watched(Store(self.root, self.executor, clock))
        for _ in range(10):
            store.deliver([Target(ALICE)], Body.from_wire(MSG))
            self.assertEqual(self.executor.run_next(), "_deliver")
        self.assertEqual(self.executor.pending, 0)  # the commit waits for company
        clock.advance(uidlist.BATCH_DELAY)
        self.assertEqual(self.executor.run_next(), "commit")
        self.assertEqual(self.executor.pending, 0)
        self.assertEqual(rec.events, [("added", list(range(1, 11)))])

    def test_a_sync_does_not_wait_for_the_delivery_batch(self):
        store, inbox, rec = self.watched(Store(self.root, self.executor, Clock()))
        store.deliver([Target(ALICE)], Body.from_wire(MSG))
        self.executor.run_next()
        synced = inbox.sync()
        self.executor.run_all()  # no clock advance: the sync's commit takes the delivery along
        self.successResultOf(synced)
        self.assertEqual(rec.events, [("added", [1])])

    def watched(self, store: Store) -> tuple[Store, Any, Recorder]:
        opened = store.user(ALICE).open("INBOX")
        self.executor.run_all()
        inbox = self.successResultOf(opened)
        rec = Recorder()
        inbox.add_listener(rec)
        return store, inbox, rec

    def test_no_uid_is_announced_or_listed_before_it_is_durable(self):
        self.store.deliver([Target(ALICE)], Body.from_wire(MSG))
        self.executor.run_next()  # the message file is durable; its UID is queued
        self.assertEqual((self.rec.events, self.inbox.messages()), ([], []))
        self.assertEqual(entries(self.inbox.path), {})
        self.assertEqual(self.executor.run_next(), "commit")
        self.assertEqual(len(entries(self.inbox.path)), 1)
        self.assertEqual(self.rec.events, [("added", [1])])

    def test_a_sync_meanwhile_neither_duplicates_nor_loses_the_delivery(self):
        self.store.deliver([Target(ALICE)], Body.from_wire(MSG))
        self.executor.run_next()
        synced = self.inbox.sync()  # lists the file whose UID is still queued
        self.executor.run_all()
        self.successResultOf(synced)
        self.assertEqual([i.uid for i in self.inbox.messages()], [1])
        self.assertEqual(self.rec.events, [("added", [1])])

    def test_a_failed_commit_is_retried_by_the_next_one(self):
        def broken(fd: int) -> None:
            raise OSError(errno.EIO, "I/O error")

        self.store.deliver([Target(ALICE)], Body.from_wire(MSG))
        self.executor.run_next()
        self.patch(uidlist.os, "fdatasync", broken)
        self.executor.run_all()
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual((self.inbox.messages(), self.rec.events), ([], []))
        self.patch(uidlist.os, "fdatasync", _fdatasync)
        self.store.deliver([Target(ALICE)], Body.from_wire(MSG))
        self.executor.run_all()
        self.assertEqual(self.rec.events, [("added", [1, 2])])


class TwoWritersTests(StoreTestCase):
    """Two nodes (two stores, or two processes) assigning UIDs in one folder."""

    def test_interleaved_stores_never_share_or_lose_a_uid(self):
        other = Store(self.root, InlineExecutor())
        here, there = self.folder(), self.folder(store=other)
        for i in range(6):
            self.deliver(store=self.store if i % 2 else other)
            (here if i % 3 else there).sync()
        age_directories(here.path)  # a stamp move both must see, whatever the timestamp tick
        self.done(here.sync())
        self.done(there.sync())
        mine = [(i.uid, i.key) for i in here.messages()]
        self.assertEqual(mine, [(i.uid, i.key) for i in there.messages()])
        self.assertEqual([uid for uid, _ in mine], list(range(1, 7)))
        self.assertEqual(sorted(entries(here.path).items()), sorted((k, u) for u, k in mine))

    def test_two_processes_committing_concurrently(self):
        folder = os.path.abspath(os.path.join(self.root, "shared"))
        os.makedirs(folder)
        child = textwrap.dedent(
            """
            import sys
            from mailsrv.store import modseqs, uidlist
            path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
            table, mstamp = modseqs.Table(), None
            done = uidlist.commit(path, None, uidlist.Header(), uidlist.Entries(), {}, frozenset(),
                                  uidlist.Numbering(None, table, []))
            header, entries, stamp, mine, numbers = done.header, done.entries, done.stamp, {}, []
            for i in range(count):
                forgets = frozenset([f"{name}-{i - 5}"]) if i % 10 == 9 else frozenset()
                done = uidlist.commit(path, stamp, header, entries, {f"{name}-{i}": "S"}, forgets,
                                      uidlist.Numbering(mstamp, table, []))
                if done.entries is not None:
                    entries = done.entries
                entries.by_key.update(done.assigned)
                header, stamp = done.header, done.stamp
                mine.update(done.assigned)
                if done.modseqs.table is not None:
                    table = done.modseqs.table
                else:
                    table.apply(done.modseqs.sets, done.modseqs.gone)
                mstamp = done.modseqs.stamp
                numbers += done.modseqs.modseqs
            print(" ".join(f"{k}={u}" for k, u in mine.items()))
            print(" ".join(map(str, numbers)))
            """
        )
        path = os.path.join(folder, uidlist.FILENAME)
        procs = [
            subprocess.Popen([sys.executable, "-c", child, path, name, "100"], stdout=subprocess.PIPE, cwd=repo_root())
            for name in ("a", "b")
        ]
        assigned: dict[str, int] = {}
        numbers: list[int] = []
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 0)
            uid_line, modseq_line = out.decode().splitlines()
            assigned.update(item.split("=") for item in uid_line.split())  # type: ignore[arg-type]
            numbers += [int(n) for n in modseq_line.split()]
        self.assertEqual(sorted(numbers), list(range(2, 202)))  # one counter for both: no modseq twice
        uids = [int(u) for u in assigned.values()]
        self.assertEqual(len(assigned), 200)
        self.assertEqual(sorted(uids), list(range(1, 201)))  # none given twice, none skipped
        header, on_disk = uidlist.parse(read_text(path), path)
        on_disk = on_disk.by_key
        forgotten = {f"{n}-{i - 5}" for n in ("a", "b") for i in range(100) if i % 10 == 9}
        self.assertEqual(on_disk, {k: int(u) for k, u in assigned.items() if k not in forgotten})
        self.assertEqual(header.uidnext, 201)


class FileFormatTests(StoreTestCase):
    def test_header_has_validity_next_and_modseq(self):
        inbox = self.folder()
        self.deliver()
        self.done(inbox.expunge([1]))  # a rewrite: the header is written
        first = read_text(os.path.join(inbox.path, uidlist.FILENAME)).splitlines()[0]
        guid = uidlist.parse(read_text(os.path.join(inbox.path, uidlist.FILENAME)), "f")[0].guid
        self.assertRegex(guid, "^[0-9a-f]{32}$")
        self.assertRegex(first, f"^3 V{inbox.uidvalidity} N2 G{guid} M[1-9][0-9]*$")  # M: a lower bound
        self.assertGreater(inbox.highest_modseq, 0)

    def test_unknown_header_fields_and_bad_lines_are_skipped(self):
        header, entries = uidlist.parse("3 V7 X99 N5 M3 Qzz\n2 :k2\nnonsense\n4 :k4\n", "f")
        self.assertEqual((header.uidvalidity, header.uidnext, header.highest_modseq), (7, 5, 3))
        self.assertEqual(header.others, ("X99", "Qzz"))
        self.assertEqual(entries.by_key, {"k2": 2, "k4": 4})
        self.assertEqual(len(self.flushLoggedErrors()), 0)

    def test_a_header_without_modseq_still_reads(self):
        self.assertEqual(uidlist.parse("3 V7 N3\n", "f")[0], uidlist.Header(7, 3, 0))

    def test_line_torn_by_a_crash_does_not_swallow_the_next_entry(self):
        path = os.path.join(self.mktemp())
        os.makedirs(path)
        with open(os.path.join(path, uidlist.FILENAME), "w") as f:
            f.write("3 V7 N2 G0123456789abcdef0123456789abcdef M0\n1 :k1\n2 :k-tor")  # the process died mid-append
        uids = UIDList(path, InlineExecutor())
        self.successResultOf(uids.assign({"k3": ""}))
        self.assertEqual(entries(path)["k3"], uids.by_key["k3"])
        self.assertEqual(uids.by_key["k1"], 1)

    def test_vanished_file_is_written_again_with_the_same_uidvalidity(self):
        inbox = self.folder()
        self.deliver()
        validity = inbox.uidvalidity
        os.unlink(os.path.join(inbox.path, uidlist.FILENAME))
        self.deliver()
        self.assertEqual(inbox.uidvalidity, validity)
        self.assertEqual(entries(inbox.path), {i.key: i.uid for i in inbox.messages()})
        self.assertEqual([i.uid for i in inbox.messages()], [1, 2])


class PersistenceTests(StoreTestCase):
    def test_uids_uidvalidity_and_modseq_survive_a_restart(self):
        for _ in range(3):
            self.deliver()
        inbox = self.folder()
        before = [(i.uid, i.key) for i in inbox.messages()]
        self.done(inbox.expunge([2]))
        age_directories(inbox.path)
        restarted = self.folder(store=Store(self.root, InlineExecutor()))
        self.assertEqual([(i.uid, i.key) for i in restarted.messages()], [before[0], before[2]])
        self.assertEqual((restarted.uidvalidity, restarted.uidnext), (inbox.uidvalidity, 4))
        self.assertGreaterEqual(restarted.highest_modseq, inbox.highest_modseq)
        self.deliver()
        self.done(restarted.sync())
        self.assertEqual([i.uid for i in restarted.messages()], [1, 3, 4])

    def test_a_new_folder_gets_a_fresh_uidvalidity(self):
        user = self.store.user(ALICE)
        self.done(user.create_folder("A"))
        self.done(user.create_folder("B"))
        self.assertNotEqual(self.folder("A").uidvalidity, self.folder("B").uidvalidity)


def put_messages(folder: str, names: list[str]) -> None:
    """Message files written behind the store's back, into ``cur/``."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for name in names:
        with open(os.path.join(folder, "cur", name), "wb") as f:
            f.write(b"Subject: x\n\nbody\n")


GUID = "22b30f10a1860f6b9e2f000083ecc375"


class DovecotFormatTests(StoreTestCase):
    """Fields Dovecot writes that we do not use survive our rewrites."""

    def test_entry_and_header_fields_are_kept_on_rewrite(self):
        inbox = self.maildir()
        put_messages(inbox, ["1.M1P1.h,S=17:2,S", "2.M2P2.h,S=17:2,", "4.M4P4.h,S=17:2,"])
        with open(os.path.join(inbox, uidlist.FILENAME), "w") as f:
            f.write(f"3 V1275660208 N5 G{GUID} Xfuture\n"
                    f"1 G{GUID[::-1]} W18 :1.M1P1.h,S=17\n2 :2.M2P2.h,S=17\n4 W18 :4.M4P4.h,S=17\n")
        folder = self.folder()
        self.assertEqual([(i.uid, i.key) for i in folder.messages()],
                         [(1, "1.M1P1.h,S=17"), (2, "2.M2P2.h,S=17"), (4, "4.M4P4.h,S=17")])
        self.assertEqual(folder.uidvalidity, 1275660208)
        self.done(folder.expunge([2]))  # a rewrite
        lines = read_text(os.path.join(inbox, uidlist.FILENAME)).splitlines()
        self.assertRegex(lines[0], f"^3 V1275660208 N5 G{GUID} M[0-9]+ Xfuture$")
        self.assertEqual(lines[1:], [f"1 G{GUID[::-1]} W18 :1.M1P1.h,S=17", "4 W18 :4.M4P4.h,S=17"])

    def test_courier_version_1_file_is_read(self):
        inbox = self.maildir()
        put_messages(inbox, ["7.M1P1.h:2,S", "9.M2P2.h:2,"])
        with open(os.path.join(inbox, uidlist.FILENAME), "w") as f:
            f.write("1 4242 12\n3 7.M1P1.h:2,S\n8 9.M2P2.h\n")
        folder = self.folder()
        self.assertEqual([i.uid for i in folder.messages()], [3, 8])
        self.assertEqual((folder.uidvalidity, folder.uidnext), (4242, 12))


class MigrationTests(StoreTestCase):
    """Stores of older mailsrv versions keep every UID, UIDVALIDITY and the mod-sequence."""

    OLD = "1 V1700000000 N9 M41\n4 4.M1P1.h,S=17,W=18\n6 6.M2P2.h,S=17,W=18\n"

    def setUp(self) -> None:
        super().setUp()
        self.inbox = self.maildir()
        put_messages(self.inbox, ["4.M1P1.h,S=17,W=18:2,S", "6.M2P2.h,S=17,W=18:2,"])
        with open(os.path.join(self.inbox, uidlist.OLD_FILENAME), "w") as f:
            f.write(self.OLD)

    def test_old_uidlist_becomes_dovecot_uidlist(self):
        folder = self.folder()
        self.assertEqual([(i.uid, i.key) for i in folder.messages()],
                         [(4, "4.M1P1.h,S=17,W=18"), (6, "6.M2P2.h,S=17,W=18")])
        self.assertEqual((folder.uidvalidity, folder.uidnext), (1700000000, 9))
        self.assertGreaterEqual(folder.highest_modseq, 41)
        self.assertFalse(os.path.exists(os.path.join(self.inbox, uidlist.OLD_FILENAME)))
        header, entries = uidlist.parse(read_text(os.path.join(self.inbox, uidlist.FILENAME)), "f")
        self.assertEqual((header.uidvalidity, header.highest_modseq), (1700000000, 41))
        self.assertEqual(entries.by_key, {"4.M1P1.h,S=17,W=18": 4, "6.M2P2.h,S=17,W=18": 6})
        self.deliver()
        self.assertEqual([i.uid for i in self.folder().messages()], [4, 6, 9])

    def test_old_uidlist_wins_over_a_dovecot_file_it_ignored_but_keeps_its_guid(self):
        with open(os.path.join(self.inbox, uidlist.FILENAME), "w") as f:
            f.write(f"3 V1600000000 N3 G{GUID}\n1 :4.M1P1.h,S=17,W=18\n2 :6.M2P2.h,S=17,W=18\n")
        folder = self.folder()
        self.assertEqual([i.uid for i in folder.messages()], [4, 6])
        self.assertEqual(folder.uidvalidity, 1700000000)
        header, _ = uidlist.parse(read_text(os.path.join(self.inbox, uidlist.FILENAME)), "f")
        self.assertEqual(header.guid, GUID)


class DotLockedWritesTests(StoreTestCase):
    """Every file Dovecot dot-locks is written under its dot-lock."""

    def lock_seen(self, module: Any, lock: str) -> list[bool]:
        seen: list[bool] = []
        real = module.replace_file

        def checked(*args: Any) -> Any:
            seen.append(os.path.exists(lock))
            return real(*args)

        self.patch(module, "replace_file", checked)
        return seen

    def test_keywords_and_subscriptions_are_written_under_dovecots_lock(self):
        inbox = self.folder()
        keyword_locks = self.lock_seen(keywords, os.path.join(inbox.path, "dovecot-keywords.lock"))
        subscription_locks = self.lock_seen(subscriptions, os.path.join(inbox.path, "subscriptions.lock"))
        self.deliver()
        self.done(inbox.store_flags([(1, frozenset({"todo"}))]))
        self.done(self.store.user(ALICE).subscribe("INBOX"))
        self.assertEqual((keyword_locks, subscription_locks), ([True], [True]))

    def test_every_write_holds_dovecots_lock(self):
        inbox = self.folder()
        lock = os.path.join(inbox.path, uidlist.FILENAME + ".lock")
        seen = []
        for module, name in [(m, n) for m in (uidlist, modseqs) for n in ("append_durably", "replace_file")]:
            real = getattr(module, name)

            def checked(*args: Any, real: Any = real) -> Any:
                seen.append(os.path.exists(lock))
                return real(*args)

            self.patch(module, name, checked)
        self.deliver()
        self.done(inbox.expunge([1]))
        self.assertEqual(seen, [True] * 4)  # the UID list and mailsrv-modseq, each written twice
        self.assertFalse(os.path.exists(lock))


class ForwardedFlagTests(StoreTestCase):
    """``$Forwarded`` as Dovecot keeps it (a keyword letter), and mutt's ``P`` read as it."""

    def test_passed_letter_reads_as_forwarded_and_is_rewritten_as_the_keyword(self):
        inbox = self.maildir()
        put_messages(inbox, ["1.M1P1.h,S=17:2,PS"])
        folder = self.folder()
        (info,) = folder.messages()
        self.assertEqual(info.flags, {"$Forwarded", "\\Seen"})
        self.done(folder.store_flags([(info.uid, frozenset({"$Forwarded", "\\Seen", "\\Flagged"}))]))
        letter = folder._keywords.letter_of["$Forwarded"]
        self.assertEqual(self.files("cur"), [f"1.M1P1.h,S=17:2,FS{letter}"])
        self.assertIn("0 $Forwarded", read_text(os.path.join(inbox, "dovecot-keywords")).splitlines())

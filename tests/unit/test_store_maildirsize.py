"""store/maildirsize.py: Maildir++ quota accounting, kept up to date by every change mailsrv makes."""

from __future__ import annotations

import os
import time

from store_harness import ALICE, MSG, StoreTestCase

from mailsrv.message.body import Body
from mailsrv.store import Target, maildirsize
from mailsrv.store.files import read_text
from mailsrv.store.maildirsize import Limits, Usage

DISK = len(MSG.replace(b"\r\n", b"\n"))  # what one delivery of MSG takes on disk


class AccountingTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = self.store.user(ALICE)
        self.path = os.path.join(self.maildir(), maildirsize.FILENAME)

    def usage(self, limits: Limits | None = None) -> Usage:
        return self.done(self.user.quota_usage(limits))

    def lines(self) -> list[str]:
        return read_text(self.path).splitlines()

    def test_first_use_counts_every_folder_and_writes_the_file(self):
        self.deliver()
        self.done(self.user.create_folder("Archive"))
        self.done(self.store.deliver([Target(ALICE, "Archive", frozenset({"\\Seen"}))], Body.from_wire(MSG)))
        self.assertFalse(os.path.exists(self.path))  # no file: nothing to keep up to date yet
        self.assertEqual(self.usage(), Usage(2 * DISK, 2, Limits()))
        self.assertEqual(self.lines(), ["0S", f"{2 * DISK} 2"])

    def test_every_change_mailsrv_makes_is_one_appended_line(self):
        self.usage()
        self.deliver()
        inbox = self.folder()
        self.done(self.user.create_folder("Archive"))
        self.done(inbox.append(Body.from_wire(MSG)))
        self.done(inbox.copy([1, 2], self.folder("Archive")))
        self.done(inbox.expunge([1]))
        self.assertEqual(self.lines(), ["0S", "0 0", f"{DISK} 1", f"{DISK} 1", f"{2 * DISK} 2", f"-{DISK} -1"])
        self.assertEqual(self.usage(), Usage(3 * DISK, 3, Limits()))
        self.assertEqual(maildirsize._counted(self.maildir()), (3 * DISK, 3))

    def test_deleting_a_folder_recalculates(self):
        self.usage()
        self.done(self.user.create_folder("Archive"))
        self.done(self.store.deliver([Target(ALICE, "Archive")], Body.from_wire(MSG)))
        self.done(self.user.delete_folder("Archive"))
        self.assertEqual(self.lines(), ["0S", "0 0"])

    def test_limits_given_are_written_and_kept_afterwards(self):
        self.deliver()
        self.assertEqual(self.usage(Limits(1_048_576, 100)).limits, Limits(1_048_576, 100))
        self.assertEqual(self.lines()[0], "1048576S,100C")
        self.assertEqual(self.usage().limits, Limits(1_048_576, 100))
        self.assertEqual(self.usage(Limits(messages=5)).limits, Limits(0, 5))
        self.assertEqual(self.lines()[0], "5C")

    def test_a_file_grown_past_5120_bytes_is_recalculated(self):
        self.usage()
        with open(self.path, "a") as f:
            f.write("1 0\n" * 1300)  # wrong, and big
        self.deliver()
        self.assertEqual(self.lines(), ["0S", f"{DISK} 1"])

    def test_broken_or_negative_files_are_recalculated(self):
        self.deliver()
        for text in ("0S\n12 1\nnonsense\n", "0S\n-500 -3\n", "", "0S\n"):
            with open(self.path, "w") as f:
                f.write(text)
            self.assertEqual(self.usage(), Usage(DISK, 1, Limits()), text)

    def test_over_quota_figures_are_believed_only_fresh_and_summed_once(self):
        self.deliver()
        limits = Limits(storage=10)
        with open(self.path, "w") as f:
            f.write(f"10S\n{DISK + 99} 1\n")  # over, one fresh line: believed
        self.assertEqual(self.usage(limits).storage, DISK + 99)
        with open(self.path, "w") as f:
            f.write(f"10S\n{DISK + 99} 1\n0 0\n")  # over, more than one line: recalculated
        self.assertEqual(self.usage(limits).storage, DISK)
        with open(self.path, "w") as f:
            f.write(f"10S\n{DISK + 99} 1\n")
        old = time.time() - maildirsize.STALE_AFTER - 10
        os.utime(self.path, (old, old))  # over, but old: recalculated
        self.assertEqual(self.usage(limits).storage, DISK)

    def test_a_line_being_appended_is_not_read_half_written(self):
        self.deliver()
        with open(self.path, "w") as f:
            f.write(f"0S\n{DISK} 1\n30")
        self.assertEqual(self.usage(), Usage(DISK, 1, Limits()))
        self.assertTrue(self.lines()[-1].startswith("30"))  # trusted, not rewritten

    def test_limits_line_as_written_by_others(self):
        self.assertEqual(Limits.parse("1000S,20C"), Limits(1000, 20))
        self.assertEqual(Limits.parse("20C"), Limits(0, 20))
        self.assertEqual(Limits.parse("0S"), Limits())
        self.assertEqual(Limits.parse("junk,5S"), Limits(5, 0))
        self.assertEqual([Limits().line(), Limits(5).line(), Limits(0, 7).line()], ["0S", "5S", "7C"])

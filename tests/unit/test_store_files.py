"""store/files.py: the edit lock, the change stamp, the durable replace, the watched file."""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import sys
import textwrap

from store_harness import repo_root
from twisted.trial import unittest

from mailsrv.store import files
from mailsrv.store.files import FileStamp, WatchedFile, locked, read_text, replace_file


class LockTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "state")

    def try_lock(self) -> bool:
        """Whether another open file description could take the lock right now."""
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    def test_excludes_every_other_holder_until_released(self):
        with locked(self.path):
            self.assertFalse(self.try_lock())
        self.assertTrue(self.try_lock())

    def test_released_when_the_body_raises(self):
        with self.assertRaises(ZeroDivisionError):
            with locked(self.path):
                1 / 0
        self.assertTrue(self.try_lock())

    def test_lock_file_is_beside_the_data_not_the_data(self):
        with locked(self.path):
            pass
        self.assertTrue(os.path.exists(self.path + ".lock"))
        self.assertFalse(os.path.exists(self.path))


class StampTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "f")

    def test_missing_file_has_no_stamp(self):
        self.assertIsNone(FileStamp.of(self.path))

    def test_replacement_in_the_same_mtime_tick_is_seen(self):
        replace_file(self.path, b"0 $Junk\n")
        before = FileStamp.of(self.path)
        replace_file(self.path, b"0 $Work\n")  # same size
        os.utime(self.path, ns=(before.mtime_ns, before.mtime_ns))  # and, as far as mtime says, the same tick
        after = FileStamp.of(self.path)
        self.assertEqual((after.size, after.mtime_ns), (before.size, before.mtime_ns))
        self.assertNotEqual(after, before)

    def test_append_is_seen(self):
        with open(self.path, "wb") as f:
            f.write(b"a\n")
        before = FileStamp.of(self.path)
        with open(self.path, "ab") as f:
            f.write(b"b\n")
        os.utime(self.path, ns=(before.mtime_ns, before.mtime_ns))
        self.assertNotEqual(FileStamp.of(self.path), before)


class ReplaceFileTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "mailsrv-uidlist")
        replace_file(self.path, b"old\n")

    def entries(self) -> list[str]:
        return sorted(os.listdir(self.dir))

    def test_replaces_content_and_keeps_mode(self):
        os.chmod(self.path, 0o640)
        replace_file(self.path, b"new\n")
        self.assertEqual(read_text(self.path), "new\n")
        self.assertEqual(os.stat(self.path).st_mode & 0o777, 0o640)
        self.assertEqual(self.entries(), ["mailsrv-uidlist"])

    def test_new_file_gets_the_default_mode(self):
        other = os.path.join(self.dir, "subscriptions")
        replace_file(other, b"INBOX\n", default_mode=0o600)
        self.assertEqual(os.stat(other).st_mode & 0o777, 0o600)

    def test_failure_while_writing_leaves_old_content_and_no_temp_file(self):
        def broken_fsync(fd: int) -> None:
            raise OSError(errno.EIO, "I/O error")

        self.patch(files.os, "fsync", broken_fsync)
        self.assertRaises(OSError, replace_file, self.path, b"torn\n" * 1000)
        self.assertEqual(read_text(self.path), "old\n")
        self.assertEqual(self.entries(), ["mailsrv-uidlist"])

    def test_failure_before_the_rename_leaves_old_content_and_no_temp_file(self):
        def broken_replace(src: str, dst: str) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        self.patch(files.os, "replace", broken_replace)
        self.assertRaises(OSError, replace_file, self.path, b"new\n")
        self.assertEqual(read_text(self.path), "old\n")
        self.assertEqual(self.entries(), ["mailsrv-uidlist"])

    def test_process_killed_before_the_rename_leaves_old_content(self):
        """A real crash (SIGKILL) just before the rename: readers still see the old file whole.

        The temp file stays behind as a dot file; nothing reads those.
        """
        child = textwrap.dedent(
            """
            import os, signal, sys
            from mailsrv.store import files
            files.os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
            files.replace_file(sys.argv[1], b"new content that never lands\\n" * 1000)
            """
        )
        result = subprocess.run([sys.executable, "-c", child, os.path.abspath(self.path)], cwd=repo_root(), check=False)
        self.assertEqual(result.returncode, -9)
        self.assertEqual(read_text(self.path), "old\n")
        self.assertEqual([e for e in self.entries() if not e.startswith(".")], ["mailsrv-uidlist"])
        replace_file(self.path, b"next\n")
        self.assertEqual(read_text(self.path), "next\n")


class WatchedFileTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.path = os.path.join(self.dir, "users")
        self.parses = 0

    def parse(self, text: str, path: str) -> list[str]:
        self.parses += 1
        return text.split()

    def test_missing_file_is_empty_and_reparsed_only_on_change(self):
        watched = WatchedFile(self.path, self.parse)
        self.assertEqual(watched.get(), [])
        replace_file(self.path, b"alice bob\n")
        self.assertEqual(watched.get(), ["alice", "bob"])
        parses = self.parses
        self.assertEqual(watched.get(), ["alice", "bob"])
        self.assertEqual(self.parses, parses)

    def test_same_tick_replacement_is_reparsed(self):
        replace_file(self.path, b"alice\n")
        watched = WatchedFile(self.path, self.parse)
        self.assertEqual(watched.get(), ["alice"])
        mtime = os.stat(self.path).st_mtime_ns
        replace_file(self.path, b"carol\n")
        os.utime(self.path, ns=(mtime, mtime))
        self.assertEqual(watched.get(), ["carol"])


def test_unique_names_name_the_process_also_after_a_fork():
    """twistd forks to daemonize after importing the store: the child's names carry its own pid."""
    from mailsrv.store import maildir

    assert f"P{os.getpid()}Q" in maildir.unique_name(1, 1)
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child's coverage is not collected)
        try:
            os.write(write, maildir.unique_name(1, 1).encode())
        finally:
            os._exit(0)
    os.close(write)
    name = os.read(read, 1000).decode()
    os.close(read)
    os.waitpid(child, 0)
    assert f"P{child}Q" in name

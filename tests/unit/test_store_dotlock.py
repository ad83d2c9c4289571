"""store/dotlock.py: Dovecot's dot-lock, taken and recognised by its rules."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from twisted.trial import unittest

from mailsrv.store import dotlock
from mailsrv.store.dotlock import dotlocked
from mailsrv.store.errors import LockTimeout


def dead_pid() -> int:
    """The pid of a process that has exited."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class DotLockTests(unittest.SynchronousTestCase):
    def setUp(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "dovecot-uidlist")
        self.lock = self.path + ".lock"
        self.patch(dotlock, "POLL_INTERVAL", 0.01)

    def hold(self, content: str, age: float = 0.0) -> None:
        """A lock file another writer left, *age* seconds old (a new inode, in place of any before)."""
        with open(self.lock + ".new", "w") as f:
            f.write(content)
        then = time.time() - age
        os.utime(self.lock + ".new", (then, then))
        os.replace(self.lock + ".new", self.lock)

    def test_lock_file_holds_pid_and_host_and_goes_away(self):
        with dotlocked(self.path, 120):
            with open(self.lock) as f:
                self.assertEqual(f.read(), f"{os.getpid()}:{socket.gethostname()}")
        self.assertFalse(os.path.exists(self.lock))

    def test_released_when_the_body_raises(self):
        with self.assertRaises(ZeroDivisionError):
            with dotlocked(self.path, 120):
                1 / 0
        self.assertFalse(os.path.exists(self.lock))

    def test_a_live_holder_is_waited_for(self):
        self.hold(f"{os.getpid()}:{socket.gethostname()}", age=10)
        with self.assertRaises(LockTimeout):
            with dotlocked(self.path, 120, timeout=0.05):
                self.fail("took a lock a live process holds")
        self.assertTrue(os.path.exists(self.lock))

    def test_a_dead_holder_on_this_host_is_overridden(self):
        self.hold(f"{dead_pid()}:{socket.gethostname()}", age=10)
        with dotlocked(self.path, 120, timeout=0.05):
            with open(self.lock) as f:
                self.assertTrue(f.read().startswith(f"{os.getpid()}:"))

    def test_a_fresh_lock_is_not_judged_by_its_pid(self):
        self.hold(f"{dead_pid()}:{socket.gethostname()}")  # its writer may still be starting
        with self.assertRaises(LockTimeout):
            with dotlocked(self.path, 120, timeout=0.05):
                pass

    def test_another_hosts_lock_is_stale_only_after_the_timeout(self):
        self.hold("1:elsewhere.example", age=60)
        with self.assertRaises(LockTimeout):
            with dotlocked(self.path, 120, timeout=0.05):
                pass
        self.hold("1:elsewhere.example", age=121)
        with dotlocked(self.path, 120, timeout=0.05):
            pass

    def test_a_lock_replaced_by_another_writer_is_left_to_it(self):
        with dotlocked(self.path, 120):
            self.hold("1:elsewhere.example")  # it judged ours stale
        self.assertTrue(os.path.exists(self.lock))

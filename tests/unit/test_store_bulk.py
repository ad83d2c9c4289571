"""The collector pause around bulk builds: off inside, back on after, shared by threads."""

from __future__ import annotations

import gc
import threading
import unittest

from mailsrv.store.bulk import collector_paused


class CollectorPausedTests(unittest.TestCase):
    def tearDown(self) -> None:
        gc.enable()

    def test_off_inside_and_on_again_after_even_on_error(self):
        with collector_paused():
            self.assertFalse(gc.isenabled())
        self.assertTrue(gc.isenabled())
        with self.assertRaises(KeyError), collector_paused():
            raise KeyError("x")
        self.assertTrue(gc.isenabled())

    def test_overlapping_threads_turn_it_on_only_when_the_last_is_done(self):
        inside, release, done = threading.Event(), threading.Event(), threading.Event()

        def other() -> None:
            with collector_paused():
                inside.set()
                release.wait(10)
            done.set()

        with collector_paused():
            thread = threading.Thread(target=other)
            thread.start()
            self.assertTrue(inside.wait(10))
        self.assertFalse(gc.isenabled())  # the other thread is still building
        release.set()
        self.assertTrue(done.wait(10))
        thread.join(10)
        self.assertTrue(gc.isenabled())

    def test_a_collector_turned_off_by_someone_else_stays_off(self):
        gc.disable()
        with collector_paused():
            pass
        self.assertFalse(gc.isenabled())

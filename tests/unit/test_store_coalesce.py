"""Coalescing runs: callers share runs, "soon" runs wait to batch, urgent ones do not."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from mailsrv.store.coalesce import Coalescing


class Job:
    """A job whose runs the test finishes by hand."""

    def __init__(self) -> None:
        self.runs: list[Deferred[None]] = []

    def __call__(self) -> "Deferred[None]":
        d: Deferred[None] = Deferred()
        self.runs.append(d)
        return d


class CoalescingTests(TestCase):
    def setUp(self) -> None:
        self.job = Job()
        self.clock = Clock()
        self.jobs = Coalescing(self.job, self.clock, delay=0.02)

    def test_callers_during_a_run_share_the_next(self) -> None:
        first = self.jobs.run()
        second, third = self.jobs.run(), self.jobs.run()
        self.assertEqual(len(self.job.runs), 1)
        self.job.runs[0].callback(None)
        self.assertEqual(self.successResultOf(first), None)
        self.assertNoResult(second)
        self.assertEqual(len(self.job.runs), 2)  # one run for both
        self.job.runs[1].callback(None)
        self.successResultOf(second)
        self.successResultOf(third)

    def test_soon_runs_wait_and_batch(self) -> None:
        waiting = [self.jobs.run(soon=True) for _ in range(3)]
        self.assertEqual(self.job.runs, [])
        self.clock.advance(0.019)
        self.assertEqual(self.job.runs, [])
        self.clock.advance(0.001)
        self.assertEqual(len(self.job.runs), 1)
        self.job.runs[0].callback(None)
        for d in waiting:
            self.successResultOf(d)

    def test_an_urgent_caller_starts_a_waiting_run_at_once(self) -> None:
        soon = self.jobs.run(soon=True)
        now = self.jobs.run()
        self.assertEqual(len(self.job.runs), 1)
        self.job.runs[0].callback(None)
        self.successResultOf(soon)
        self.successResultOf(now)
        self.clock.advance(1)  # the cancelled timer starts nothing
        self.assertEqual(len(self.job.runs), 1)

    def test_soon_callers_during_a_run_wait_after_it(self) -> None:
        self.jobs.run()
        later = self.jobs.run(soon=True)
        self.job.runs[0].callback(None)
        self.assertEqual(len(self.job.runs), 1)
        self.clock.advance(0.02)
        self.assertEqual(len(self.job.runs), 2)
        self.job.runs[1].callback(None)
        self.successResultOf(later)

    def test_a_failure_reaches_every_caller_of_that_run(self) -> None:
        a, b = self.jobs.run(), self.jobs.run()
        self.job.runs[0].errback(OSError("disk"))
        self.failureResultOf(a, OSError)
        self.job.runs[1].errback(OSError("again"))
        self.failureResultOf(b, OSError)

    def test_without_a_clock_soon_runs_start_at_once(self) -> None:
        jobs = Coalescing(self.job)
        jobs.run(soon=True)
        self.assertEqual(len(self.job.runs), 1)

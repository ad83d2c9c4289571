"""One job at a time, and every caller that arrives meanwhile shares the next run.

Two store operations have this shape: a folder rescan (ten sessions asking
for a sync at once need one directory listing, not ten) and the UID group
commit (every delivery that arrives while one ``fdatasync`` runs is written
by the next one).  A caller that arrives while a run is in progress cannot
share *that* run, which may have read the disk before the caller's change;
it waits for the next run, which starts after the current one ends.

A caller that is not waiting for the result itself (a delivery: SMTP's 250
does not depend on the UID) may ask for a run *soon* rather than now: the
run then starts after a short delay, so that more callers share it and the
disk sees fewer commits.  Any caller asking for a run now starts it at once.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure


class Coalescing:
    """Runs *job* (which may return a Deferred) for callers, coalescing them.

    The job reads whatever work accumulated by the time it starts; callers
    queue work before calling :meth:`run`.  Runs for each of them share the
    job's result or failure.  With a *clock*, runs asked for *soon* wait
    *delay* seconds first (without one, every run starts at once).
    """

    def __init__(self, job: Callable[[], Any], clock: IReactorTime | None = None, delay: float = 0.0) -> None:
        self._job = job
        self._clock = clock
        self._delay = delay
        self._running = False
        self._waiting: list[Deferred[None]] = []
        self._urgent = False  # a waiting caller wants the run now
        self._timer: IDelayedCall | None = None

    def run(self, soon: bool = False) -> "Deferred[None]":
        """A Deferred firing after a run that started after this call."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        self._urgent = self._urgent or not soon
        if not self._running:
            self._start_when_due()
        return d

    def _start_when_due(self) -> None:
        if self._urgent or self._clock is None or not self._delay:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._start()
        elif self._timer is None:
            self._timer = self._clock.callLater(self._delay, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if not self._running:
            self._start()

    def _start(self) -> None:
        waiters, self._waiting = self._waiting, []
        self._urgent = False
        self._running = True
        maybeDeferred(self._job).addBoth(self._finished, waiters)

    def _finished(self, result: object, waiters: list[Deferred[None]]) -> None:
        self._running = False
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(None)
        if self._waiting and not self._running:
            self._start_when_due()

"""One job at a time, and every caller that arrives meanwhile shares the next run.

Two store operations have this shape: a folder rescan (ten sessions asking
for a sync at once need one directory listing, not ten) and the UID group
commit (every delivery that arrives while one ``fdatasync`` runs is written
by the next one).  A caller that arrives while a run is in progress cannot
share *that* run, which may have read the disk before the caller's change;
it waits for the next run, which starts after the current one ends.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure


class Coalescing:
    """Runs *job* (which may return a Deferred) for callers, coalescing them.

    The job reads whatever work accumulated by the time it starts; callers
    queue work before calling :meth:`run`.  Runs for each of them share the
    job's result or failure.
    """

    def __init__(self, job: Callable[[], Any]) -> None:
        self._job = job
        self._running = False
        self._waiting: list[Deferred[None]] = []

    def run(self) -> "Deferred[None]":
        """A Deferred firing after a run that started after this call."""
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        if not self._running:
            self._start()
        return d

    def _start(self) -> None:
        waiters, self._waiting = self._waiting, []
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
            self._start()

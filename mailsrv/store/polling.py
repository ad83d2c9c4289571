"""Polling a folder's directories for changes, where inotify is not to be had (see :mod:`.watch`).

Two ``stat`` calls per reading, in the disk pool: the reactor thread never
waits on a slow (network) file system for them.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from twisted.logger import Logger

from mailsrv.store.folder import TRUST_AFTER_NS
from mailsrv.store.scan import DirStamps

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from mailsrv.store.watch import Changes
    from mailsrv.workers import Executor

log = Logger()


def cancel(timer: "IDelayedCall | None") -> None:
    """Cancel *timer* unless there is none."""
    if timer is not None:
        timer.cancel()


def _stamps(folder_path: str) -> DirStamps | None:
    """The stamps of ``new/`` and ``cur/``; None once the folder is gone (blocking)."""
    try:
        return DirStamps.of(folder_path)
    except FileNotFoundError:
        return None


class Polling:
    """Reads a folder's directory stamps in the disk pool every *interval* seconds; a change means a sync.

    Every reading up to *interval* past the moment the newest stamp can be
    trusted (:data:`~.folder.TRUST_AFTER_NS`) asks for a sync even when
    nothing moved, as does the first: a second change within one timestamp
    tick leaves the stamps as they were, and the folder's sync knows when
    to list again (it costs two ``stat`` calls when it does not).
    """

    def __init__(
        self, changes: Changes, folder_path: str, executor: "Executor", clock: "IReactorTime", interval: float,
    ) -> None:
        self._changes = changes
        self._path = folder_path
        self._executor = executor
        self._clock = clock
        self._interval = interval
        self._last: DirStamps | None = None
        self._stopped = False
        self._timer: "IDelayedCall | None" = clock.callLater(interval, self._poll)

    def stop(self) -> None:
        """No more readings (one in the pool is ignored)."""
        self._stopped = True
        cancel(self._timer)
        self._timer = None

    def _poll(self) -> None:
        self._timer = None
        d = self._executor.run(_stamps, self._path)
        d.addCallback(self._read)
        d.addErrback(lambda f: log.failure("{folder}: polling for changes failed", f, folder=self._path))
        d.addCallback(self._again)

    def _read(self, stamps: DirStamps | None) -> bool:
        """Ask for a sync if *stamps* call for one; whether to go on polling."""
        if self._stopped:
            return False
        if stamps is None:  # the folder is gone: one sync says so
            self._changes.changed()
            return False
        settled_ns = stamps.newest_mtime_ns + TRUST_AFTER_NS + int(self._interval * 1e9)
        if stamps != self._last or time.time_ns() <= settled_ns:
            self._changes.changed()
        self._last = stamps
        return True

    def _again(self, go_on: bool | None) -> None:
        if go_on is not False and not self._stopped:  # None: the reading failed; try again
            self._timer = self._clock.callLater(self._interval, self._poll)

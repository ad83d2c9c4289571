"""The server as one twistd service: started, reloaded and stopped in order.

twistd starts it in two steps: ``privilegedStartService`` as root (the
listeners bind) and ``startService`` after dropping to ``--uid`` (the worker
threads, the signal handlers, the daily jobs), each under the
:class:`~mailsrv.startup.StartGuard`.  The order of the stop matters more
than ``MultiService``'s, which stops every child at once: first no new
connection is accepted, then the open sessions are closed with a goodbye
while the commands in progress (a message being received) finish within
``shutdown_grace``, and only then do the worker threads those commands
need stop.  The outbound queue starts after the pools (it resumes from the
disk) and stops after the sessions, waiting up to ``shutdown_grace`` for
its attempts in flight.

Signals: SIGHUP reloads (:mod:`mailsrv.reload`), SIGUSR1 rotates the log
file as twistd's own does, SIGTERM and SIGINT stop (twistd's reactor turns
them into the stop).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence
from typing import Any, Callable

from twisted.application.internet import TimerService
from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure

from mailsrv.context import ServerContext
from mailsrv.logfile import LogFile, TextObserver
from mailsrv.reload import Reloader
from mailsrv.startup import StartGuard
from mailsrv.workers import PoolExecutor

log = Logger()

#: How often the Maildir tmp/ directories are cleaned (and once at start).
TMP_CLEANUP_INTERVAL = 24 * 3600


class MailServer(Service):
    """Listeners, worker pools and daily jobs of one server, around one :class:`ServerContext`."""

    name = "mailsrv"

    def __init__(
        self, ctx: ServerContext, pools: Sequence[PoolExecutor], listeners: Sequence[Service],
        reloader: Reloader, startup: StartGuard, log_file: LogFile | None, reactor: Any,
        queue: Service | None = None, log_to_stdout: bool = False, jobs: Sequence[Service] = (),
    ) -> None:
        self.ctx = ctx
        self.queue = queue
        #: Run beside the listeners (the ACME certificates): started after them, stopped first.
        self.jobs = list(jobs)
        self.pools = list(pools)
        self.listeners = list(listeners)
        self.reloader = reloader
        self.startup = startup
        self.log_file = log_file
        self.log_to_stdout = log_to_stdout
        self.reactor = reactor
        self.clock: IReactorTime = reactor
        self.tmp_cleanup = TimerService(TMP_CLEANUP_INTERVAL, self._remove_stale_tmp)
        self.tmp_cleanup.clock = reactor
        self._reloading = False
        self._old_handlers: dict[int, Any] = {}

    def setServiceParent(self, parent: Any) -> None:
        """Join twistd's application, and make it log to our :class:`~mailsrv.logfile.LogFile`
        (or to standard output, where twistd would) through :class:`~mailsrv.logfile.TextObserver`.

        twistd prefers the application's ``ILogObserver`` component to the
        observer it would make itself (``twisted.application.app.AppLogger.start``),
        and the application exists only now.
        """
        super().setServiceParent(parent)
        out = self.log_file if self.log_file is not None else sys.stdout if self.log_to_stdout else None
        if out is not None:
            parent.setComponent(ILogObserver, TextObserver(out, self.reactor))

    # -- start -----------------------------------------------------------------

    def privilegedStartService(self) -> None:
        """Bind every listener (as root); one that cannot ends the start with one line."""
        self.startup.arm()
        with self.startup.watch():
            super().privilegedStartService()
            for listener in self.listeners:
                listener.privilegedStartService()

    def startService(self) -> None:
        """Start the worker threads, the signal handlers and the daily jobs (after the ``--uid`` drop)."""
        with self.startup.watch():
            super().startService()
            for service in (*self.pools, *([self.queue] if self.queue else []), *self.listeners, *self.jobs):
                service.startService()
            self._handle(signal.SIGHUP, self.reload)
            if self.log_file is not None:
                self._handle(signal.SIGUSR1, self.log_file.rotate)
            self.tmp_cleanup.startService()
        self.startup.started()

    def _handle(self, signum: int, action: Callable[[], object]) -> None:
        """Run *action* on the reactor thread when *signum* arrives (restored at stop)."""
        self._old_handlers[signum] = signal.signal(signum, lambda *_: self.reactor.callFromThread(action))

    def _remove_stale_tmp(self) -> "Deferred[Any]":
        return self.ctx.store.remove_stale_tmp().addErrback(
            lambda failure: log.failure("cleaning Maildir tmp/ directories failed", failure)
        )

    # -- SIGHUP ----------------------------------------------------------------

    def reload(self) -> None:
        """Reload what can be reloaded (:mod:`mailsrv.reload`); a SIGHUP during a reload is ignored."""
        if self._reloading:
            log.info("SIGHUP: a reload is running; ignored")
            return
        self._reloading = True

        def done(result: object) -> None:
            self._reloading = False
            if isinstance(result, Failure):
                log.failure("SIGHUP: reload failed", result)

        Deferred.fromCoroutine(self.reloader.reload()).addBoth(done)

    # -- stop ------------------------------------------------------------------

    def stopService(self) -> "Deferred[None]":
        """Stop accepting, close the sessions (see the module docstring), then the jobs and threads."""
        super().stopService()
        for signum, handler in self._old_handlers.items():
            signal.signal(signum, handler)
        self._old_handlers.clear()
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        for job in self.jobs:
            await maybeDeferred(job.stopService)
        await gatherResults([maybeDeferred(listener.stopService) for listener in self.listeners])
        await self.ctx.sessions.close_all(self.ctx.config.shutdown_grace, self.clock)
        if self.queue is not None:  # after the sessions, which may still queue a message
            await maybeDeferred(self.queue.stopService)
        await maybeDeferred(self.tmp_cleanup.stopService)
        for pool in reversed(self.pools):
            pool.stopService()


"""Where blocking work runs: one small thread pool per kind of work.

The reactor thread must never wait on the disk or the CPU for long, so
fsyncs, directory scans, password hashing and SEARCH over message files run
in threads.  They run in *separate* pools because they compete badly: 48
password guesses hashing with argon2 (64 MiB and tens of milliseconds each)
in the pool that also fsyncs deliveries would hold every SMTP ``250`` back
behind them, and multiply memory by the pool size.  Each pool has its own
size and its own queue (:class:`Workers` names them).

Code that needs a pool takes an :class:`Executor`, never the global
``deferToThread``, so unit tests can pass :class:`InlineExecutor` and run
without a reactor (Twisted's test standard: no global reactor in unit
tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorThreads
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class Executor(Protocol):
    """Runs a blocking callable somewhere that is not the reactor thread."""

    #: Jobs queued or running.
    pending: int

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "defer.Deferred[T]":
        """Call ``fn(*args, **kwargs)``; the Deferred fires on the reactor thread with its result."""


class InlineExecutor:
    """Runs the callable at once, in the caller's thread (tests, CLI tools).

    The Deferred has already fired when :meth:`run` returns, so a unit test
    sees the effect without spinning a reactor.
    """

    pending = 0

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "defer.Deferred[T]":
        """Call *fn* now; failures become a failed Deferred, as in a thread."""
        return defer.maybeDeferred(fn, *args, **kwargs)


class PoolExecutor(Service):
    """A named ``ThreadPool`` of fixed size, started and stopped with the server.

    Jobs beyond the pool's size wait in the pool's own queue, so one kind of
    work can never take the threads of another.
    """

    def __init__(self, reactor: IReactorThreads, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=0, maxthreads=size, name=f"mailsrv-{name}")
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs queued or running (for limits and metrics)."""
        return self._pending

    def startService(self) -> None:
        """Start the threads (after twistd dropped privileges)."""
        super().startService()
        self._pool.start()

    def stopService(self) -> None:
        """Finish the running jobs and stop the threads."""
        super().stopService()
        self._pool.stop()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "defer.Deferred[T]":
        """Queue *fn* on this pool."""
        self._pending += 1
        d = threads.deferToThreadPool(self._reactor, self._pool, fn, *args, **kwargs)
        return d.addBoth(self._done)

    def _done(self, result: T) -> T:
        self._pending -= 1
        return result


@dataclass(frozen=True)
class Workers:
    """The server's pools, by the kind of work each one does."""

    #: fsync, directory scans and locked index updates of the store.
    disk: Executor
    #: password hashing (argon2: CPU and memory heavy, few threads).
    hashing: Executor
    #: SEARCH over message files.
    search: Executor

    @classmethod
    def inline(cls) -> "Workers":
        """Every kind of work run at once in the caller's thread (tests)."""
        inline = InlineExecutor()
        return cls(disk=inline, hashing=inline, search=inline)

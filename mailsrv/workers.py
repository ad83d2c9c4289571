"""Where blocking work runs: one small thread pool per kind of work.

The reactor thread must never wait on the disk or the CPU for long, so
fsyncs, directory scans, password hashing, SEARCH over message files, DNS
lookups and DKIM signatures run in threads.  They run in *separate* pools because they compete badly: 48
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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads, IReactorThreads
from twisted.python.failure import Failure

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
    """A named pool of at most *size* threads, started and stopped with the server.

    Jobs beyond the pool's size wait in the pool's own queue, so one kind of
    work can never take the threads of another.  The threads are the
    standard library's ``ThreadPoolExecutor``: a job costs one lock-free
    queue put and one wake-up, where Twisted's ``ThreadPool`` coordinates
    each job through two more locked hand-offs.  Under a delivery load that
    halved the futex calls per message (docs/internals.rst, ``mailsrv.workers``).
    """

    def __init__(self, reactor: IReactorThreads, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._reactor = reactor
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0

    @property
    def pending(self) -> int:
        """Jobs queued or running (for limits and metrics)."""
        return self._pending

    def startService(self) -> None:
        """Accept jobs (threads start on demand, after twistd dropped privileges)."""
        super().startService()
        self._pool = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix=f"mailsrv-{self.name}")

    def stopService(self) -> None:
        """Finish the queued and running jobs, then let the threads end."""
        super().stopService()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "defer.Deferred[T]":
        """Queue *fn* on this pool."""
        if self._pool is None:
            return defer.fail(RuntimeError(f"the {self.name} pool is not running"))
        d: defer.Deferred[T] = defer.Deferred()
        self._pending += 1
        self._pool.submit(self._call, d, fn, args, kwargs)
        return d.addBoth(self._done)

    def _call(self, d: "defer.Deferred[T]", fn: Callable[..., T], args: tuple, kwargs: dict) -> None:
        hand_back(self._reactor, d, fn, args, kwargs)

    def _done(self, result: T) -> T:
        self._pending -= 1
        return result


def hand_back(reactor: IReactorFromThreads, d: "defer.Deferred[T]", fn: Callable[..., T], args: tuple,
              kwargs: dict) -> None:
    """In a worker thread: run the job, hand its result or failure to *d* on the reactor thread."""
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        reactor.callFromThread(d.errback, Failure())
    else:
        reactor.callFromThread(d.callback, result)


@dataclass(frozen=True)
class Workers:
    """The server's pools, by the kind of work each one does."""

    #: fsync, directory scans and locked index updates of the store.
    disk: Executor
    #: password hashing (argon2: CPU and memory heavy, few threads).
    hashing: Executor
    #: SEARCH over message files.
    search: Executor
    #: DNS lookups (dnspython blocks; a lookup waits on the network, not the CPU).
    dns: Executor
    #: DKIM signatures (CPU, and a whole message in memory each).
    signing: Executor

    @classmethod
    def inline(cls) -> "Workers":
        """Every kind of work run at once in the caller's thread (tests)."""
        inline = InlineExecutor()
        return cls(disk=inline, hashing=inline, search=inline, dns=inline, signing=inline)

"""The worker pools: results and failures come back on the reactor thread, the size is a bound."""

from __future__ import annotations

import queue
import threading

import pytest

from mailsrv.workers import PoolExecutor


class ThreadsReactor:
    """``callFromThread`` only: calls queue up until the test thread runs them (it plays the reactor)."""

    def __init__(self) -> None:
        self.calls: queue.SimpleQueue = queue.SimpleQueue()

    def callFromThread(self, f, *args, **kwargs) -> None:
        self.calls.put((f, args, kwargs))

    def run_one(self) -> None:
        f, args, kwargs = self.calls.get(timeout=10)
        f(*args, **kwargs)


@pytest.fixture
def pool():
    reactor = ThreadsReactor()
    executor = PoolExecutor(reactor, "test", 2)
    executor.startService()
    yield reactor, executor
    executor.stopService()


def test_result_fires_on_the_reactor_thread(pool):
    reactor, executor = pool
    ran_in = []
    d = executor.run(lambda a, b=0: ran_in.append(threading.get_ident()) or a + b, 2, b=3)
    results = []
    d.addCallback(results.append)
    assert executor.pending == 1
    reactor.run_one()
    assert results == [5]
    assert ran_in[0] != threading.get_ident()
    assert executor.pending == 0


def test_failure_keeps_the_exception(pool):
    reactor, executor = pool

    def boom():
        raise FileNotFoundError("gone")

    failures = []
    executor.run(boom).addErrback(failures.append)
    reactor.run_one()
    assert failures[0].check(FileNotFoundError)
    assert executor.pending == 0


def test_jobs_beyond_the_size_wait_for_a_thread(pool):
    reactor, executor = pool
    release = threading.Event()
    running = []
    lock = threading.Lock()

    def job(n):
        with lock:
            running.append(n)
        release.wait(10)
        return n

    for n in range(3):
        executor.run(job, n)
    deadline = threading.Event()
    for _ in range(100):
        with lock:
            if len(running) == 2:
                break
        deadline.wait(0.01)
    with lock:
        assert len(running) == 2  # the third job is queued, not running
    assert executor.pending == 3
    release.set()
    for _ in range(3):
        reactor.run_one()
    assert sorted(running) == [0, 1, 2]
    assert executor.pending == 0


def test_a_stopped_pool_refuses_jobs():
    executor = PoolExecutor(ThreadsReactor(), "test", 1)
    failures = []
    executor.run(lambda: None).addErrback(failures.append)
    assert failures[0].check(RuntimeError)

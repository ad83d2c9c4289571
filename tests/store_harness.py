"""Shared fixture for the store tests (no tests of its own).

A :class:`~mailsrv.store.Store` in a temp dir whose disk work runs inline,
so a Deferred it returns has fired by the time the call returns and no test
touches the reactor; :class:`ManualExecutor` for tests that must see what
happens *between* a job's submission and its end (group commit, races).
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import defer
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from mailsrv.message.body import Body
from mailsrv.store import IFolderListener, Store, Target
from mailsrv.workers import InlineExecutor

ALICE = "alice@example.test"
BOB = "bob@example.test"
MSG = b"From: a@example.test\r\nSubject: hi\r\n\r\nline one\r\n.dot line\r\n"


@implementer(IFolderListener)
class Recorder:
    """Every announcement a folder makes, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def messages_added(self, folder: Any, infos: Any) -> None:
        self.events.append(("added", [i.uid for i in infos]))

    def flags_changed(self, folder: Any, infos: Any) -> None:
        self.events.append(("flags", [(i.uid, sorted(i.flags)) for i in infos]))

    def messages_expunged(self, folder: Any, uids: Any) -> None:
        self.events.append(("expunged", list(uids)))

    def folder_deleted(self, folder: Any) -> None:
        self.events.append(("deleted", folder.name))


class ManualExecutor:
    """Queues jobs; the test runs them (in its own thread) when it chooses."""

    def __init__(self) -> None:
        self.jobs: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], defer.Deferred[Any]]] = []
        self.ran: list[str] = []

    @property
    def pending(self) -> int:
        return len(self.jobs)

    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred[Any]:
        d: defer.Deferred[Any] = defer.Deferred()
        self.jobs.append((fn, args, kwargs, d))
        return d

    def run_next(self, between: Callable[[], object] | None = None) -> str:
        """Run the oldest job; its function's name.

        *between* runs after the job did its work and before its Deferred
        fires: a change the job's view of the disk cannot include.
        """
        fn, args, kwargs, d = self.jobs.pop(0)
        self.ran.append(fn.__name__)
        try:
            result = fn(*args, **kwargs)
        except BaseException:
            result = Failure()
        if between is not None:
            between()
        if isinstance(result, Failure):
            d.errback(result)
        else:
            d.callback(result)
        return fn.__name__

    def run_all(self) -> None:
        """Run jobs until none is left (jobs may queue more)."""
        while self.jobs:
            self.run_next()


class StoreTestCase(unittest.SynchronousTestCase):
    """A store under a temp dir, run inline."""

    def setUp(self) -> None:
        self.root = self.mktemp()
        self.store = Store(self.root, InlineExecutor())

    def done(self, d: defer.Deferred[Any]) -> Any:
        """The result of an inline store call."""
        return self.successResultOf(d)

    def failed(self, d: defer.Deferred[Any], *errors: type[BaseException]) -> BaseException:
        """The error an inline store call failed with (one of *errors*)."""
        return self.failureResultOf(d, *errors).value

    def manual(self) -> tuple[ManualExecutor, Any]:
        """alice's INBOX opened through a store whose jobs the test runs."""
        executor = ManualExecutor()
        store = Store(self.root, executor)
        opened = store.user(ALICE).open("INBOX")
        executor.run_all()
        self.manual_store = store
        return executor, self.successResultOf(opened)

    def folder(self, name: str = "INBOX", address: str = ALICE, store: Store | None = None) -> Any:
        return self.done((store or self.store).user(address).open(name))

    def deliver(self, *addresses: str, data: bytes = MSG, store: Store | None = None) -> str:
        """Deliver *data* to the INBOX of each address (alice by default); the base name."""
        targets = [Target(a) for a in addresses or (ALICE,)]
        return self.done((store or self.store).deliver(targets, Body.from_wire(data)))

    def maildir(self, address: str = ALICE) -> str:
        local, _, domain = address.partition("@")
        return os.path.join(self.root, domain, local)

    def files(self, sub: str, address: str = ALICE, folder: str = "") -> list[str]:
        return sorted(os.listdir(os.path.join(self.maildir(address), folder, sub)))


def repo_root() -> str:
    """Where ``mailsrv`` imports from, for a child interpreter."""
    import mailsrv

    return os.path.dirname(os.path.dirname(os.path.abspath(mailsrv.__file__)))


def age_directories(path: str, seconds: int = 3600) -> None:
    """Set the mtime of ``new/`` and ``cur/`` an hour back.

    A test that changes a folder behind the store's back right after the
    store listed it may do so within one timestamp tick, which leaves the
    mtime as it was (that is what the trust window is for).  Aged
    directories make the change move the mtime for certain.
    """
    for sub in ("new", "cur"):
        st = os.stat(os.path.join(path, sub))
        past = st.st_mtime_ns - seconds * 1_000_000_000
        os.utime(os.path.join(path, sub), ns=(past, past))

"""Fixtures the protocol tests share: alice's fake password check, the
:class:`ServerContext` builder, TCP string transports, and real TLS listeners
on loopback.

A plain module, not a test file: the SMTP, POP3 and IMAP test modules import
from it (and ``conftest.py`` offers the same as fixtures) so that one copy of
each fake serves them all.  Everything runs without the global reactor: the
store's disk work, hashing and SEARCH go through inline executors.
"""

from __future__ import annotations

import itertools
import re
import ssl
from typing import Any, Callable

import dkim
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer, reactor, task
from twisted.internet.interfaces import IListeningPort, ITCPTransport
from twisted.internet.protocol import ServerFactory
from twisted.internet.testing import StringTransport
from twisted.protocols.policies import WrappingFactory
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest
from zope.interface import implementer

from mailsrv import config as configuration, tls
from mailsrv.accounts.cred import Realm
from mailsrv.accounts.directory import RECHECK_AFTER, Directory
from mailsrv.context import ServerContext
from mailsrv.delivery.srs import Rewriter
from mailsrv.tap import assemble

#: The SRS secret of every test context, so that tests can make valid SRS addresses.
TEST_SRS_SECRET = b"test srs secret"
from mailsrv.net.login import IUser, User
from mailsrv.store import Store
from mailsrv.workers import InlineExecutor, Workers

ALICE = "alice@example.test"
PASSWORD = b"correct horse"


@implementer(ICredentialsChecker)
class FakeChecker:
    """alice's password only; answers later when given a clock, as hashing does."""

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self) -> None:
        self.clock: task.Clock | None = None

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[str]:
        if credentials.username == ALICE.encode() and credentials.checkPassword(PASSWORD):
            result = defer.succeed(ALICE)
        else:
            result = defer.fail(UnauthorizedLogin())
        if self.clock is None:
            return result
        return task.deferLater(self.clock, 1, lambda: result)


def make_context(
    config: configuration.Config, *, store: Any = None, directory: Any = None, checker: Any = None,
    tls_options: Any = None, resolver: Any = None, clock: Any = None,
) -> ServerContext:
    """A context wired as tap.py wires it: real store (in ``config.mail_dir``) and directory
    (``config.users_file``) unless given, fake checker, inline workers, the config's connection limits;
    with a *resolver*, port 25 authenticates senders (inline: the name server must answer from another thread)."""
    workers = Workers.inline()
    return assemble(
        config,
        store=store if store is not None else Store(config.mail_dir, workers.disk),
        directory=directory if directory is not None else Directory(config),
        portal=Portal(Realm({IUser: User}), [checker if checker is not None else FakeChecker()]),
        tls=tls_options if tls_options is not None else FakeTLS(),
        workers=workers,
        srs=Rewriter(TEST_SRS_SECRET, config.domains),
        resolver=resolver,
        clock=clock,
    )


def audit_events(events: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    """The audit log events of one kind (``login``, ``transaction``, ...) among *events*."""
    return [e for e in events if e.get("log_namespace") == "mailsrv.audit" and e.get("event") == event]


@implementer(ITCPTransport)
class TCPStringTransport(StringTransport):
    """A StringTransport that, like every accepted connection, is TCP."""

    nodelay = False

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay = enabled


class FakeTLS:
    """Stands in for CertificateOptions on iosim's pretend-TLS transport."""

    def iosimVerify(self, other: Any) -> bool:
        return True


def listen_loopback(case: unittest.TestCase, factory: ServerFactory, implicit_tls: object | None = None) -> int:
    """Serve *factory* on a free 127.0.0.1 port; returns the port.

    With *implicit_tls* (server options) the listener speaks TLS from the first
    byte, as ``pop3s`` and ``submissions`` do.  The port closes at *case*'s
    cleanup, once the server has seen every client's close.
    """
    # The wrapper also stands in for haproxy:, whose transport wrapper
    # never starts providing ISSLTransport after STARTTLS or STLS.
    tracker = WrappingFactory(factory)
    outer = tracker if implicit_tls is None else TLSMemoryBIOFactory(implicit_tls, False, tracker)
    port = reactor.listenTCP(0, outer, interface="127.0.0.1")
    case.addCleanup(_stop, port, tracker)
    return port.getHost().port


async def _stop(port: IListeningPort, tracker: WrappingFactory) -> None:
    await port.stopListening()
    while tracker.protocols:  # let the server see the client's close
        await task.deferLater(reactor, 0.01, lambda: None)


def client_context(config: configuration.Config) -> ssl.SSLContext:
    """A client context that trusts the certificate the server of *config* presents."""
    cert, _ = tls.certificate_files(config)
    return ssl.create_default_context(cafile=cert)


def dkim_verifies(message: bytes, *records: str) -> bool:
    """Whether dkimpy verifies *message*'s (first) DKIM-Signature against the zone-file *records*.

    *records* are lines as ``mailsrv dkim keygen`` prints them; dkimpy asks
    this function instead of the network (RFC 6376 3.6.2.2: the quoted
    strings of a TXT record are concatenated).
    """
    zone = {}
    for record in records:
        name, _, value = record.partition(" IN TXT ")
        zone[name.encode("ascii")] = "".join(re.findall(r'"([^"]*)"', value)).encode("ascii")
    return dkim.verify(message, dnsfunc=lambda name, timeout=5: zone.get(name))


class CountingExecutor(InlineExecutor):
    """Runs jobs at once, counting them."""

    def __init__(self) -> None:
        self.jobs = 0

    def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.jobs += 1
        return super().run(fn, *args, **kwargs)


def every_look_fresh() -> Callable[[], float]:
    """A clock for :class:`Directory` on which each lookup comes after the recheck period: the files as they are now."""
    return itertools.count(step=RECHECK_AFTER).__next__


class SystemClock(task.Clock):
    """A clock with the reactor's ``running`` flag (set it) and system event triggers, kept in :attr:`triggers`."""

    running = True

    def __init__(self) -> None:
        super().__init__()
        self.triggers: list[tuple[str, str, Any]] = []

    def addSystemEventTrigger(self, phase: str, event: str, call: Any) -> None:  # noqa: N802 - Twisted's name
        self.triggers.append((phase, event, call))

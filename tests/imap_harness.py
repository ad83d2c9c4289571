"""Shared fixture for the IMAP protocol tests (no tests of its own).

A real :class:`~mailsrv.store.Store` in a temp dir, the real realm with a
checker that knows alice, and :class:`Session`: one ``IMAPServer`` on a
``StringTransport`` that a test talks to line by line, as in the RFC 3501
example sessions.

The store runs its disk work inline (``InlineExecutor``), so every command
is answered before ``dataReceived`` returns and no test spins the reactor.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import Portal
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.mail import imap4
from twisted.python.failure import Failure
from twisted.trial import unittest
from zope.interface import implementer

from mailsrv import config as configuration
from mailsrv.accounts.cred import Realm
from mailsrv.context import ServerContext
from mailsrv.imap.server import IMAPServer, account_factory
from mailsrv.message.body import Body
from mailsrv.store import Store, Target
from mailsrv.workers import InlineExecutor
from support import FakeTLS

ALICE = "alice@example.test"
PASSWORD = b"secret"
LOOPBACK = IPv4Address("TCP", "127.0.0.1", 40000)
REMOTE = IPv4Address("TCP", "192.0.2.7", 40000)


@implementer(ICredentialsChecker)
class AliceChecker:
    """alice / secret, nobody else (hashing is tested with the accounts)."""

    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials: Any) -> defer.Deferred[str]:
        if credentials.username == ALICE.encode() and credentials.checkPassword(PASSWORD):
            return defer.succeed(ALICE)
        return defer.fail(UnauthorizedLogin())


def run_now(steps: Any) -> defer.Deferred[None]:
    """A FETCH scheduler that runs every step at once, for in-memory tests.

    With the inline store every Deferred a step yields has already fired;
    one that has not would mean the test depends on a reactor.
    """
    for step in steps:
        if isinstance(step, defer.Deferred) and not step.called:
            raise AssertionError("a FETCH step waits for a Deferred that has not fired")
    return defer.succeed(None)


class Session:
    """One client connection to an in-memory IMAP server."""

    def __init__(self, ctx: ServerContext, peer: IPv4Address, transport: Any = None) -> None:
        self.clock = task.Clock()
        self.transport = transport or StringTransport(peerAddress=peer)
        self.server = IMAPServer(ctx, implicit_tls=False, scheduler=run_now)
        self.server.callLater = self.clock.callLater  # timeouts, IDLE polling
        self.server.makeConnection(self.transport)

    def received(self) -> bytes:
        """Everything the server wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return data

    def send(self, data: bytes) -> bytes:
        """Send raw bytes; the server's immediate answer."""
        self.server.dataReceived(data)
        return self.received()

    async def command(self, line: bytes) -> bytes:
        """Send one tagged command and wait for its tagged completion."""
        tag = line.split(b" ", 1)[0]
        self.server.dataReceived(line + b"\r\n")
        return await self.wait_for(tag)

    async def wait_for(self, tag: bytes) -> bytes:
        """Everything sent since the last call, which must end with the tagged OK/NO/BAD for *tag*."""
        pattern = re.compile(rb"(?:\A|\r\n)" + re.escape(tag) + rb" (?:OK|NO|BAD)[^\r]*\r\n\Z")
        data = self.received()
        if not pattern.search(data):
            raise AssertionError(f"no tagged reply for {tag!r}; got {data!r}")
        return data

    def close(self) -> None:
        self.server.connectionLost(Failure(ConnectionError("test over")))


class IMAPTestCase(unittest.TestCase):
    """alice's store and a way to open logged-in or fresh sessions."""

    def setUp(self) -> None:
        data_dir = self.mktemp()
        config = configuration.Config(
            data_dir=data_dir,
            auth=configuration.AuthConfig(allow_plaintext_auth_on_loopback=True),
            limits=configuration.LimitsConfig(imap_max_line_length=64 * 1024, imap_max_literal_size=1024 * 1024),
        )
        self.store = Store(config.mail_dir, InlineExecutor())
        factories: dict[Any, Any] = {}
        self.ctx = ServerContext(
            config=config, store=self.store, directory=None, portal=Portal(Realm(factories), [AliceChecker()]),
            tls=FakeTLS(),
        )
        factories[imap4.IAccount] = account_factory(self.ctx)
        self.inbox = self.folder("INBOX")

    def folder(self, name: str) -> Any:
        """alice's folder *name*, opened (the inline store has done so on return)."""
        return self.successResultOf(self.store.user(ALICE).open(name))

    def set_flags(self, uid: int, flags: set[str]) -> None:
        """Change flags in alice's INBOX as another session would."""
        self.successResultOf(self.inbox.store_flags([(uid, frozenset(flags))]))

    def open(self, peer: IPv4Address = LOOPBACK, transport: Any = None) -> Session:
        """A new connection, greeted, not logged in."""
        session = Session(self.ctx, peer, transport)
        self.addCleanup(session.close)
        return session

    async def login(self, select: bytes | None = b"INBOX") -> Session:
        """A session logged in as alice, with *select* selected."""
        session = self.open()
        session.received()
        reply = await session.command(b"L1 LOGIN alice@example.test secret")
        self.assertIn(b"L1 OK", reply)
        if select is not None:
            reply = await session.command(b"L2 SELECT " + select)
            self.assertIn(b"L2 OK", reply)
        return session

    async def deliver(self, *messages: bytes) -> None:
        """Deliver messages to alice's INBOX as SMTP does."""
        for message in messages:
            await self.store.deliver([Target(ALICE)], Body.from_wire(message))

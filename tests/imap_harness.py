"""Shared fixture for the IMAP protocol tests (no tests of its own).

A real :class:`~mailsrv.store.Store` in a temp dir with inline executors, the
shared fake checker (``support.FakeChecker``), and :class:`Session`: one
``IMAPServer`` on a ``StringTransport`` that a test talks to line by line,
as in the RFC 3501 example sessions.  Nothing waits on the global reactor:
the store's work runs at once, and the server's clock is a ``task.Clock``.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv.imap.server import IMAPServer
from mailsrv.listeners import Kind
from mailsrv.message.body import Body
from mailsrv.store import Target
from support import ALICE, PASSWORD, make_context

LOOPBACK = IPv4Address("TCP", "127.0.0.1", 40000)
REMOTE = IPv4Address("TCP", "192.0.2.7", 40000)
#: LOGIN's arguments for alice (the password has a space, so it is quoted).
CREDENTIALS = b'alice@example.test "' + PASSWORD + b'"'

__all__ = ["ALICE", "CREDENTIALS", "IMAPTestCase", "LOOPBACK", "PASSWORD", "REMOTE", "Session"]


class Session:
    """One client connection to an in-memory IMAP server."""

    def __init__(self, ctx: Any, peer: IPv4Address, transport: Any = None) -> None:
        self.clock = task.Clock()
        self.transport = transport or StringTransport(peerAddress=peer)
        self.server = IMAPServer(ctx, Kind.IMAP, self.clock)
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
        """Send one tagged command and return everything up to its tagged completion."""
        tag = line.split(b" ", 1)[0]
        self.server.dataReceived(line + b"\r\n")
        return await self.wait_for(tag)

    async def wait_for(self, tag: bytes) -> bytes:
        """Collect output until the tagged OK/NO/BAD for *tag*, letting the server's turns pass."""
        pattern = re.compile(rb"(?:\A|\r\n)" + re.escape(tag) + rb" (?:OK|NO|BAD)[^\r]*\r\n\Z")
        data = b""
        for _ in range(10_000):
            data += self.received()
            if pattern.search(data):
                return data
            self.clock.advance(0)  # long commands yield to the reactor between messages
            if not self.transport.value():
                self._advance_to_a_held_reply()
        raise AssertionError(f"no tagged reply for {tag!r}; got {data!r}")

    def _advance_to_a_held_reply(self) -> None:
        """Move the clock to the next timer due within a minute: a failed login's reply is held
        for ``[auth] throttle_delay`` (the idle timeouts are much further away)."""
        due = [call.getTime() for call in self.clock.getDelayedCalls()]
        if due and min(due) - self.clock.seconds() <= 60:
            self.clock.advance(min(due) - self.clock.seconds())

    def close(self) -> None:
        self.server.connectionLost(Failure(ConnectionError("test over")))


#: ``[imap]`` making no special folders at login.
NO_SPECIAL_FOLDERS = configuration.IMAPConfig(drafts="", sent="", trash="", junk="", archive="")


class IMAPTestCase(unittest.TestCase):
    """alice's store and a way to open logged-in or fresh sessions.

    Logins make the default special folders (``[imap]``) only where a test
    case asks for them with ``SPECIAL_FOLDERS = True``; the others see
    just the folders they make.
    """

    SPECIAL_FOLDERS = False
    #: Every user's default quota (``[quota]``).
    QUOTA = configuration.QuotaConfig()

    def setUp(self) -> None:
        config = configuration.Config(
            data_dir=self.mktemp(),
            auth=configuration.AuthConfig(allow_plaintext_auth_on_loopback=True),
            limits=configuration.LimitsConfig(imap_max_line_length=64 * 1024, imap_max_literal_size=1024 * 1024),
            imap=configuration.IMAPConfig() if self.SPECIAL_FOLDERS else NO_SPECIAL_FOLDERS,
            quota=self.QUOTA,
        )
        self.ctx = make_context(config)
        self.store = self.ctx.store
        self.inbox = self.folder("INBOX")

    def folder(self, name: str) -> Any:
        """alice's folder *name*, opened (the store's work is inline, so it is there at once)."""
        return self.successResultOf(self.store.user(ALICE).open(name))

    def open(self, peer: IPv4Address = LOOPBACK, transport: Any = None) -> Session:
        """A new connection, greeted, not logged in."""
        session = Session(self.ctx, peer, transport)
        self.addCleanup(session.close)
        return session

    async def login(self, select: bytes | None = b"INBOX") -> Session:
        """A session logged in as alice, with *select* selected."""
        session = self.open()
        session.received()
        reply = await session.command(b"L1 LOGIN " + CREDENTIALS)
        self.assertIn(b"L1 OK", reply)
        if select is not None:
            reply = await session.command(b"L2 SELECT " + select)
            self.assertIn(b"L2 OK", reply)
        return session

    async def deliver(self, *messages: bytes) -> None:
        """Deliver messages to alice's INBOX as SMTP does."""
        for message in messages:
            await self.store.deliver([Target(ALICE)], Body.from_wire(message))

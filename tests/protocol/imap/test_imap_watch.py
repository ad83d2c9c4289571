"""Changes other programs make to the Maildir, found by the store's watcher, reach sessions when RFC 3501 allows.

The watcher polls here (on the session's fake clock, its readings inline):
what it finds takes the same way to the client as another session's
change, so IDLE hears it at once and EXPUNGE waits out FETCH (RFC 3501
7.4.1); with QRESYNC it is ``VANISHED`` (RFC 7162 3.2.10).
"""

from __future__ import annotations

import os

from imap_harness import CREDENTIALS, IMAPTestCase, Session
from mailsrv.store import Store
from mailsrv.store.watch import DELAY, Watcher
from mailsrv.workers import InlineExecutor

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
INTERVAL = 0.5


class ExternalChanges(IMAPTestCase):
    async def watched_login(self, enable: bytes = b"") -> Session:
        """A session on a store whose watcher polls on the session's clock."""
        session = self.open()
        executor = InlineExecutor()
        self.ctx.store = Store(self.store.root, executor, None, Watcher(session.clock, executor, "poll", INTERVAL))
        session.received()
        self.assertIn(b"L1 OK", await session.command(b"L1 LOGIN " + CREDENTIALS))
        if enable:
            self.assertIn(b"L2 OK", await session.command(b"L2 ENABLE " + enable))
        self.assertIn(b"L3 OK", await session.command(b"L3 SELECT INBOX"))
        return session

    def procmail(self, name: str) -> None:
        path = self.inbox.path
        with open(os.path.join(path, "tmp", name), "wb") as f:
            f.write(MESSAGE.replace(b"\r\n", b"\n"))
        os.rename(os.path.join(path, "tmp", name), os.path.join(path, "new", name))

    def cur_file(self) -> str:
        (name,) = os.listdir(os.path.join(self.inbox.path, "cur"))
        return os.path.join(self.inbox.path, "cur", name)

    def found(self, session: Session) -> None:
        """Let the watcher take its next reading and its check."""
        session.clock.advance(INTERVAL)
        session.clock.advance(DELAY)

    async def test_idle_hears_another_programs_new_mail_flags_and_expunge(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.watched_login()
        self.assertEqual(session.send(b"A1 IDLE\r\n"), b"+ idling\r\n")
        first = self.cur_file().split(":2,")[0] + ":2,FS"
        os.rename(self.cur_file(), first)  # mutt flags it
        self.found(session)
        self.assertEqual(session.received(), b"* 1 FETCH (FLAGS (\\Recent \\Flagged \\Seen))\r\n")
        self.procmail("1700000000.M1P99Q1.procmail")
        self.found(session)
        self.assertEqual(session.received(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")
        os.unlink(first)
        self.found(session)
        self.assertEqual(session.received(), b"* 1 EXPUNGE\r\n")
        self.assertEqual(session.send(b"DONE\r\n"), b"A1 OK IDLE terminated\r\n")

    async def test_an_expunge_found_during_fetch_waits_for_the_next_command(self) -> None:
        await self.deliver(MESSAGE)
        (first,) = os.listdir(os.path.join(self.inbox.path, "new"))
        await self.deliver(MESSAGE)
        session = await self.watched_login()
        (gone,) = [name for name in os.listdir(os.path.join(self.inbox.path, "cur")) if name.startswith(first)]
        os.unlink(os.path.join(self.inbox.path, "cur", gone))
        self.found(session)
        self.assertEqual(await session.command(b"A1 FETCH 2 UID"), b"* 2 FETCH (UID 2)\r\nA1 OK FETCH completed\r\n")
        self.assertEqual(await session.command(b"A2 NOOP"), b"* 1 EXPUNGE\r\nA2 OK NOOP completed\r\n")

    async def test_with_qresync_an_expunge_is_vanished(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.watched_login(b"QRESYNC")
        self.assertEqual(session.send(b"A1 IDLE\r\n"), b"+ idling\r\n")
        os.unlink(self.cur_file())
        self.found(session)
        self.assertEqual(session.received(), b"* VANISHED 1\r\n")
        self.assertEqual(session.send(b"DONE\r\n"), b"A1 OK IDLE terminated\r\n")

    async def test_logout_stops_the_watch(self) -> None:
        session = await self.watched_login()
        await session.command(b"A1 LOGOUT")
        self.assertEqual(session.clock.getDelayedCalls(), [])

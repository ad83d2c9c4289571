"""A stopping server and its IMAP sessions: ``* BYE`` (RFC 3501 7.1.5), at once in IDLE, after a running command."""

from __future__ import annotations

from twisted.internet import defer, task

from imap_harness import IMAPTestCase

BYE = b"* BYE Server shutting down\r\n"


class Shutdown(IMAPTestCase):
    def stop(self) -> defer.Deferred[None]:
        return defer.Deferred.fromCoroutine(self.ctx.sessions.close_all(10, task.Clock()))

    async def test_idle_sessions_logged_in_or_not_get_bye(self) -> None:
        logged_in = await self.login()
        fresh = self.open()
        fresh.received()
        self.stop()
        for session in (logged_in, fresh):
            self.assertEqual(session.received(), BYE)
            self.assertTrue(session.transport.disconnecting)

    async def test_a_session_in_idle_gets_bye_at_once(self) -> None:
        session = await self.login()
        self.assertEqual(session.send(b"A002 IDLE\r\n"), b"+ idling\r\n")
        self.stop()
        self.assertEqual(session.received(), BYE)
        self.assertTrue(session.transport.disconnecting)

    async def test_append_in_progress_completes_before_bye(self) -> None:
        session = await self.login()
        self.assertEqual(session.send(b"a APPEND INBOX {5}\r\n"), b"+ Ready for 5 octets of data\r\n")
        self.stop()
        self.assertEqual(session.received(), b"")
        session.server.dataReceived(b"hello\r\n")
        self.assertEqual(
            session.received(),
            b"* 1 EXISTS\r\n* 1 RECENT\r\na OK [APPENDUID %d 1] APPEND completed\r\n%s" % (self.inbox.uidvalidity, BYE),
        )
        self.assertTrue(session.transport.disconnecting)
        self.assertEqual(len(self.inbox.messages()), 1)

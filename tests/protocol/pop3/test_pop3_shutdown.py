"""A stopping server and its POP3 sessions: ``-ERR`` and close, and no deletion without QUIT (RFC 1939 6)."""

from __future__ import annotations

import os

from twisted.internet import defer, task
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from mailsrv.pop3 import replies
from test_pop3 import MESSAGE, POP3TestCase


class ShutdownTests(POP3TestCase):
    async def test_idle_session_is_told_and_its_deletions_are_not_made(self):
        await self.deliver(MESSAGE)
        self.login()
        self.assertEqual(self.say(b"DELE 1\r\n"), b"+OK Message 1 deleted\r\n")
        self.transport.clear()
        stopped = defer.Deferred.fromCoroutine(self.ctx.sessions.close_all(10, task.Clock()))
        self.assertEqual(self.transport.value(), b"-ERR " + replies.SHUTTING_DOWN + b"\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.server.connectionLost(Failure(ConnectionDone()))
        self.successResultOf(stopped)
        self.successResultOf(self.inbox().sync())
        self.assertEqual(len(self.inbox().messages()), 1)
        self.assertEqual(len(os.listdir(os.path.join(self.inbox().path, "cur"))), 1)

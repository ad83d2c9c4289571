"""Hostile input sizes: long command lines and huge literals (limits.imap_*)."""

from __future__ import annotations

from imap_harness import IMAPTestCase

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class LineLength(IMAPTestCase):
    async def test_big_uid_set_beyond_16k_works(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()
        uid_set = b",".join(b"%d" % n for n in range(1, 16000, 2))  # ~40 KiB, as clients send
        self.assertGreater(len(uid_set), 32 * 1024)
        reply = await session.command(b"a UID FETCH " + uid_set + b" FLAGS")
        self.assertEqual(reply, b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\na OK FETCH completed\r\n")

    async def test_over_long_line_is_bad_and_the_session_goes_on(self) -> None:
        session = await self.login()
        limit = self.ctx.config.limits.imap_max_line_length
        reply = session.send(b"a NOOP " + b"x" * limit + b"\r\nb NOOP\r\n")
        self.assertEqual(reply, b"a BAD Command line too long\r\nb OK NOOP completed\r\n")
        self.assertFalse(session.transport.disconnecting)

    async def test_endless_line_is_not_buffered(self) -> None:
        session = await self.login()
        limit = self.ctx.config.limits.imap_max_line_length
        self.assertEqual(session.send(b"a " + b"y" * (limit + 10)), b"a BAD Command line too long\r\n")
        for _ in range(5):
            self.assertEqual(session.send(b"y" * limit), b"")
            self.assertLess(len(session.server.input), limit)
        self.assertEqual(session.send(b"yyy\r\nb NOOP\r\n"), b"b OK NOOP completed\r\n")


class Literals(IMAPTestCase):
    async def test_huge_append_literal_refused_before_continuation(self) -> None:
        session = await self.login()
        reply = session.send(b"a APPEND INBOX {999999999999}\r\n")
        self.assertEqual(reply, b"a NO [TOOBIG] Message too large\r\n")
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")

    async def test_literal_at_the_limit_is_accepted(self) -> None:
        session = await self.login()
        size = self.ctx.config.limits.imap_max_literal_size
        self.assertEqual(session.send(b"a APPEND INBOX {%d}\r\n" % size), b"+ Ready for %d octets of data\r\n" % size)
        session.server.dataReceived(b"x" * size + b"\r\n")
        self.assertTrue((await session.wait_for(b"a")).endswith(b"a OK [APPENDUID %d 1] APPEND completed\r\n" % self.inbox.uidvalidity))

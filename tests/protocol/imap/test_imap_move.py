"""MOVE and UID MOVE (RFC 6851): COPYUID before the expunges, and nothing lost when the copy fails."""

from __future__ import annotations

from twisted.internet import defer

from imap_harness import ALICE, IMAPTestCase
from mailsrv.store import Folder

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class Move(IMAPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.successResultOf(self.store.user(ALICE).create_folder("Archive"))
        self.archive = self.folder("Archive")

    async def test_move_answers_as_rfc6851_shows(self) -> None:
        await self.deliver(*[MESSAGE] * 4)
        session = await self.login()
        reply = await session.command(b"a MOVE 2:3 Archive")
        self.assertEqual(
            reply,
            b"* OK [COPYUID %d 2:3 1:2] Moved\r\n"
            b"* 2 EXPUNGE\r\n"
            b"* 2 EXPUNGE\r\n"
            b"a OK MOVE completed\r\n" % self.archive.uidvalidity,
        )
        self.assertEqual([i.uid for i in self.inbox.messages()], [1, 4])
        self.assertEqual([i.uid for i in self.archive.messages()], [1, 2])

    async def test_uid_move_keeps_flags_and_ignores_missing_uids(self) -> None:
        await self.deliver(*[MESSAGE] * 3)
        self.successResultOf(self.inbox.store_flags([(3, frozenset({"\\Flagged", "$Work"}))]))
        session = await self.login()
        reply = await session.command(b"a UID MOVE 3,9 Archive")
        self.assertEqual(
            reply,
            b"* OK [COPYUID %d 3 1] Moved\r\n* 3 EXPUNGE\r\na OK MOVE completed\r\n" % self.archive.uidvalidity,
        )
        self.assertEqual(self.archive.get(1).flags, frozenset({"\\Flagged", "$Work"}))
        self.assertEqual(await session.command(b"b UID MOVE 9 Archive"), b"b OK MOVE completed\r\n")

    async def test_other_sessions_see_the_expunge_and_the_arrival(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        mover, watcher = await self.login(), await self.login()
        await watcher.command(b"w1 SELECT Archive")
        await mover.command(b"a MOVE 1 Archive")
        self.assertEqual(await watcher.command(b"w2 NOOP"), b"* 1 EXISTS\r\n* 1 RECENT\r\nw2 OK NOOP completed\r\n")
        self.assertIn(b"* 1 EXISTS\r\n", await watcher.command(b"w3 SELECT INBOX"))

    async def test_missing_target_and_read_only(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        self.assertEqual(await session.command(b"a MOVE 1 Nope"), b"a NO [TRYCREATE] No such mailbox\r\n")
        self.assertTrue((await session.command(b"a2 MOVE 5 Archive")).startswith(b"a2 BAD "))
        await session.command(b"b EXAMINE INBOX")
        self.assertEqual(await session.command(b"c MOVE 1 Archive"), b"c NO [READ-ONLY] Mailbox is read-only\r\n")
        self.assertEqual(len(self.inbox.messages()), 1)
        self.assertEqual(self.archive.messages(), [])

    async def test_failed_copy_expunges_nothing(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()

        def broken_copy(folder: Folder, uids: object, target: Folder) -> defer.Deferred:
            return defer.fail(OSError(28, "No space left on device"))

        self.patch(Folder, "copy", broken_copy)
        reply = await session.command(b"a MOVE 1:* Archive")
        self.assertEqual(reply, b"a NO [SERVERBUG] Internal server error, try again later\r\n")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertEqual([i.uid for i in self.inbox.messages()], [1, 2])
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")

"""Store refusals as the client sees them: a selected mailbox deleted by
another session (RFC 3501 7.1.5), keywords the store cannot keep (RFC 3501
2.3.2, RFC 5530 LIMIT), DELETE of a parent (6.3.4), and empty APPENDs.
"""

from __future__ import annotations

import shutil

from mailsrv.message.body import Body
from imap_harness import ALICE, IMAPTestCase

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
BYE = b"* BYE Selected mailbox was deleted, have to disconnect.\r\n"


class SelectedMailboxDeleted(IMAPTestCase):
    async def _selected_then_deleted(self) -> object:
        """A session with Work selected, which another session then deletes."""
        user = self.store.user(ALICE)
        self.successResultOf(user.create_folder("Work"))
        await self.folder("Work").append(Body.from_wire(MESSAGE), ["\\Deleted"])
        session = await self.login(select=b"Work")
        self.successResultOf(user.delete_folder("Work"))
        return session

    async def test_every_command_that_syncs_says_bye(self) -> None:
        for command in (
            b"NOOP", b"CHECK", b"IDLE", b"FETCH 1 BODY[]", b"STORE 1 +FLAGS (\\Seen)", b"SEARCH BODY x",
            b"EXPUNGE", b"UID EXPUNGE 1", b"CLOSE", b"COPY 1 INBOX",
        ):
            session = await self._selected_then_deleted()
            # No tagged reply (the command cannot finish), no traceback
            # (trial fails the test on a logged failure), and the line goes.
            self.assertEqual(session.send(b"t " + command + b"\r\n"), BYE, command)
            self.assertTrue(session.transport.disconnecting, command)

    async def test_idle_hears_of_the_deletion_at_once(self) -> None:
        user = self.store.user(ALICE)
        self.successResultOf(user.create_folder("Work"))
        session = await self.login(select=b"Work")
        self.assertEqual(session.send(b"t IDLE\r\n"), b"+ idling\r\n")
        self.successResultOf(user.delete_folder("Work"))
        self.assertEqual(session.received(), BYE)
        self.assertTrue(session.transport.disconnecting)

    async def test_idle_poll_notices_a_deletion_by_another_node(self) -> None:
        user = self.store.user(ALICE)
        self.successResultOf(user.create_folder("Work"))
        session = await self.login(select=b"Work")
        self.assertEqual(session.send(b"t IDLE\r\n"), b"+ idling\r\n")
        shutil.rmtree(self.folder("Work").path)  # no announcement: only the disk knows
        self.assertEqual(session.received(), b"")
        session.clock.advance(session.server.IDLE_POLL_SECONDS)
        self.assertEqual(session.received(), BYE)
        self.assertTrue(session.transport.disconnecting)

    async def test_deleting_ones_own_selected_folder_deselects(self) -> None:
        user = self.store.user(ALICE)
        self.successResultOf(user.create_folder("Work"))
        session = await self.login(select=b"Work")
        self.assertEqual(await session.command(b"d DELETE Work"), b"d OK Mailbox deleted\r\n")
        self.assertFalse(session.transport.disconnecting)
        self.assertEqual(await session.command(b"n NOOP"), b"n OK NOOP completed\r\n")
        self.assertTrue((await session.command(b"f FETCH 1 FLAGS")).startswith(b"f BAD"))  # nothing selected

    async def test_other_sessions_go_on(self) -> None:
        session = await self._selected_then_deleted()
        other = await self.login()
        self.assertEqual(await other.command(b"o1 NOOP"), b"o1 OK NOOP completed\r\n")
        self.assertFalse(session.transport.disconnecting)  # told at its own next sync


class Keywords(IMAPTestCase):
    async def test_store_past_26_keywords_is_no_limit_and_changes_nothing(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()
        many = b" ".join(b"kw%02d" % i for i in range(27))
        reply = await session.command(b"a STORE 1:2 +FLAGS (\\Flagged " + many + b")")
        self.assertEqual(reply, b"a NO [LIMIT] Too many keywords in mailbox\r\n")
        self.assertEqual([i.flags for i in self.inbox.messages()], [frozenset(), frozenset()])
        some = b" ".join(b"kw%02d" % i for i in range(26))
        reply = await session.command(b"b STORE 1 +FLAGS.SILENT (" + some + b")")
        self.assertEqual(reply, b"b OK STORE completed\r\n")
        self.assertEqual(await session.command(b"c STORE 2 FLAGS (more)"), b"c NO [LIMIT] Too many keywords in mailbox\r\n")
        self.assertEqual(await session.command(b"d STORE 2 FLAGS (kw25)"), b"* 2 FETCH (FLAGS (\\Recent kw25))\r\nd OK STORE completed\r\n")
        # RFC 3501 7.1: with every keyword letter taken, \* is no longer offered.
        self.assertIn(b"[PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)]", await session.command(b"e SELECT INBOX"))

    async def test_unknown_system_flag_and_bad_keywords_are_bad(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        self.assertEqual(await session.command(b"a STORE 1 +FLAGS (\\Bogus)"), b"a BAD Invalid flag: unknown system flag \\Bogus\r\n")
        reply = await session.command(b"b STORE 1 +FLAGS (" + b"k" * 200 + b")")
        self.assertEqual(reply, b"b BAD Invalid flag: a keyword must be a short atom\r\n")
        self.assertEqual(self.inbox.messages()[0].flags, frozenset())

    async def test_append_with_bad_flags_stores_nothing(self) -> None:
        session = await self.login()
        session.send(b"a APPEND INBOX (\\Bogus $Kw) {%d}\r\n" % len(MESSAGE))
        session.server.dataReceived(MESSAGE + b"\r\n")
        self.assertEqual(await session.wait_for(b"a"), b"a BAD Invalid flag: unknown system flag \\Bogus\r\n")
        many = b" ".join(b"kw%02d" % i for i in range(27))
        session.send(b"b APPEND INBOX (" + many + b") {%d}\r\n" % len(MESSAGE))
        session.server.dataReceived(MESSAGE + b"\r\n")
        self.assertEqual(await session.wait_for(b"b"), b"b NO [LIMIT] Too many keywords in mailbox\r\n")
        self.assertEqual(self.inbox.messages(), [])


class DeleteParent(IMAPTestCase):
    async def test_deleting_a_noselect_parent_is_a_clean_no(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE Arch/2026")
        self.assertEqual(await session.command(b"b DELETE Arch"), b"b OK Mailbox deleted\r\n")
        self.assertEqual(self.successResultOf(self.store.user(ALICE).list_folders()), ["INBOX", "Arch/2026"])
        reply = await session.command(b"c DELETE Arch")  # RFC 3501 6.3.4: now \Noselect with inferiors
        self.assertEqual(reply, b"c NO [CANNOT] Mailbox has children, delete them first\r\n")
        await session.command(b"d DELETE Arch/2026")
        self.assertEqual(await session.command(b"e DELETE Arch"), b"e NO [NONEXISTENT] No such mailbox\r\n")


class EmptyAppend(IMAPTestCase):
    async def test_zero_byte_message_is_refused(self) -> None:
        session = await self.login(select=None)
        self.assertEqual(session.send(b"a APPEND INBOX {0}\r\n"), b"+ Ready for 0 octets of data\r\n")
        session.server.dataReceived(b"\r\n")
        self.assertEqual(await session.wait_for(b"a"), b"a NO Can't save a zero byte message\r\n")
        self.assertEqual(self.inbox.messages(), [])  # POP3 could not show it

"""Mailbox commands: SELECT/EXAMINE, LIST/LSUB, CREATE..., STATUS, hostile names."""

from __future__ import annotations

import os

from imap_harness import IMAPTestCase

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class Select(IMAPTestCase):
    async def test_select_sends_every_rfc3501_response(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        self.successResultOf(self.inbox.store_flags([(1, frozenset({"\\Seen"}))]))  # read elsewhere: no longer \\Recent either
        session = await self.login(select=None)
        reply = await session.command(b"A142 SELECT INBOX")
        v = self.inbox.uidvalidity
        self.assertEqual(
            reply,
            b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
            b"* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted\r\n"
            b"* 3 EXISTS\r\n"
            b"* 2 RECENT\r\n"
            b"* OK [UNSEEN 2] First unseen\r\n"
            b"* OK [UIDVALIDITY %d] UIDs valid\r\n"
            b"* OK [UIDNEXT 4] Predicted next UID\r\n"
            b"* OK [HIGHESTMODSEQ %d] Highest\r\n"  # RFC 7162 3.1.2.1
            b"A142 OK [READ-WRITE] SELECT completed\r\n" % (v, self.inbox.highest_modseq),
        )

    async def test_examine_is_read_only_and_claims_nothing(self) -> None:
        """RFC 3501 6.3.2: EXAMINE answers as SELECT does, RECENT too, but MUST NOT take \\Recent away."""
        await self.deliver(MESSAGE)
        session = await self.login(select=None)
        reply = await session.command(b"A932 EXAMINE INBOX")
        self.assertIn(b"* OK [PERMANENTFLAGS ()] Flags permitted\r\n", reply)
        self.assertIn(b"* 1 RECENT\r\n", reply)
        self.assertTrue(reply.endswith(b"A932 OK [READ-ONLY] EXAMINE completed\r\n"))
        reply = await session.command(b"A935 FETCH 1 FLAGS")
        self.assertEqual(reply, b"* 1 FETCH (FLAGS (\\Recent))\r\nA935 OK FETCH completed\r\n")
        other = await self.login(select=None)
        self.assertIn(b"(RECENT 1)", await other.command(b"o STATUS INBOX (RECENT)"))  # still unclaimed
        await self.deliver(MESSAGE)  # arriving while EXAMINEd: \Recent there too, still nobody's claim
        self.assertEqual(await session.command(b"A936 NOOP"), b"* 2 EXISTS\r\n* 2 RECENT\r\nA936 OK NOOP completed\r\n")
        reply = await session.command(b"A933 STORE 1 +FLAGS (\\Deleted)")
        self.assertEqual(reply, b"A933 NO [READ-ONLY] Mailbox is read-only\r\n")
        reply = await session.command(b"A934 SELECT INBOX")
        self.assertIn(b"* 2 RECENT\r\n", reply)

    async def test_no_unseen_line_when_all_seen(self) -> None:
        await self.deliver(MESSAGE)
        self.successResultOf(self.inbox.store_flags([(1, frozenset({"\\Seen"}))]))
        session = await self.login(select=None)
        self.assertNotIn(b"UNSEEN", await session.command(b"a SELECT INBOX"))

    async def test_select_missing_mailbox_deselects(self) -> None:
        session = await self.login()
        reply = await session.command(b"a SELECT Nope")
        # RFC 7162 3.2.11: the boundary between the old mailbox's responses and what follows.
        self.assertEqual(reply, b"* OK [CLOSED] Previous mailbox closed\r\na NO [NONEXISTENT] No such mailbox\r\n")
        self.assertEqual(session.server.state, "auth")


class Hierarchy(IMAPTestCase):
    async def test_create_list_rename_delete(self) -> None:
        session = await self.login(select=None)
        for line in (b"a CREATE Archive/2024", b"b CREATE Archive/2025/", b"c CREATE Sent"):
            self.assertTrue((await session.command(line)).endswith(b"OK Mailbox created\r\n"))
        reply = await session.command(b'd LIST "" %')
        self.assertEqual(
            reply,
            b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
            b'* LIST (\\HasChildren) "/" "Archive"\r\n'
            b'* LIST (\\HasNoChildren) "/" "Sent"\r\n'
            b"d OK LIST completed\r\n",
        )
        reply = await session.command(b'e LIST "Archive/" %')
        self.assertEqual(
            reply,
            b'* LIST (\\HasNoChildren) "/" "Archive/2024"\r\n'
            b'* LIST (\\HasNoChildren) "/" "Archive/2025"\r\n'
            b"e OK LIST completed\r\n",
        )
        self.assertEqual(await session.command(b'f LIST "" ""'), b'* LIST (\\Noselect) "/" ""\r\nf OK LIST completed\r\n')
        self.assertIn(b'"INBOX"', await session.command(b'g LIST "" inbox'))
        self.assertEqual(await session.command(b"h RENAME Sent Outbox"), b"h OK Mailbox renamed\r\n")
        self.assertEqual(await session.command(b"i DELETE Outbox"), b"i OK Mailbox deleted\r\n")
        reply = await session.command(b'j LIST "" *')
        self.assertEqual(reply.count(b"* LIST"), 4)
        self.assertNotIn(b"Outbox", reply)
        self.assertEqual(await session.command(b"k CREATE Archive"), b"k NO [ALREADYEXISTS] Mailbox already exists\r\n")

    async def test_inbox_in_any_case_also_before_a_wildcard(self) -> None:
        """RFC 3501 5.1: INBOX is case-insensitive, so ``inbox*`` and ``Inb%`` match it as ``INBOX*`` does."""
        session = await self.login(select=None)
        await session.command(b"a CREATE INBOX/sub")
        await session.command(b"b CREATE Inboxes")  # any other name keeps its case
        both = b'* LIST (\\HasChildren) "/" "INBOX"\r\n* LIST (\\HasNoChildren) "/" "INBOX/sub"\r\n'
        self.assertEqual(await session.command(b'c LIST "" inbox*'), both + b"c OK LIST completed\r\n")
        self.assertEqual(await session.command(b'd LIST "" INBOX*'), both + b"d OK LIST completed\r\n")
        self.assertEqual(await session.command(b'e LIST "" Inb%'),
                         b'* LIST (\\HasChildren) "/" "INBOX"\r\n* LIST (\\HasNoChildren) "/" "Inboxes"\r\n'
                         b"e OK LIST completed\r\n")
        self.assertEqual(await session.command(b'f LIST "" inb%'),
                         b'* LIST (\\HasChildren) "/" "INBOX"\r\nf OK LIST completed\r\n')
        self.assertEqual(await session.command(b'g LIST "" i*/sub'),
                         b'* LIST (\\HasNoChildren) "/" "INBOX/sub"\r\ng OK LIST completed\r\n')
        await session.command(b"h SUBSCRIBE INBOX")
        self.assertEqual(await session.command(b'i LSUB "" inbox*'), b'* LSUB () "/" "INBOX"\r\ni OK LSUB completed\r\n')

    async def test_subscriptions(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE Lists")
        self.assertEqual(await session.command(b"b SUBSCRIBE Lists"), b"b OK Subscribed\r\n")
        self.assertEqual(await session.command(b'c LSUB "" *'), b'* LSUB () "/" "Lists"\r\nc OK LSUB completed\r\n')
        self.assertEqual(await session.command(b"d UNSUBSCRIBE Lists"), b"d OK Unsubscribed\r\n")
        self.assertEqual(await session.command(b'e LSUB "" *'), b"e OK LSUB completed\r\n")

    async def test_lsub_percent_names_an_unsubscribed_parent_noselect(self) -> None:
        """RFC 3501 6.3.9: foo/bar subscribed, foo not: ``%`` must return foo, flagged \\Noselect."""
        session = await self.login(select=None)
        await session.command(b"a CREATE foo/bar")
        await session.command(b"b SUBSCRIBE foo/bar")
        await session.command(b"c SUBSCRIBE gone/away")  # subscribed, no such folder
        reply = await session.command(b'd LSUB "" %')
        self.assertIn(b'* LSUB (\\Noselect) "/" "foo"\r\n', reply)
        self.assertIn(b'* LSUB (\\Noselect) "/" "gone"\r\n', reply)
        self.assertNotIn(b"foo/bar", reply)
        self.assertEqual(await session.command(b'e LSUB "" foo/%'), b'* LSUB () "/" "foo/bar"\r\ne OK LSUB completed\r\n')
        # "*" lists the subscribed names themselves, not their parents.
        reply = await session.command(b'f LSUB "" *')
        self.assertIn(b'* LSUB () "/" "foo/bar"\r\n', reply)
        self.assertNotIn(b'"foo"', reply)
        # A parent that is itself subscribed is listed once, without \Noselect.
        await session.command(b"g SUBSCRIBE foo")
        reply = await session.command(b'h LSUB "" f%')
        self.assertEqual(reply, b'* LSUB () "/" "foo"\r\nh OK LSUB completed\r\n')

    async def test_modified_utf7_names_round_trip(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE &AOQ-pfel")  # "äpfel" (RFC 3501 5.1.3)
        self.assertIn("äpfel", self.successResultOf(self.store.user("alice@example.test").list_folders()))
        self.assertIn(b'"&AOQ-pfel"', await session.command(b'b LIST "" *'))

    async def test_status(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        self.successResultOf(self.inbox.store_flags([(2, frozenset({"\\Seen"}))]))
        session = await self.login(select=None)
        reply = await session.command(b"a STATUS INBOX (MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT)")
        self.assertEqual(
            reply,
            b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 1 UIDNEXT 3 UIDVALIDITY %d RECENT 1)\r\n'
            b"a OK STATUS completed\r\n" % self.inbox.uidvalidity,
        )
        self.assertEqual(await session.command(b"b STATUS Nope (MESSAGES)"), b"b NO [NONEXISTENT] No such mailbox\r\n")
        self.assertTrue((await session.command(b"c STATUS INBOX (BOGUS)")).startswith(b"c BAD"))


class HostileNames(IMAPTestCase):
    NAMES = [b'"../evil"', b'"a/../evil"', b'".evil"', b'"a/.evil"', b'"a//evil"', b'"/evil"']

    async def test_hostile_names_get_a_clean_no(self) -> None:
        session = await self.login(select=None)
        for i, name in enumerate(self.NAMES):
            for command in (b"CREATE", b"SELECT", b"DELETE", b"SUBSCRIBE", b"STATUS"):
                tag = b"t%d" % i
                line = tag + b" " + command + b" " + name + (b" (MESSAGES)" if command == b"STATUS" else b"")
                reply = await session.command(line)
                self.assertTrue(reply.startswith(tag + b" NO "), (line, reply))
            self.assertTrue((await session.command(b"r RENAME INBOX " + name)).startswith(b"r NO "))
        self.assertNoEvilOutside()

    async def test_nul_and_control_characters_in_literals(self) -> None:
        session = await self.login(select=None)
        # RFC 3501 9: a literal's CHAR8 excludes NUL, so that one is BAD.
        for i, (name, answer) in enumerate([(b"a\x00evil", b" BAD"), (b"a\x01evil", b" NO"), (b"a\revil", b" NO")]):
            tag = b"n%d" % i
            self.assertEqual(session.send(tag + b" CREATE {%d}\r\n" % len(name)), b"+ Ready for %d octets of text\r\n" % len(name))
            session.server.dataReceived(name + b"\r\n")
            reply = await session.wait_for(tag)
            self.assertTrue(reply.startswith(tag + answer), reply)
        self.assertNoEvilOutside()

    def assertNoEvilOutside(self) -> None:
        for root, dirs, files in os.walk(self.ctx.config.data_dir):
            for name in dirs + files:
                self.assertNotIn("evil", name, os.path.join(root, name))

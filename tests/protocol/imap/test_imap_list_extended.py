"""Special folders (RFC 6154), LIST-EXTENDED (RFC 5258), LIST-STATUS (RFC 5819), STATUS=SIZE (RFC 8438)."""

from __future__ import annotations

import os

from twisted.internet import defer

from imap_harness import ALICE, IMAPTestCase
from mailsrv.store import UserStore, specialuse

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"

DEFAULT_LIST = (
    b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
    b'* LIST (\\HasNoChildren \\Archive) "/" "Archive"\r\n'
    b'* LIST (\\HasNoChildren \\Drafts) "/" "Drafts"\r\n'
    b'* LIST (\\HasNoChildren \\Junk) "/" "Junk"\r\n'
    b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"\r\n'
    b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"\r\n'
)


class SpecialFolders(IMAPTestCase):
    SPECIAL_FOLDERS = True

    async def test_new_account_gets_them_listed_and_subscribed(self) -> None:
        session = await self.login(select=None)
        self.assertEqual(await session.command(b'a LIST "" *'), DEFAULT_LIST + b"a OK LIST completed\r\n")
        reply = await session.command(b'b LSUB "" *')
        self.assertEqual(reply.count(b"* LSUB"), 5)
        root = self.store.user(ALICE).path
        self.assertEqual(specialuse.read(root)["Sent"], frozenset({"\\Sent"}))

    async def test_set_up_once_a_deleted_one_stays_deleted(self) -> None:
        session = await self.login(select=None)
        self.assertEqual(await session.command(b"a DELETE Junk"), b"a OK Mailbox deleted\r\n")
        session.close()
        self.store.user(ALICE)._provisioned = False  # as another process or a restart sees it
        again = await self.login(select=None)
        reply = await again.command(b'b LIST "" *')
        self.assertNotIn(b"Junk", reply)
        self.assertNotIn("Junk", specialuse.read(self.store.user(ALICE).path))

    async def test_create_with_use_and_rename_keeps_it(self) -> None:
        session = await self.login(select=None)
        reply = await session.command(b"a CREATE Old/2024 (USE (\\Archive \\junk))")
        self.assertEqual(reply, b"a OK Mailbox created\r\n")
        self.assertIn(b'* LIST (\\HasNoChildren \\Archive \\Junk) "/" "Old/2024"\r\n', await session.command(b'b LIST "" *'))
        self.assertEqual(await session.command(b"c RENAME Old Past"), b"c OK Mailbox renamed\r\n")
        reply = await session.command(b'd LIST "" Past/*')
        self.assertEqual(reply, b'* LIST (\\HasNoChildren \\Archive \\Junk) "/" "Past/2024"\r\nd OK LIST completed\r\n')

    async def test_unsupported_use_creates_nothing(self) -> None:
        session = await self.login(select=None)
        reply = await session.command(b"a CREATE Virtual (USE (\\All))")
        self.assertEqual(reply, b"a NO [USEATTR] Unsupported special-use attribute\r\n")
        for bad in (b"b CREATE X (USE \\Archive)", b"b CREATE X (COLOR (red))", b"b CREATE X (USE (\\Archive)"):
            self.assertTrue((await session.command(bad)).startswith(b"b BAD "), bad)
        self.assertNotIn(b"Virtual", await session.command(b'c LIST "" *'))
        self.assertNotIn(b'"X"', await session.command(b'd LIST "" *'))

    async def test_file_is_replaced_atomically_and_shared(self) -> None:
        """Another process's edit (a hand edit here) is seen by the next LIST."""
        session = await self.login(select=None)
        await session.command(b"a CREATE Lists")
        path = specialuse.path(self.store.user(ALICE).path)
        with open(path, "a", encoding="utf-8") as f:
            f.write("Lists\t\\Archive\n")
        self.assertIn(b'* LIST (\\HasNoChildren \\Archive) "/" "Lists"\r\n', await session.command(b'b LIST "" *'))
        self.assertEqual([n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")], [])

    async def test_special_use_selection(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE Plain")
        reply = await session.command(b'b LIST (SPECIAL-USE) "" *')
        self.assertEqual(reply, DEFAULT_LIST[DEFAULT_LIST.index(b"* LIST (\\HasNoChildren \\Archive)"):] + b"b OK LIST completed\r\n")
        reply = await session.command(b'c LIST "" * RETURN (SPECIAL-USE)')
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "Plain"\r\n', reply)


class ListExtended(IMAPTestCase):
    async def make(self, *names: bytes, subscribe: tuple[bytes, ...] = ()) -> object:
        session = await self.login(select=None)
        for name in names:
            await session.command(b"m CREATE " + name)
        for name in subscribe:
            await session.command(b"s SUBSCRIBE " + name)
        return session

    async def assertListed(self, session: object, command: bytes, *responses: bytes) -> None:
        """*command* (tag ``a``) answers exactly *responses*, one LIST line each, then OK."""
        reply = await session.command(b"a " + command)  # type: ignore[attr-defined]
        self.assertEqual(reply, b"".join(b"* LIST " + r + b"\r\n" for r in responses) + b"a OK LIST completed\r\n")

    async def test_subscribed_selection_marks_nonexistent(self) -> None:
        session = await self.make(b"Lists", b"Work", subscribe=(b"Lists", b"Gone"))
        await self.assertListed(
            session, b'LIST (SUBSCRIBED) "" *',
            b'(\\NonExistent \\Subscribed) "/" "Gone"', b'(\\HasNoChildren \\Subscribed) "/" "Lists"')

    async def test_return_subscribed_and_several_patterns(self) -> None:
        session = await self.make(b"Lists", b"Work", b"Zoo", subscribe=(b"Work",))
        await self.assertListed(
            session, b'LIST "" (INBOX Work Li*) RETURN (SUBSCRIBED CHILDREN)',
            b'(\\HasNoChildren) "/" "INBOX"', b'(\\HasNoChildren) "/" "Lists"',
            b'(\\HasNoChildren \\Subscribed) "/" "Work"')

    async def test_recursivematch_names_parents_with_childinfo(self) -> None:
        """RFC 5258 5, example 9: a parent whose child is subscribed."""
        session = await self.make(b"Foo/Bar", b"Baz", subscribe=(b"Foo/Bar", b"Baz"))
        await self.assertListed(
            session, b'LIST (SUBSCRIBED RECURSIVEMATCH) "" %',
            b'(\\HasNoChildren \\Subscribed) "/" "Baz"', b'(\\HasChildren) "/" "Foo" ("CHILDINFO" ("SUBSCRIBED"))')
        self.assertNotIn(b"CHILDINFO", await session.command(b'b LIST (SUBSCRIBED RECURSIVEMATCH) "" *'))
        self.assertTrue((await session.command(b'c LIST (RECURSIVEMATCH) "" %')).startswith(b"c BAD "))

    async def test_remote_and_empty_options_change_nothing(self) -> None:
        session = await self.make(b"Work")
        plain = await session.command(b'a LIST "" *')
        self.assertEqual((await session.command(b'a LIST (REMOTE) "" *')), plain)
        self.assertEqual((await session.command(b'a LIST () "" * RETURN ()')), plain)

    async def test_unknown_options_are_bad(self) -> None:
        session = await self.make()
        for line in (b'a LIST (BOGUS) "" *', b'a LIST "" * RETURN (BOGUS)', b'a LIST "" * RETURN', b'a LIST "" * MORE'):
            self.assertTrue((await session.command(line)).startswith(b"a BAD "), line)


class ListStatus(IMAPTestCase):
    async def test_status_follows_each_selectable_folder(self) -> None:
        await self.deliver(MESSAGE, MESSAGE + b"more\r\n")
        session = await self.login(select=None)
        await session.command(b"a CREATE Empty")
        await session.command(b"b SUBSCRIBE Gone")
        reply = await session.command(b'c LIST (SUBSCRIBED) "" * RETURN (STATUS (MESSAGES SIZE))')
        self.assertEqual(reply, b'* LIST (\\NonExistent \\Subscribed) "/" "Gone"\r\nc OK LIST completed\r\n')
        reply = await session.command(b'd LIST "" * RETURN (STATUS (MESSAGES UNSEEN SIZE))')
        self.assertEqual(
            reply,
            b'* LIST (\\HasNoChildren) "/" "INBOX"\r\n'
            b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 2 SIZE %d)\r\n'
            b'* LIST (\\HasNoChildren) "/" "Empty"\r\n'
            b'* STATUS "Empty" (MESSAGES 0 UNSEEN 0 SIZE 0)\r\n'
            b"d OK LIST completed\r\n" % (2 * len(MESSAGE) + 6),
        )
        self.assertTrue((await session.command(b'e LIST "" * RETURN (STATUS (BOGUS))')).startswith(b"e BAD "))

    async def test_status_size(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login(select=None)
        reply = await session.command(b"a STATUS INBOX (SIZE MESSAGES)")
        self.assertEqual(reply, b'* STATUS "INBOX" (SIZE %d MESSAGES 1)\r\na OK STATUS completed\r\n' % len(MESSAGE))


class Failures(IMAPTestCase):
    async def test_unreadable_special_use_file_is_serverbug_and_logged(self) -> None:
        session = await self.login(select=None)

        def broken(user: UserStore) -> defer.Deferred:
            return defer.fail(PermissionError(13, "Permission denied"))

        self.patch(UserStore, "special_use", broken)
        reply = await session.command(b'a LIST "" *')
        self.assertEqual(reply, b"a NO [SERVERBUG] Internal server error, try again later\r\n")
        self.assertEqual(len(self.flushLoggedErrors(PermissionError)), 1)
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")

    async def test_failed_use_record_leaves_no_folder(self) -> None:
        session = await self.login(select=None)

        def broken(root: str, change: object) -> None:
            raise OSError(28, "No space left on device")

        self.patch(specialuse, "edit", broken)
        reply = await session.command(b"a CREATE Box (USE (\\Archive))")
        self.assertEqual(reply, b"a NO [SERVERBUG] Internal server error, try again later\r\n")
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assertNotIn("Box", self.successResultOf(self.store.user(ALICE).list_folders()))

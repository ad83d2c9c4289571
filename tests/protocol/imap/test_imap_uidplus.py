"""UIDPLUS (RFC 4315): APPENDUID, COPYUID and UID EXPUNGE.

mbsync and Thunderbird rely on these; mbsync's fallback for servers without
them fails the first upload to a folder.
"""

from __future__ import annotations

from imap_harness import ALICE, IMAPTestCase

from mailsrv.imap.server import _uid_set
from mailsrv.message.body import Body

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class AppendUID(IMAPTestCase):
    async def test_append_names_the_new_uid(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE Box")
        box = self.folder("Box")
        for tag, uid in ((b"b", 1), (b"c", 2)):
            session.send(tag + b" APPEND Box {%d}\r\n" % len(MESSAGE))
            session.server.dataReceived(MESSAGE + b"\r\n")
            reply = await session.wait_for(tag)
            self.assertEqual(reply, tag + b" OK [APPENDUID %d %d] APPEND completed\r\n" % (box.uidvalidity, uid))
        self.assertEqual([i.uid for i in box.messages()], [1, 2])


class CopyUID(IMAPTestCase):
    async def test_copy_pairs_source_and_new_uids_in_order(self) -> None:
        await self.deliver(*[MESSAGE] * 5)
        self.successResultOf(self.inbox.expunge([3]))
        user = self.store.user(ALICE)
        self.successResultOf(user.create_folder("Archive"))
        archive = self.folder("Archive")
        await archive.append(Body.from_wire(MESSAGE))
        session = await self.login()
        reply = await session.command(b"a COPY 1:* Archive")
        self.assertEqual(reply, b"a OK [COPYUID %d 1:2,4:5 2:5] COPY completed\r\n" % archive.uidvalidity)
        reply = await session.command(b"b UID COPY 4 Archive")
        self.assertEqual(reply, b"b OK [COPYUID %d 4 6] COPY completed\r\n" % archive.uidvalidity)
        # Nothing to copy: a uid-set cannot be empty, so no code (RFC 4315 4).
        self.assertEqual(await session.command(b"c UID COPY 3 Archive"), b"c OK COPY completed\r\n")

    def test_uid_set_keeps_order_and_merges_runs(self) -> None:
        self.assertEqual(_uid_set([1, 2, 4, 5, 3]), b"1:2,4:5,3")
        self.assertEqual(_uid_set([7]), b"7")


class UidExpunge(IMAPTestCase):
    async def test_only_deleted_messages_in_the_set_go(self) -> None:
        await self.deliver(*[MESSAGE] * 4)
        session = await self.login()
        await session.command(b"a STORE 1:3 +FLAGS.SILENT (\\Deleted)")
        reply = await session.command(b"b UID EXPUNGE 2:4")
        self.assertEqual(reply, b"* 2 EXPUNGE\r\n* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n")
        self.assertEqual([(i.uid, sorted(i.flags)) for i in self.inbox.messages()], [(1, ["\\Deleted"]), (4, [])])
        self.assertEqual(await session.command(b"c EXPUNGE"), b"* 1 EXPUNGE\r\nc OK EXPUNGE completed\r\n")

    async def test_syntax_and_read_only(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        reply = await session.command(b"a UID EXPUNGE")
        self.assertEqual(reply, b"a BAD UID EXPUNGE needs a UID set; EXPUNGE takes no arguments\r\n")
        self.assertTrue((await session.command(b"b EXPUNGE 1")).startswith(b"b BAD "))
        await session.command(b"c EXAMINE INBOX")
        self.assertEqual(await session.command(b"d UID EXPUNGE 1"), b"d NO [READ-ONLY] Mailbox is read-only\r\n")

"""ESEARCH (RFC 4731) and SEARCHRES (RFC 5182): the RFCs' example sessions on a small INBOX.

The INBOX holds messages 1..6 with UIDs 2..7 (UID 1 was expunged), so a
reply that mixes up sequence numbers and UIDs shows.  2, 4, 5 and 6 are
\\Flagged.
"""

from __future__ import annotations

from imap_harness import IMAPTestCase

MESSAGE = b"From: bob@example.test\r\nSubject: note %d\r\n\r\nBody %d.\r\n"


class ESearchCase(IMAPTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        super().setUp()
        await self.deliver(*(MESSAGE % (n, n) for n in range(7)))
        self.successResultOf(self.inbox.expunge([1]))
        self.successResultOf(self.inbox.store_flags([(uid, frozenset({"\\Flagged"})) for uid in (3, 5, 6, 7)]))
        self.session = await self.login()

    async def check(self, command: bytes, *untagged: bytes, result: bytes = b"OK SEARCH completed") -> None:
        tag = command.split(b" ", 1)[0]
        expected = b"".join(b"* " + line + b"\r\n" for line in untagged) + tag + b" " + result + b"\r\n"
        self.assertEqual(await self.session.command(command), expected)


class ESearch(ESearchCase):
    async def test_return_options(self) -> None:
        await self.check(b"A282 SEARCH RETURN (MIN COUNT) FLAGGED", b'ESEARCH (TAG "A282") MIN 2 COUNT 4')
        await self.check(b"A283 SEARCH RETURN () FLAGGED", b'ESEARCH (TAG "A283") ALL 2,4:6')
        await self.check(b"A284 SEARCH RETURN (MIN) UNFLAGGED", b'ESEARCH (TAG "A284") MIN 1')
        await self.check(b"A285 UID SEARCH RETURN (MIN MAX) FLAGGED", b'ESEARCH (TAG "A285") UID MIN 3 MAX 7')
        await self.check(b"A286 SEARCH RETURN (COUNT) CHARSET UTF-8 FLAGGED", b'ESEARCH (TAG "A286") COUNT 4')
        await self.check(b"A287 UID SEARCH RETURN (ALL) 1:*", b'ESEARCH (TAG "A287") UID ALL 2:7')

    async def test_no_match_keeps_only_count(self) -> None:
        # RFC 4731 3.1: no MIN, MAX or ALL without a match, but the response still comes, with COUNT 0.
        await self.check(b"a SEARCH RETURN (MIN MAX ALL COUNT) DELETED", b'ESEARCH (TAG "a") COUNT 0')
        await self.check(b"b UID SEARCH RETURN (MIN) DELETED", b'ESEARCH (TAG "b") UID')

    async def test_plain_search_is_unchanged(self) -> None:
        await self.check(b"a SEARCH FLAGGED", b"SEARCH 2 4 5 6")

    async def test_bad_options(self) -> None:
        for command in (b"a SEARCH RETURN (FROB) ALL", b"a SEARCH RETURN MIN ALL", b"a SEARCH RETURN (MIN)"):
            reply = await self.session.command(command)
            self.assertTrue(reply.startswith(b"a BAD "), (command, reply))


class SearchRes(ESearchCase):
    async def test_save_alone_answers_nothing_untagged(self) -> None:
        await self.check(b"A282 SEARCH RETURN (SAVE) FLAGGED", result=b"OK SEARCH completed, result saved")
        reply = await self.session.command(b"A283 FETCH $ (UID)")
        self.assertEqual(reply, b"".join(b"* %d FETCH (UID %d)\r\n" % (n, n + 1) for n in (2, 4, 5, 6))
                         + b"A283 OK FETCH completed\r\n")
        # RFC 5182 2.1: $ names the same messages whether the command is UID or not.
        await self.check(b"A284 UID SEARCH UID $", b"SEARCH 3 5 6 7")
        await self.check(b"A285 SEARCH $ NOT 5", b"SEARCH 2 4 6")
        await self.check(b"A286 UID SEARCH RETURN (ALL) $", b'ESEARCH (TAG "A286") UID ALL 3,5:7')

    async def test_store_copy_and_move_take_dollar(self) -> None:
        await self.session.command(b"c CREATE Archive")
        await self.session.command(b"s SEARCH RETURN (SAVE) 1:2")
        reply = await self.session.command(b"a STORE $ +FLAGS.SILENT (\\Seen)")
        self.assertEqual(reply, b"a OK STORE completed\r\n")
        self.assertEqual({uid for uid in (2, 3, 4) if "\\Seen" in self.inbox.get(uid).flags}, {2, 3})
        reply = await self.session.command(b"b COPY $ Archive")
        self.assertEqual(reply, b"b OK [COPYUID %d 2:3 1:2] COPY completed\r\n" % self.folder("Archive").uidvalidity)
        reply = await self.session.command(b"m UID MOVE $ Archive")
        self.assertIn(b"* 1 EXPUNGE\r\n* 1 EXPUNGE\r\nm OK MOVE completed", reply)

    async def test_expunged_messages_leave_the_result(self) -> None:
        await self.session.command(b"s SEARCH RETURN (SAVE) FLAGGED")
        await self.session.command(b"d STORE 4 +FLAGS.SILENT (\\Deleted)")
        self.assertIn(b"* 4 EXPUNGE\r\n", await self.session.command(b"e EXPUNGE"))
        await self.check(b"a SEARCH $", b"SEARCH 2 4 5")

    async def test_min_max_save_only_what_they_return(self) -> None:
        await self.check(b"a SEARCH RETURN (SAVE MIN) FLAGGED", b'ESEARCH (TAG "a") MIN 2',
                         result=b"OK SEARCH completed, result saved")
        await self.check(b"b SEARCH $", b"SEARCH 2")
        await self.session.command(b"c SEARCH RETURN (SAVE MIN MAX) FLAGGED")
        await self.check(b"d SEARCH $", b"SEARCH 2 6")
        await self.session.command(b"e UID SEARCH RETURN (SAVE MAX COUNT) FLAGGED")
        await self.check(b"f SEARCH $", b"SEARCH 2 4 5 6")

    async def test_failed_save_and_select_empty_the_result(self) -> None:
        await self.session.command(b"s SEARCH RETURN (SAVE) FLAGGED")
        reply = await self.session.command(b"x SEARCH RETURN (SAVE) FROBNICATE")
        self.assertTrue(reply.startswith(b"x BAD "), reply)
        self.assertEqual(await self.session.command(b"f FETCH $ (UID)"), b"f OK FETCH completed\r\n")
        await self.session.command(b"s SEARCH RETURN (SAVE) FLAGGED")
        reply = await self.session.command(b"y SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
        self.assertTrue(reply.startswith(b"y NO [BADCHARSET"), reply)
        self.assertEqual(await self.session.command(b"f FETCH $ (UID)"), b"f OK FETCH completed\r\n")
        await self.session.command(b"s SEARCH RETURN (SAVE) FLAGGED")
        self.assertIn(b"x OK", await self.session.command(b"x SELECT INBOX"))
        await self.check(b"a SEARCH $", b"SEARCH")
        self.assertEqual(await self.session.command(b"c COPY $ INBOX"), b"c OK COPY completed\r\n")

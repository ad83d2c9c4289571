"""STORE, SEARCH, COPY, APPEND, EXPUNGE, CLOSE (RFC 3501 6.3.11, 6.4)."""

from __future__ import annotations

from dataclasses import replace

from imap_harness import IMAPTestCase
from support import CountingExecutor

from mailsrv.imap import candidates, searching

ONE = b"From: Bob <bob@example.test>\r\nSubject: Lunch plans\r\n\r\nPizza at noon?\r\n"
TWO = b"From: carol@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nX-Tag: blue\r\n\r\nSee attached report.\r\n"
THREE = (
    b"From: dave@example.test\r\nSubject: encoded\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"U2VjcmV0IHdvcmQ6IGJhbmFuYQ==\r\n"  # "Secret word: banana"
)


class Store(IMAPTestCase):
    async def test_store_forms(self) -> None:
        await self.deliver(ONE, TWO)
        session = await self.login()
        reply = await session.command(b"A003 STORE 2 +FLAGS (\\deleted)")
        self.assertEqual(reply, b"* 2 FETCH (FLAGS (\\Recent \\Deleted))\r\nA003 OK STORE completed\r\n")
        reply = await session.command(b"A004 STORE 1:2 +FLAGS.SILENT (\\Seen $Work)")
        self.assertEqual(reply, b"A004 OK STORE completed\r\n")
        self.assertEqual(self.inbox.get(1).flags, {"\\Seen", "$Work"})
        reply = await session.command(b"A005 UID STORE 2 -FLAGS (\\Seen)")
        self.assertEqual(reply, b"* 2 FETCH (FLAGS (\\Recent \\Deleted $Work) UID 2)\r\nA005 OK STORE completed\r\n")
        reply = await session.command(b"A006 STORE 1 FLAGS (\\Flagged)")
        self.assertEqual(reply, b"* 1 FETCH (FLAGS (\\Recent \\Flagged))\r\nA006 OK STORE completed\r\n")


class Search(IMAPTestCase):
    async def search(self, criteria: bytes) -> bytes:
        return await self.session.command(b"s SEARCH " + criteria)

    async def test_keys(self) -> None:
        await self.deliver(ONE, TWO, THREE)
        self.successResultOf(self.inbox.store_flags([(2, frozenset({"\\Seen"}))]))
        self.session = await self.login()
        cases = {
            b"SUBJECT lunch": b"1",
            b'SUBJECT "gr\xc3\xbc\xc3\x9fe"': b"2",
            b"FROM carol": b"2",
            b"HEADER X-Tag BLUE": b"2",
            b'HEADER X-Tag ""': b"2",
            b"BODY pizza": b"1",
            b"BODY banana": b"3",
            b"TEXT dave": b"3",
            b"UNSEEN": b"1 3",
            b"SEEN": b"2",
            b"NOT SEEN": b"1 3",
            b"OR SUBJECT lunch FROM dave": b"1 3",
            b"(FROM bob) (SUBJECT lunch)": b"1",
            b"2:*": b"2 3",
            b"UID 1,3": b"1 3",
            b"LARGER 80": b"2 3",
            b"SMALLER 80": b"1",
            b"SINCE 1-Jan-2000": b"1 2 3",
            b"BEFORE 1-Jan-2000": b"",
            b"ALL DELETED": b"",
        }
        for criteria, expected in cases.items():
            reply = await self.search(criteria)
            self.assertEqual(reply, b"* SEARCH" + (b" " + expected if expected else b"") + b"\r\ns OK SEARCH completed\r\n", criteria)

    async def test_uid_search_and_errors(self) -> None:
        await self.deliver(ONE, TWO)
        self.session = await self.login()
        self.successResultOf(self.inbox.expunge([1]))
        await self.session.command(b"n NOOP")
        self.assertEqual(await self.session.command(b"u UID SEARCH FROM carol"), b"* SEARCH 2\r\nu OK SEARCH completed\r\n")
        self.assertTrue((await self.search(b"FROBNICATE")).startswith(b"s BAD"))
        reply = await self.session.command(b"c SEARCH CHARSET KOI8-R ALL")
        self.assertEqual(reply, b"c NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset\r\n")


class SearchPlace(IMAPTestCase):
    """A SEARCH reading no file is answered on the spot in a small folder; others go to the search pool."""

    def setUp(self) -> None:
        super().setUp()
        self.pool = CountingExecutor()
        self.ctx.workers = replace(self.ctx.workers, search=self.pool)

    async def test_flags_only_search_stays_off_the_pool(self) -> None:
        await self.deliver(ONE, TWO, THREE)
        session = await self.login()
        await session.command(b"a STORE 2 +FLAGS (\\Flagged)")
        self.assertEqual(await session.command(b"s SEARCH FLAGGED UNSEEN 1:* LARGER 10"), b"* SEARCH 2\r\ns OK SEARCH completed\r\n")
        self.assertEqual(self.pool.jobs, 0)
        self.assertEqual(await session.command(b"s SEARCH FLAGGED FROM carol"), b"* SEARCH 2\r\ns OK SEARCH completed\r\n")
        self.assertEqual(self.pool.jobs, 1)

    async def test_content_search_makes_its_messages_in_the_pool(self) -> None:
        """The reactor thread notes only where the files are; the Messages are built by the pool's job."""
        made: list[int] = []
        real = candidates.Message

        def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
            made.append(1)
            return real(*args, **kwargs)

        self.patch(candidates, "Message", counted)
        submitted: list[int] = []
        pool_run = self.pool.run
        self.pool.run = lambda fn, *a, **kw: (submitted.append(len(made)), pool_run(fn, *a, **kw))[1]  # type: ignore[method-assign]
        await self.deliver(ONE, TWO, THREE)
        session = await self.login()
        self.assertEqual(await session.command(b"s SEARCH FROM carol"), b"* SEARCH 2\r\ns OK SEARCH completed\r\n")
        self.assertEqual((submitted, len(made)), ([0], 3))

    async def test_big_folder_goes_to_the_pool(self) -> None:
        self.patch(searching, "INLINE_LIMIT", 2)
        await self.deliver(ONE, TWO, THREE)
        session = await self.login()
        self.assertEqual(await session.command(b"s SEARCH UNSEEN"), b"* SEARCH 1 2 3\r\ns OK SEARCH completed\r\n")
        self.assertEqual(self.pool.jobs, 1)


class Copy(IMAPTestCase):
    async def test_copy_and_trycreate(self) -> None:
        await self.deliver(ONE, TWO)
        session = await self.login()
        self.assertEqual(await session.command(b"A003 COPY 2 Archive"), b"A003 NO [TRYCREATE] No such mailbox\r\n")
        await session.command(b"A004 CREATE Archive")
        archive = self.folder("Archive")
        reply = await session.command(b"A005 COPY 1:2 Archive")
        self.assertEqual(reply, b"A005 OK [COPYUID %d 1:2 1:2] COPY completed\r\n" % archive.uidvalidity)
        reply = await session.command(b"A006 UID COPY 2 Archive")
        self.assertEqual(reply, b"A006 OK [COPYUID %d 2 3] COPY completed\r\n" % archive.uidvalidity)
        self.assertEqual([self.successResultOf(archive.read(i.uid)) for i in archive.messages()], [ONE, TWO, TWO])
        self.assertEqual(await session.command(b'A007 COPY 1 "../x"'), b"A007 NO [CANNOT] Invalid mailbox name\r\n")


class Append(IMAPTestCase):
    async def test_append_then_fetch_is_byte_exact(self) -> None:
        session = await self.login()
        message = b"From: Fred Foobar <foobar@Blurdybloop.COM>\r\nSubject: afternoon meeting\r\n\r\nHello Joe\r\n"
        reply = session.send(b'A003 APPEND INBOX (\\Seen \\flagged) " 7-Feb-1994 21:52:25 -0800" {%d}\r\n' % len(message))
        self.assertEqual(reply, b"+ Ready for %d octets of data\r\n" % len(message))
        session.server.dataReceived(message + b"\r\n")
        reply = await session.wait_for(b"A003")
        self.assertEqual(
            reply, b"* 1 EXISTS\r\n* 1 RECENT\r\nA003 OK [APPENDUID %d 1] APPEND completed\r\n" % self.inbox.uidvalidity
        )
        reply = await session.command(b"A004 FETCH 1 (FLAGS INTERNALDATE BODY.PEEK[])")
        self.assertEqual(
            reply,
            b'* 1 FETCH (FLAGS (\\Recent \\Flagged \\Seen) INTERNALDATE "08-Feb-1994 05:52:25 +0000" BODY[] {%d}\r\n%s)\r\n'
            b"A004 OK FETCH completed\r\n" % (len(message), message),
        )

    async def test_append_to_missing_mailbox_says_trycreate(self) -> None:
        session = await self.login(select=None)
        reply = session.send(b"a APPEND Drafts {5}\r\n")
        session.server.dataReceived(b"hello\r\n")
        self.assertEqual(reply + await session.wait_for(b"a"), b"+ Ready for 5 octets of data\r\na NO [TRYCREATE] No such mailbox\r\n")


class Expunge(IMAPTestCase):
    async def test_expunge_numbers_shift_as_sent(self) -> None:
        await self.deliver(*[ONE] * 11)
        session = await self.login()
        await session.command(b"a STORE 3,4,7,11 +FLAGS.SILENT (\\Deleted)")
        reply = await session.command(b"A202 EXPUNGE")
        # RFC 3501 6.4.3's own example.
        self.assertEqual(reply, b"* 3 EXPUNGE\r\n* 3 EXPUNGE\r\n* 5 EXPUNGE\r\n* 8 EXPUNGE\r\nA202 OK EXPUNGE completed\r\n")
        self.assertEqual([i.uid for i in self.inbox.messages()], [1, 2, 5, 6, 8, 9, 10])

    async def test_many_expunges_in_slices_number_as_one_by_one(self) -> None:
        """Past a few, the map is rebuilt in one pass and the store is asked in slices: the
        numbers sent are still those of RFC 3501 6.4.3, lowest first."""
        from unittest import mock

        from mailsrv.imap import selection

        await self.deliver(*[ONE] * 50)
        session = await self.login()
        doomed = [seq for seq in range(1, 51) if seq % 3 != 1]
        with mock.patch.object(selection, "SLICE", 7):
            await session.command(b"a STORE %s +FLAGS.SILENT (\\Deleted)" % b",".join(b"%d" % n for n in doomed))
            reply = await session.command(b"b EXPUNGE")
        expected, shift = [], 0
        for seq in doomed:
            expected.append(b"* %d EXPUNGE\r\n" % (seq - shift))
            shift += 1
        self.assertEqual(reply, b"".join(expected) + b"b OK EXPUNGE completed\r\n")
        self.assertEqual([i.uid for i in self.inbox.messages()], [seq for seq in range(1, 51) if seq % 3 == 1])
        self.assertEqual(await session.command(b"c FETCH 2 UID"), b"* 2 FETCH (UID 4)\r\nc OK FETCH completed\r\n")

    async def test_close_expunges_silently_unless_examined(self) -> None:
        await self.deliver(ONE, TWO)
        session = await self.login()
        await session.command(b"a STORE 1 +FLAGS.SILENT (\\Deleted)")
        await session.command(b"b EXAMINE INBOX")
        self.assertEqual(await session.command(b"c CLOSE"), b"c OK CLOSE completed\r\n")
        self.assertEqual(len(self.inbox.messages()), 2)
        await session.command(b"d SELECT INBOX")
        self.assertEqual(await session.command(b"e CLOSE"), b"e OK CLOSE completed\r\n")
        self.assertEqual(len(self.inbox.messages()), 1)
        self.assertEqual(session.server.state, "auth")
        self.assertEqual(await session.command(b"f CHECK"), b"f BAD Unsupported command\r\n")


#: Three messages for every RFC 3501 6.4.4 key: flags, internal dates, sent dates, addresses and
#: a body in each transfer encoding and charset a client sends (plain, quoted-printable Latin-1,
#: base64 UTF-8 in a multipart). Each is larger than the one before (LARGER, SMALLER).
KEYED = (
    (b"(\\Answered \\Flagged)", b"01-Feb-2020 10:00:00 +0000",
     b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nCc: carol@example.test\r\n"
     b"Date: Mon, 3 Feb 2020 12:00:00 +0000\r\nSubject: Lunch\r\n\r\nPizza at noon?\r\n"),
    (b"(\\Draft $Work)", b"15-Jun-2021 10:00:00 +0000",
     b"From: carol@example.test\r\nTo: dave@example.test\r\nBcc: erin@example.test\r\n"
     b"Date: Sat, 1 Jan 2022 12:00:00 +0000\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
     b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
     b"Un caf=E9 au lait, s'il vous pla=EEt.\r\n"),
    (b"(\\Seen \\Deleted)", b"20-Mar-2023 10:00:00 +0000",
     b"From: dave@example.test\r\nDate: Fri, 10 Mar 2023 12:00:00 +0000\r\nSubject: report\r\n"
     b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
     b"--b\r\nContent-Type: text/plain\r\n\r\nSee the attachment.\r\n"
     b"--b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
     b"U3RyYcOfZSBuYWNoIEvDtmxuLCBkaWUgc2Nob25lIFN0cmHDn2Uu\r\n--b--\r\n"),
)


def utf8(text: str) -> bytes:
    """A UTF-8 search string as a non-synchronising literal (RFC 7888), as clients send one."""
    raw = text.encode()
    return b"{%d+}\r\n" % len(raw) + raw


class SearchEveryKey(IMAPTestCase):
    """Item by item, RFC 3501 6.4.4's search keys under ``CHARSET UTF-8``, the way clients send them."""

    async def test_every_rfc3501_key_with_charset_utf8(self) -> None:
        session = await self.login(select=None)
        for flags, date, message in KEYED:
            reply = await session.command(b'a APPEND INBOX %s "%s" {%d+}\r\n%s' % (flags, date, len(message), message))
            self.assertIn(b"a OK", reply)
        self.assertIn(b"* 3 RECENT\r\n", await session.command(b"s SELECT INBOX"))  # all three \Recent here
        first, _, last = (len(message) for _, _, message in KEYED)
        cases = {
            b"ALL": b"1 2 3",
            b"ANSWERED": b"1", b"UNANSWERED": b"2 3",
            b"DELETED": b"3", b"UNDELETED": b"1 2",
            b"DRAFT": b"2", b"UNDRAFT": b"1 3",
            b"FLAGGED": b"1", b"UNFLAGGED": b"2 3",
            b"SEEN": b"3", b"UNSEEN": b"1 2",
            b"KEYWORD $Work": b"2", b"UNKEYWORD $Work": b"1 3",
            b"RECENT": b"1 2 3", b"NEW": b"1 2", b"OLD": b"",
            b"FROM carol": b"2", b"TO dave": b"2", b"CC carol": b"1", b"BCC erin": b"2",
            b"SUBJECT " + utf8("Grüße"): b"2", b"HEADER Subject " + utf8("Grüße"): b"2",
            b"HEADER MIME-Version 1.0": b"3",
            b"BODY pizza": b"1", b"BODY " + utf8("café"): b"2", b"BODY " + utf8("Köln"): b"3",
            b"TEXT " + utf8("Straße"): b"3", b"TEXT carol": b"1 2", b"TEXT " + utf8("plaît"): b"2",
            b"BEFORE 15-Jun-2021": b"1", b"ON 15-Jun-2021": b"2", b"SINCE 15-Jun-2021": b"2 3",
            b"SENTBEFORE 1-Jan-2022": b"1", b"SENTON 1-Jan-2022": b"2", b"SENTSINCE 1-Jan-2022": b"2 3",
            b"LARGER %d" % first: b"2 3", b"SMALLER %d" % last: b"1 2",
            b"NOT FROM carol": b"1 3", b"OR ANSWERED DRAFT": b"1 2", b"(SEEN DELETED) FROM dave": b"3",
            b"2,3": b"2 3", b"*": b"3", b"UID 2:*": b"2 3", b"NOT OR 1 UID 3": b"2",
        }
        for criteria, expected in cases.items():
            reply = await session.command(b"k SEARCH CHARSET UTF-8 " + criteria)
            self.assertEqual(reply, b"* SEARCH" + (b" " + expected if expected else b"") + b"\r\nk OK SEARCH completed\r\n",
                             criteria)

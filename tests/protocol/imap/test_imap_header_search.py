"""SEARCH on FROM/TO/CC/BCC/SUBJECT by the message cache's key sets, and FETCH of cached items in one write.

Both fast paths must answer exactly as reading every message does
(``folder.cache = None``), over messages that make header decoding hard:
RFC 2047 encoded words, folded and repeated fields, missing fields, MIME
parts, odd dates.  That the fast path ran is seen from the Messages made:
once the rows exist, a header SEARCH makes none but for its hits.
"""

from __future__ import annotations

import base64

from imap_harness import IMAPTestCase

from mailsrv.imap import candidates
from mailsrv.imap.hits import Hits

MESSAGES = [
    b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: Hello world\r\n"
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n\r\nThe quick brown fox.\r\n",
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\r\nSubject: =?utf-8?b?"
    + base64.b64encode("Straße nach Köln".encode()) + b"?=\r\nCc: =?iso-8859-1?q?Fran=E7ois?= <f@example.test>\r\n"
    b"Date: 31 Dec 1999 23:59:60 +1400\r\n\r\nbody\r\n",
    b"From: c@example.test\r\nSubject: multipart\r\n  folded onto two lines\r\nMIME-Version: 1.0\r\n"
    b"Bcc: hidden@example.test\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
    b"Content-Type: text/plain\r\n\r\nFrom: not-a-header@example.test\r\n--XX--\r\n",
    b"Subject: no from, no date\r\nTo: a@example.test\r\nTo: second@example.test\r\n\r\nab\r\n",
    b"From: \r\nSubject:\r\nDate: garbage\r\n\r\nempty fields\r\n",
    b"X-Only: this message has none of the fields\r\n\r\nx\r\n",
    b"From: \"Smith, Bob\" <bob@example.test>, =?utf-8?q?=E2=98=83?= <snow@example.test>\r\n"
    b"Subject: =?utf-8?q?bad=ZZencoding?= and =?unknown-charset?q?x?=\r\nDate: Tue, 1 Jan 2030 00:00:00 GMT\r\n\r\ny\r\n",
]
NEEDLES = ["alice", "ALICE", "example.test", "jürgen", "STRASSE", "straße", "köln", "françois", "", "hidden",
           "folded onto", "multipart  folded", "not-a-header", "second", "smith, bob", "☃", "zz", "x", "nowhere"]
KEYS = [b"FROM", b"TO", b"CC", b"BCC", b"SUBJECT"]


def quoted(text: str) -> bytes:
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def programs() -> list[bytes]:
    out = []
    for needle in NEEDLES:
        q = quoted(needle)
        out += [key + b" " + q for key in KEYS]
        out += [b"NOT FROM " + q, b"OR SUBJECT " + q + b" TO " + q, b"FLAGGED FROM " + q,
                b"HEADER FROM " + q, b"HEADER X-Only " + q, b"FROM " + q + b" SENTBEFORE 1-Jan-2000",
                b"2:5 NOT (CC " + q + b" BCC " + q + b")", b"UID 1:3 SUBJECT " + q]
    return out


class CacheTestCase(IMAPTestCase):
    async def answers(self, session, commands: list[bytes]) -> list[bytes]:
        return [await session.command(command) for command in commands]

    async def as_when_read(self, session, commands: list[bytes]) -> list[bytes]:
        """The answers reading every message, checked to be the same while the rows are made and from them."""
        cache = self.inbox.cache
        self.inbox.cache = None
        read = await self.answers(session, commands)
        self.inbox.cache = cache
        self.assertEqual(await self.answers(session, commands), read)  # rows made on the way
        self.assertEqual(await self.answers(session, commands), read)  # from the rows alone
        return read

    async def expunged_elsewhere(self, count: int, seq: bytes):
        """A session on the first *count* MESSAGES of which another session expunged *seq*, not told yet."""
        await self.deliver(*MESSAGES[:count])
        session = await self.login()
        other = await self.login()
        self.assertIn(b"OK", await other.command(b"A STORE " + seq + b" +FLAGS (\\Deleted)"))
        self.assertIn(b"OK", await other.command(b"B EXPUNGE"))
        return session


class HeaderSearch(CacheTestCase):
    async def test_answers_are_those_of_reading_every_message(self) -> None:
        await self.deliver(*MESSAGES)
        session = await self.login()
        self.assertIn(b"OK", await session.command(b"F STORE 2,7 +FLAGS (\\Flagged)"))
        commands = [b"S UID SEARCH CHARSET UTF-8 " + p for p in programs()]
        commands += [b"E SEARCH RETURN (MIN MAX COUNT) CHARSET UTF-8 FROM " + quoted(n) for n in NEEDLES]
        read = await self.as_when_read(session, commands)
        self.assertIn(b"* SEARCH 2\r\n", read[commands.index(b'S UID SEARCH CHARSET UTF-8 SUBJECT "STRASSE"')])
        self.assertIn(b"* SEARCH 1 2 3 5 7\r\n", read[commands.index(b'S UID SEARCH CHARSET UTF-8 FROM ""')])
        self.assertIn(b"* SEARCH 4 6\r\n", read[commands.index(b'S UID SEARCH CHARSET UTF-8 NOT FROM ""')])

    async def test_once_the_rows_exist_only_hits_are_made(self) -> None:
        await self.deliver(*MESSAGES)
        session = await self.login()
        self.assertIn(b"* SEARCH 1\r\n", await session.command(b"A SEARCH FROM alice"))  # makes the rows
        read, hits = [], []
        real_read, real_add = candidates.Message, Hits.add
        self.patch(candidates, "Message", lambda *a, **kw: (read.append(1), real_read(*a, **kw))[1])
        self.patch(Hits, "add", lambda *a, **kw: (hits.append(1), real_add(*a, **kw))[1])
        self.assertEqual(await session.command(b"B SEARCH OR FROM j\xc3\xbcrgen SUBJECT multipart"),
                         b"* SEARCH 2 3\r\nB OK SEARCH completed\r\n")
        self.assertEqual((len(read), len(hits)), (0, 2))
        # A key the rows cannot answer reads the messages, as before.
        self.assertEqual(await session.command(b"C SEARCH FROM alice BODY fox"), b"* SEARCH 1\r\nC OK SEARCH completed\r\n")
        self.assertEqual(len(read), len(MESSAGES))

    async def test_a_message_expunged_elsewhere_answers_as_when_read(self) -> None:
        session = await self.expunged_elsewhere(2, b"1")
        # The session still has message 1 (a SEARCH sends no EXPUNGE); its file went before its row was made.
        self.assertIn(b"* 1 FETCH (FLAGS", await session.command(b"X SEARCH ALL"))
        commands = [b"C SEARCH FROM alice", b"D SEARCH NOT FROM alice", b"E SEARCH FROM j"]
        read = await self.as_when_read(session, commands)
        self.assertIn(b"* SEARCH 2\r\n", read[2])


class CachedFetch(CacheTestCase):
    async def test_batches_answer_as_reading_the_files(self) -> None:
        await self.deliver(*(MESSAGES * 60))  # more than one batch
        session = await self.login()
        commands = [b"A FETCH 1:* (UID ENVELOPE FLAGS)", b"B UID FETCH 100:250 (BODYSTRUCTURE RFC822.SIZE)",
                    b"C FETCH 3,1,5 (BODY ENVELOPE INTERNALDATE)", b"D FETCH 2:4 (ENVELOPE BODY.PEEK[HEADER.FIELDS (FROM)])"]
        read = await self.as_when_read(session, commands)
        self.assertEqual(read[0].count(b" FETCH (UID "), len(MESSAGES) * 60)

    async def test_a_message_expunged_before_it_was_read_is_left_out(self) -> None:
        session = await self.expunged_elsewhere(3, b"2")
        reply = await session.command(b"C FETCH 1:3 (ENVELOPE)")
        self.assertIn(b"* 1 FETCH (ENVELOPE", reply)
        self.assertIn(b"* 3 FETCH (ENVELOPE", reply)
        self.assertNotIn(b"* 2 FETCH (ENVELOPE", reply)
        self.assertIn(b"C NO [EXPUNGEISSUED]", reply)

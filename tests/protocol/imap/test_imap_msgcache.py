"""The message cache behind FETCH ENVELOPE/BODYSTRUCTURE, SEARCH and SORT: used, and answering as the scan does.

To see that an answer came from the cache and not from the file, a test
rewrites a message file behind the store's back (which nothing else ever
does: Maildir content never changes under its key) and asks again.
"""

from __future__ import annotations

import base64
import glob
import os

from imap_harness import IMAPTestCase

from mailsrv.imap.candidates import Candidates
from mailsrv.store.cache import FILENAME

PLAIN = b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nSubject: Hello world\r\n\r\nThe quick brown fox.\r\n"
#: A corpus where token search and substring search would differ.
TRICKY = [
    PLAIN,
    b"From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\r\nSubject: =?utf-8?b?" + base64.b64encode("Straße".encode())
    + b"?=\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"Gr=FC=DFe aus der Stra=DFe, say \"hi\"\r\n",
    b"From: c@example.test\r\nSubject: multipart\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.b64encode(b"unbelievable secrets inside") + b"\r\n"
    b"--XX\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(b"hidden attachment words") + b"\r\n--XX--\r\n",
    b"Subject: no from\r\n\r\nab\r\n",
]
NEEDLES = [
    "quick", "uick bro", "ck", "o", "", "STRASSE", "straße", "grüße", "\"hi\"", "believ", "secrets inside",
    "hidden", "subject", "example.test", "nowhere", "e a",
]


class MessageCache(IMAPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.user = self.store.user("alice@example.test")

    def files(self) -> list[str]:
        return sorted(glob.glob(os.path.join(self.inbox.path, "cur", "*")) + glob.glob(os.path.join(self.inbox.path, "new", "*")))

    def rewrite(self, content: bytes) -> None:
        """Replace every message file's content behind the store's back (same name)."""
        for path in self.files():
            with open(path, "wb") as f:
                f.write(content.replace(b"\r\n", b"\n"))

    async def test_fetch_envelope_and_bodystructure_come_from_the_cache(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        first = await session.command(b"A FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)")
        self.assertIn(b'"Hello world"', first)
        self.rewrite(b"From: mallory@example.test\r\nSubject: other\r\n\r\nx\r\n")
        self.assertEqual(await session.command(b"B FETCH 1 (ENVELOPE BODYSTRUCTURE BODY)"), first.replace(b"A OK", b"B OK"))

    async def test_search_header_keys_and_sort_read_the_cache(self) -> None:
        await self.deliver(PLAIN, PLAIN.replace(b"Alice <alice", b"Zoe <zoe"))
        session = await self.login()
        self.assertEqual(await session.command(b"A SEARCH FROM alice"), b"* SEARCH 1\r\nA OK SEARCH completed\r\n")
        self.assertEqual(await session.command(b"B SORT (REVERSE FROM) UTF-8 ALL"), b"* SORT 2 1\r\nB OK SORT completed\r\n")
        self.rewrite(b"From: mallory@example.test\r\n\r\nx\r\n")
        self.assertEqual(await session.command(b"C SEARCH FROM alice"), b"* SEARCH 1\r\nC OK SEARCH completed\r\n")
        self.assertEqual(await session.command(b"D SEARCH FROM mallory"), b"* SEARCH\r\nD OK SEARCH completed\r\n")
        self.assertEqual(await session.command(b"E SORT (REVERSE FROM) UTF-8 ALL"), b"* SORT 2 1\r\nE OK SORT completed\r\n")

    async def test_search_body_reads_the_full_text_index(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        self.assertEqual(await session.command(b"A SEARCH BODY fox"), b"* SEARCH 1\r\nA OK SEARCH completed\r\n")
        self.rewrite(b"Subject: x\r\n\r\nnothing\r\n")
        self.assertEqual(await session.command(b"B SEARCH BODY fox"), b"* SEARCH 1\r\nB OK SEARCH completed\r\n")

    async def test_search_body_of_an_indexed_folder_makes_no_message(self) -> None:
        await self.deliver(PLAIN, PLAIN.replace(b"fox", b"cat"))
        session = await self.login()
        made = []
        real = Candidates.message
        self.patch(Candidates, "message", lambda candidates, index: made.append(index) or real(candidates, index))
        self.assertEqual(await session.command(b"A SEARCH BODY fox"), b"* SEARCH 1\r\nA OK SEARCH completed\r\n")
        self.assertEqual(sorted(made), [0, 1])  # indexing: each message read once
        await self.deliver(PLAIN.replace(b"fox", b"fox and hound"))
        self.assertIn(b"* 3 EXISTS", await session.command(b"B NOOP"))
        made.clear()
        self.assertEqual(await session.command(b"C SEARCH OR TEXT hound NOT BODY cat"),
                         b"* SEARCH 1 3\r\nC OK SEARCH completed\r\n")
        self.assertEqual(made, [2])  # only the message the index lacked

    async def test_a_message_gone_before_it_was_indexed_matches_no_text(self) -> None:
        await self.deliver(PLAIN, PLAIN)
        session = await self.login()
        os.remove(self.files()[0])  # gone behind the session's back: its last listing still has it
        self.assertEqual(await session.command(b"A SEARCH NOT BODY nowhere"), b"* SEARCH 2\r\nA OK SEARCH completed\r\n")

    async def search_all(self, session, keys: list[bytes]) -> list[bytes]:
        return [await session.command(b"S SEARCH CHARSET UTF-8 " + key) for key in keys]

    async def test_results_are_those_of_the_scan(self) -> None:
        await self.deliver(*TRICKY)
        session = await self.login()
        keys = []
        for needle in NEEDLES:
            quoted = b'"' + needle.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
            keys += [b"BODY " + quoted, b"TEXT " + quoted, b"FROM " + quoted, b"SUBJECT " + quoted,
                     b"NOT BODY " + quoted, b"OR BODY " + quoted + b" FROM " + quoted]
        self.inbox.cache = None
        scanned = await self.search_all(session, keys)
        self.assertFalse(os.path.exists(os.path.join(self.user.path, FILENAME)))
        self.inbox.cache = self.user.cache
        self.assertEqual(await self.search_all(session, keys), scanned)  # filling the cache
        self.assertEqual(await self.search_all(session, keys), scanned)  # from the cache
        self.assertIn(b"* SEARCH 2\r\n", scanned[keys.index(b'BODY "STRASSE"')])
        self.assertIn(b"* SEARCH 1 2 3 4\r\n", scanned[keys.index(b'BODY ""')])

    async def test_a_copy_keeps_its_entry_after_the_original_is_expunged(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        self.assertIn(b"A OK", await session.command(b"A CREATE Archive"))
        self.assertIn(b"B OK", await session.command(b"B COPY 1 Archive"))
        self.assertIn(b"* SEARCH 1", await session.command(b"C SEARCH BODY quick"))
        self.assertIn(b"D OK", await session.command(b"D STORE 1 +FLAGS (\\Deleted)"))
        self.assertIn(b"E OK", await session.command(b"E EXPUNGE"))
        self.assertIn(b"F OK", await session.command(b"F SELECT Archive"))
        self.assertEqual(await session.command(b"G SEARCH BODY quick"), b"* SEARCH 1\r\nG OK SEARCH completed\r\n")
        self.assertIn(b'"Hello world"', await session.command(b"H FETCH 1 ENVELOPE"))

    async def test_a_corrupt_cache_is_moved_aside_and_rebuilt(self) -> None:
        await self.deliver(PLAIN)
        path = os.path.join(self.user.path, FILENAME)
        with open(path, "wb") as f:
            f.write(b"this is not a database" * 100)
        session = await self.login()
        self.assertEqual(await session.command(b"A SEARCH FROM alice"), b"* SEARCH 1\r\nA OK SEARCH completed\r\n")
        self.assertEqual(len(glob.glob(path + ".corrupt-*")), 1)
        self.rewrite(b"From: mallory@example.test\r\n\r\nx\r\n")
        self.assertEqual(await session.command(b"B SEARCH FROM alice"), b"* SEARCH 1\r\nB OK SEARCH completed\r\n")

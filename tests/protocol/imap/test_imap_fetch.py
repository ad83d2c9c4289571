"""FETCH (RFC 3501 6.4.5, 7.4.2): byte-exact sections, partials, implicit \\Seen."""

from __future__ import annotations

from unittest import mock

from imap_harness import IMAPTestCase

from mailsrv.imap import selection
from mailsrv.imap.responses import EXPUNGE_ISSUED

#: Duplicate and oddly-cased headers: what Twisted's header dict would lose.
PLAIN = (
    b"Received: from a by b; Mon, 7 Feb 1994 21:52:25 -0800\r\n"
    b"Received: from c by a; Mon, 7 Feb 1994 21:52:20 -0800\r\n"
    b"from: Bob <bob@example.test>\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: partial\r\n"
    b"\r\n"
    b"0123456789abcdefghij\r\n"
)

MULTIPART = (
    b"From: bob@example.test\r\n"
    b"Subject: parts\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XyZ"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--XyZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"first part\r\n"
    b"--XyZ\r\n"
    b"Content-Type: application/octet-stream; name=Data.BIN\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=Data.BIN\r\n"
    b"\r\n"
    b"AAEC\r\n"
    b"--XyZ--\r\n"
    b"epilogue\r\n"
)


class Sections(IMAPTestCase):
    async def test_partial_fetch_sends_exactly_the_slice(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BODY.PEEK[]<5.10>")
        self.assertEqual(reply, b"* 1 FETCH (BODY[]<5> {10}\r\n" + PLAIN[5:15] + b")\r\na OK FETCH completed\r\n")
        reply = await session.command(b"b FETCH 1 BODY.PEEK[TEXT]<10.100>")
        self.assertEqual(reply, b"* 1 FETCH (BODY[TEXT]<10> {12}\r\nabcdefghij\r\n)\r\nb OK FETCH completed\r\n")
        reply = await session.command(b"c FETCH 1 BODY.PEEK[]<100000.10>")
        self.assertEqual(reply, b"* 1 FETCH (BODY[]<100000> {0}\r\n)\r\nc OK FETCH completed\r\n")

    async def test_rfc822_size_is_the_octets_sent(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (RFC822.SIZE BODY.PEEK[])")
        self.assertEqual(
            reply,
            b"* 1 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\na OK FETCH completed\r\n" % (len(PLAIN), len(PLAIN), PLAIN),
        )
        reply = await session.command(b"b FETCH 1 RFC822")
        self.assertIn(b"RFC822 {%d}\r\n%s" % (len(PLAIN), PLAIN), reply)

    async def test_header_sections(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        header = PLAIN[: PLAIN.index(b"\r\n\r\n") + 4]
        reply = await session.command(b"a FETCH 1 (BODY.PEEK[HEADER] RFC822.HEADER)")
        self.assertEqual(
            reply,
            b"* 1 FETCH (BODY[HEADER] {%d}\r\n%s RFC822.HEADER {%d}\r\n%s)\r\na OK FETCH completed\r\n"
            % (len(header), header, len(header), header),
        )
        reply = await session.command(b"b FETCH 1 BODY.PEEK[HEADER.FIELDS (FROM received)]")
        fields = PLAIN[: PLAIN.index(b"To:")] + b"\r\n"
        self.assertEqual(
            reply,
            b"* 1 FETCH (BODY[HEADER.FIELDS (FROM RECEIVED)] {%d}\r\n%s)\r\nb OK FETCH completed\r\n" % (len(fields), fields),
        )
        reply = await session.command(b"c FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Received From To)]")
        self.assertIn(b"{20}\r\nSubject: partial\r\n\r\n)", reply)

    async def test_multipart_sections_and_structure(self) -> None:
        await self.deliver(MULTIPART)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BODY.PEEK[1] BODY.PEEK[2] BODY.PEEK[2.MIME] BODY.PEEK[3])")
        mime = (
            b"Content-Type: application/octet-stream; name=Data.BIN\r\n"
            b"Content-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=Data.BIN\r\n\r\n"
        )
        self.assertEqual(
            reply,
            b"* 1 FETCH (BODY[1] {10}\r\nfirst part BODY[2] {4}\r\nAAEC BODY[2.MIME] {%d}\r\n%s BODY[3] NIL)\r\n"
            b"a OK FETCH completed\r\n" % (len(mime), mime),
        )
        reply = await session.command(b"b FETCH 1 BODYSTRUCTURE")
        self.assertEqual(
            reply,
            # "first part" ends without a CRLF of its own: 0 lines (RFC 2046 5.1.1).
            b'* 1 FETCH (BODYSTRUCTURE (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 0 NIL NIL NIL NIL)'
            b'("APPLICATION" "OCTET-STREAM" ("NAME" "Data.BIN") NIL NIL "BASE64" 4 NIL ("ATTACHMENT" ("FILENAME" "Data.BIN")) NIL NIL)'
            b' "MIXED" ("BOUNDARY" "XyZ") NIL NIL NIL))\r\nb OK FETCH completed\r\n',
        )
        reply = await session.command(b"c FETCH 1 BODY")
        self.assertIn(b'BODY (("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 10 0)', reply)

    async def test_envelope_and_single_part_structure(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        reply = await session.command(b"a UID FETCH 1 (ENVELOPE BODYSTRUCTURE)")
        self.assertEqual(
            reply,
            b'* 1 FETCH (UID 1 ENVELOPE (NIL "partial" (("Bob" NIL "bob" "example.test")) (("Bob" NIL "bob" "example.test"))'
            b' (("Bob" NIL "bob" "example.test")) ((NIL NIL "alice" "example.test")) NIL NIL NIL NIL)'
            b' BODYSTRUCTURE ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 22 1 NIL NIL NIL NIL))\r\n'
            b"a OK FETCH completed\r\n",
        )

    async def test_bad_fetch_attribute_is_bad_not_fatal(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        self.assertTrue((await session.command(b"a FETCH 1 (BOGUS)")).startswith(b"a BAD"))
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")


class ImplicitSeen(IMAPTestCase):
    async def test_body_sets_seen_and_reports_it(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BODY[TEXT]")
        self.assertEqual(
            reply,
            b"* 1 FETCH (BODY[TEXT] {22}\r\n0123456789abcdefghij\r\n FLAGS (\\Recent \\Seen))\r\na OK FETCH completed\r\n",
        )
        self.assertEqual(self.inbox.get(1).flags, {"\\Seen"})

    async def test_peek_leaves_flags_alone(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BODY.PEEK[] FLAGS)")
        self.assertIn(b"FLAGS (\\Recent))", reply)
        self.assertEqual(self.inbox.get(1).flags, set())

    async def test_examine_never_sets_seen(self) -> None:
        await self.deliver(PLAIN)
        session = await self.login(select=b"INBOX")
        await session.command(b"x EXAMINE INBOX")
        reply = await session.command(b"a FETCH 1 RFC822")
        self.assertNotIn(b"FLAGS", reply)
        self.assertEqual(self.inbox.get(1).flags, set())


class Slices(IMAPTestCase):
    """A big FETCH goes :data:`selection.SLICE` messages per reactor turn, each slice's views made then."""

    async def setUp(self) -> None:
        super().setUp()
        patcher = mock.patch.object(selection, "SLICE", 10)
        patcher.start()
        self.addCleanup(patcher.stop)
        await self.deliver(*[PLAIN] * 25)
        self.session = await self.login()
        self.other = await self.login()

    @staticmethod
    def lines(seqs: range, flags: dict[int, bytes] | None = None) -> bytes:
        flags = flags or {}
        return b"".join(b"* %d FETCH (UID %d FLAGS (%s))\r\n" % (n, n, flags.get(n, b"\\Recent")) for n in seqs)

    async def test_one_slice_per_turn_each_as_the_folder_is_then(self) -> None:
        first = self.session.send(b"f UID FETCH 1:* (FLAGS)\r\n")
        self.assertEqual(first, self.lines(range(1, 11)))  # the rest waits for the next turns
        await self.other.command(b"s STORE 25 +FLAGS (\\Flagged)")
        rest = await self.session.wait_for(b"f")
        self.assertEqual(
            rest,
            self.lines(range(11, 26), {25: b"\\Recent \\Flagged"})
            + b"* 25 FETCH (FLAGS (\\Recent \\Flagged))\r\n"  # told after the FETCH as well (RFC 3501 7.4.1)
            + b"f OK FETCH completed\r\n",
        )

    async def test_a_message_expunged_between_slices_is_left_out(self) -> None:
        self.assertEqual(self.session.send(b"f FETCH 1:* (UID FLAGS)\r\n"), self.lines(range(1, 11)))
        await self.other.command(b"s STORE 12 +FLAGS.SILENT (\\Deleted)")
        await self.other.command(b"e EXPUNGE")
        rest = await self.session.wait_for(b"f")
        self.assertEqual(  # RFC 2180 4.1.2; the EXPUNGE waits for a command that allows it (RFC 3501 7.4.1)
            rest,
            self.lines(range(11, 12)) + self.lines(range(13, 26))
            + b"* 12 FETCH (FLAGS (\\Recent \\Deleted))\r\n"
            + b"f NO " + EXPUNGE_ISSUED + b"\r\n",
        )

    async def test_no_slice_goes_before_the_client_read_the_last(self) -> None:
        producer = self.session.transport.producer
        producer.pauseProducing()  # the client stopped reading
        self.session.send(b"f UID FETCH 1:* (FLAGS)\r\n")
        for _ in range(5):
            self.session.clock.advance(0)
        self.assertEqual(self.session.received(), b"")
        for seqs, end in ((range(1, 11), b""), (range(11, 21), b""), (range(21, 26), b"f OK FETCH completed\r\n")):
            producer.resumeProducing()  # it read, and stops again
            producer.pauseProducing()
            self.session.clock.advance(0)
            self.assertEqual(self.session.received(), self.lines(seqs) + end)

"""BINARY (RFC 3516): FETCH BINARY[], BINARY.PEEK[], BINARY.SIZE[] and APPEND with literal8."""

from __future__ import annotations

import base64

from imap_harness import IMAPTestCase

#: The attachment's content: NUL octets, a bare LF, high octets.
PAYLOAD = b"\x00\x01\x02PNG\r\n\x1a\n\x00\xff\xfe end"

MIXED = (
    b"From: bob@example.test\r\n"
    b"Subject: binary\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="XyZ"\r\n'
    b"\r\n"
    b"--XyZ\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"caf=C3=A9 and a soft=\r\n"
    b" break\r\n"
    b"--XyZ\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: BASE64\r\n"
    b"\r\n"
    + base64.encodebytes(PAYLOAD).replace(b"\n", b"\r\n").rstrip(b"\r\n")
    + b"\r\n"
    b"--XyZ\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: x-uuencode\r\n"
    b"\r\n"
    b"begin 644 x\r\n"
    b"--XyZ\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"Subject: inner\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"aGk=\r\n"
    b"--XyZ--\r\n"
)

def _part(n: int) -> bytes:
    """BODY[n] of MIXED, as stored."""
    return MIXED.split(b"--XyZ")[n].split(b"\r\n\r\n", 1)[1][:-2]


class FetchBinary(IMAPTestCase):
    async def test_base64_with_nul_comes_as_literal8(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BINARY.PEEK[2]")
        self.assertEqual(
            reply, b"* 1 FETCH (BINARY[2] ~{%d}\r\n%s)\r\na OK FETCH completed\r\n" % (len(PAYLOAD), PAYLOAD)
        )

    async def test_quoted_printable_without_nul_is_a_normal_literal(self) -> None:
        """RFC 3516 4.3: without NUL the server SHOULD send a string, not a literal8."""
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BINARY.PEEK[1]")
        decoded = "café and a soft break".encode()
        self.assertEqual(
            reply, b"* 1 FETCH (BINARY[1] {%d}\r\n%s)\r\na OK FETCH completed\r\n" % (len(decoded), decoded)
        )

    async def test_partial_counts_decoded_octets(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BINARY.PEEK[2]<3.3>")
        self.assertEqual(reply, b"* 1 FETCH (BINARY[2]<3> {3}\r\nPNG)\r\na OK FETCH completed\r\n")
        reply = await session.command(b"b FETCH 1 BINARY.PEEK[2]<8.100>")
        rest = PAYLOAD[8:]
        self.assertEqual(reply, b"* 1 FETCH (BINARY[2]<8> ~{%d}\r\n%s)\r\nb OK FETCH completed\r\n" % (len(rest), rest))

    async def test_size_matches_what_binary_sends(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BINARY.SIZE[2] BINARY.SIZE[1] FLAGS)")
        decoded = "café and a soft break".encode()
        self.assertEqual(
            reply,
            b"* 1 FETCH (BINARY.SIZE[2] %d BINARY.SIZE[1] %d FLAGS (\\Recent))\r\na OK FETCH completed\r\n"
            % (len(PAYLOAD), len(decoded)),
        )
        self.assertEqual(self.inbox.get(1).flags, set())  # BINARY.SIZE does not set \Seen

    async def test_unknown_encoding_is_no_unknown_cte(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BINARY.PEEK[3]")
        self.assertTrue(reply.startswith(b"a NO [UNKNOWN-CTE] "), reply)
        reply = await session.command(b"b FETCH 1 BINARY.SIZE[3]")
        self.assertTrue(reply.startswith(b"b NO [UNKNOWN-CTE] "), reply)
        self.assertEqual(await session.command(b"c NOOP"), b"c OK NOOP completed\r\n")

    async def test_non_leaf_parts_are_sent_as_stored(self) -> None:
        """A multipart or message/rfc822 has an identity encoding (RFC 2045 6.4): BINARY[] is BODY[]."""
        await self.deliver(MIXED)
        session = await self.login()
        whole = await session.command(b"a FETCH 1 BINARY.PEEK[]")
        self.assertEqual(whole, b"* 1 FETCH (BINARY[] {%d}\r\n%s)\r\na OK FETCH completed\r\n" % (len(MIXED), MIXED))
        inner = _part(4)
        reply = await session.command(b"b FETCH 1 BINARY.PEEK[4]")
        self.assertEqual(reply, b"* 1 FETCH (BINARY[4] {%d}\r\n%s)\r\nb OK FETCH completed\r\n" % (len(inner), inner))
        reply = await session.command(b"c FETCH 1 BINARY.PEEK[4.1]")  # the leaf inside is decoded
        self.assertEqual(reply, b"* 1 FETCH (BINARY[4.1] {2}\r\nhi)\r\nc OK FETCH completed\r\n")

    async def test_single_part_message(self) -> None:
        message = b"Subject: one\r\nContent-Transfer-Encoding: base64\r\n\r\nAAB4\r\n"
        await self.deliver(message)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[1])")
        self.assertEqual(reply, b"* 1 FETCH (BINARY[1] ~{3}\r\n\x00\x00x BINARY.SIZE[1] 3)\r\na OK FETCH completed\r\n")
        reply = await session.command(b"b FETCH 1 BINARY.PEEK[]")
        header = message[: message.index(b"\r\n\r\n") + 4]
        self.assertEqual(reply, b"* 1 FETCH (BINARY[] ~{%d}\r\n%s\x00\x00x)\r\nb OK FETCH completed\r\n"
                         % (len(header) + 3, header))

    async def test_no_such_part_is_nil(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BINARY.PEEK[9] BINARY.SIZE[9])")
        self.assertEqual(reply, b"* 1 FETCH (BINARY[9] NIL BINARY.SIZE[9] 0)\r\na OK FETCH completed\r\n")

    async def test_binary_sets_seen_and_peek_does_not(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BINARY.PEEK[1]")
        self.assertNotIn(b"\\Seen", reply)
        self.assertEqual(self.inbox.get(1).flags, set())
        reply = await session.command(b"b FETCH 1 BINARY[1]")
        self.assertIn(b" FLAGS (\\Recent \\Seen))\r\n", reply)
        self.assertEqual(self.inbox.get(1).flags, {"\\Seen"})

    async def test_syntax(self) -> None:
        await self.deliver(MIXED)
        session = await self.login()
        for bad in (b"BINARY[1.TEXT]", b"BINARY[HEADER]", b"BINARY", b"BINARY.SIZE[1]<0.1>", b"BINARY[1]<1>",
                    b"BINARY[0]", b"BINARY.PEEK[1"):
            reply = await session.command(b"a FETCH 1 " + bad)
            self.assertTrue(reply.startswith(b"a BAD"), (bad, reply))

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


#: A message whose body is raw binary (CTE binary), with NULs and CRLF line ends only.
BINARY_MESSAGE = (
    b"Subject: raw\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
    b"\x00\x01\x02\xff\r\n\x00end"
)


class AppendLiteral8(IMAPTestCase):
    async def test_literal8_is_stored_octet_for_octet(self) -> None:
        """RFC 3516 4.4: APPEND's message as a literal8 ``~{n}`` after the continuation."""
        session = await self.login()
        invite = session.send(b"a APPEND INBOX ~{%d}\r\n" % len(BINARY_MESSAGE))
        self.assertTrue(invite.startswith(b"+ "), invite)
        session.server.dataReceived(BINARY_MESSAGE + b"\r\n")
        self.assertIn(b"a OK [APPENDUID ", await session.wait_for(b"a"))
        reply = await session.command(b"b FETCH 1 BINARY.PEEK[1]")
        body = BINARY_MESSAGE.split(b"\r\n\r\n", 1)[1]
        self.assertEqual(reply, b"* 1 FETCH (BINARY[1] ~{%d}\r\n%s)\r\nb OK FETCH completed\r\n" % (len(body), body))
        reply = await session.command(b"c FETCH 1 RFC822.SIZE")
        self.assertIn(b"RFC822.SIZE %d)" % len(BINARY_MESSAGE), reply)

    async def test_body_sections_send_nul_as_0x80(self) -> None:
        """RFC 3501 9: a plain literal cannot carry NUL; BODY[] and RFC822 keep the length, 0x80 for NUL."""
        session = await self.login()
        session.server.dataReceived(b"a APPEND INBOX ~{%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE + b"\r\n")
        self.assertIn(b"a OK [APPENDUID ", await session.wait_for(b"a"))
        shown = BINARY_MESSAGE.replace(b"\0", b"\x80")
        body = shown.split(b"\r\n\r\n", 1)[1]
        for item, label, data in ((b"BODY.PEEK[]", b"BODY[]", shown), (b"RFC822.PEEK", b"RFC822", shown),
                                  (b"BODY.PEEK[TEXT]<1.6>", b"BODY[TEXT]<1>", body[1:7]),
                                  (b"BODY.PEEK[1]", b"BODY[1]", body)):
            reply = await session.command(b"b FETCH 1 " + item.replace(b"RFC822.PEEK", b"RFC822"))
            self.assertIn(b"* 1 FETCH (%s {%d}\r\n%s" % (label, len(data), data), reply, item)
            self.assertNotIn(b"\0", reply)
        reply = await session.command(b"c FETCH 1 BINARY.PEEK[]")
        self.assertIn(b"BINARY[] ~{%d}\r\n%s)" % (len(BINARY_MESSAGE), BINARY_MESSAGE), reply)

    async def test_non_synchronising_literal8(self) -> None:
        """LITERAL+ (RFC 7888) and literal8 together: ``~{n+}``, no continuation."""
        session = await self.login()
        session.server.dataReceived(b"a APPEND INBOX ~{%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE + b"\r\n")
        reply = await session.wait_for(b"a")
        self.assertNotIn(b"+ ", reply)
        self.assertIn(b"a OK [APPENDUID ", reply)
        self.assertEqual(len(self.inbox.messages()), 1)

    async def test_nul_in_a_normal_literal_is_bad(self) -> None:
        """RFC 3501 9: literal = "{" number "}" CRLF *CHAR8, and CHAR8 excludes NUL."""
        session = await self.login()
        session.server.dataReceived(b"a APPEND INBOX {%d+}\r\n" % len(BINARY_MESSAGE) + BINARY_MESSAGE + b"\r\nb NOOP\r\n")
        reply = await session.wait_for(b"b")
        self.assertEqual(reply, b"a BAD NUL octet in a literal, use a literal8 (RFC 3516)\r\nb OK NOOP completed\r\n")
        self.assertEqual(self.inbox.messages(), [])

    async def test_spooled_literal8_is_checked_too(self) -> None:
        """Past the line budget the message goes to a spool file, checked chunk by chunk."""
        session = await self.login()
        big = BINARY_MESSAGE + b"x" * (self.ctx.config.limits.imap_max_line_length + 10)
        session.server.dataReceived(b"a APPEND INBOX {%d+}\r\n" % len(big) + big + b"\r\n")
        self.assertTrue((await session.wait_for(b"a")).startswith(b"a BAD NUL"))
        session.server.dataReceived(b"b APPEND INBOX ~{%d+}\r\n" % len(big) + big + b"\r\n")
        self.assertIn(b"b OK [APPENDUID ", await session.wait_for(b"b"))

    async def test_bare_lf_in_literal8_is_unknown_cte(self) -> None:
        """The store keeps LF line ends, so it could not give a bare LF back: RFC 3516 4.4's NO."""
        session = await self.login()
        message = BINARY_MESSAGE + b"\n\x00"
        session.server.dataReceived(b"a APPEND INBOX ~{%d+}\r\n" % len(message) + message + b"\r\nb NOOP\r\n")
        reply = await session.wait_for(b"b")
        self.assertTrue(reply.startswith(b"a NO [UNKNOWN-CTE] "), reply)
        self.assertTrue(reply.endswith(b"b OK NOOP completed\r\n"))
        self.assertEqual(self.inbox.messages(), [])

    async def test_literal8_with_a_cr_at_a_chunk_end_is_not_a_bare_lf(self) -> None:
        session = await self.login()
        session.send(b"a APPEND INBOX ~{%d}\r\n" % len(BINARY_MESSAGE))
        cut = BINARY_MESSAGE.index(b"\xff\r\n") + 2  # between the CR and its LF
        session.server.dataReceived(BINARY_MESSAGE[:cut])
        session.server.dataReceived(BINARY_MESSAGE[cut:] + b"\r\n")
        self.assertIn(b"a OK [APPENDUID ", await session.wait_for(b"a"))

    async def test_literal8_only_for_the_message(self) -> None:
        session = await self.login()
        session.server.dataReceived(b"a APPEND ~{5+}\r\nINBOX {4+}\r\nab\r\n\r\nb CREATE ~{3+}\r\nBox\r\nc NOOP\r\n")
        reply = await session.wait_for(b"c")
        self.assertTrue(reply.startswith(b"a BAD"), reply)
        self.assertIn(b"\r\nb BAD", reply)
        self.assertTrue(reply.endswith(b"c OK NOOP completed\r\n"))

    async def test_literal8_over_the_limit_is_toobig(self) -> None:
        session = await self.login()
        size = self.ctx.config.limits.imap_max_literal_size + 1
        self.assertTrue(session.send(b"a APPEND INBOX ~{%d}\r\n" % size).startswith(b"a NO [TOOBIG]"))
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")

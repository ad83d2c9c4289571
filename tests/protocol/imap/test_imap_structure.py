"""ENVELOPE group syntax and BODYSTRUCTURE line counts (RFC 3501 7.4.2),
checked against what Dovecot answers for the same message.
"""

from __future__ import annotations

from imap_harness import IMAPTestCase

GROUPS = (
    b"From: bob@example.test\r\n"
    b"To: alice@example.test, undisclosed-recipients:;\r\n"
    b'Cc: Group: bob@example.test, "Carl" <carl@remote.test>;\r\n'
    b"Subject: groups\r\n"
    b"\r\n"
    b"Hi.\r\n"
)

#: Parts whose last line has no CRLF of its own: it belongs to the boundary.
NESTED = (
    b"From: bob@example.test\r\n"
    b'Content-Type: multipart/mixed; boundary="OUTER"\r\n'
    b"\r\n"
    b"--OUTER\r\n"
    b'Content-Type: multipart/alternative; boundary="INNER"\r\n'
    b"\r\n"
    b"--INNER\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"first line\r\n"
    b"second line\r\n"
    b"--INNER\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>Hello</p>\r\n"
    b"--INNER--\r\n"
    b"--OUTER\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"\r\n"
    b"From: inner@remote.test\r\n"
    b"\r\n"
    b"inner body line 1\r\n"
    b"inner body line 2\r\n"
    b"--OUTER--\r\n"
)


class Envelope(IMAPTestCase):
    async def test_groups_have_start_and_end_markers(self) -> None:
        await self.deliver(GROUPS)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 ENVELOPE")
        # Dovecot's answer: group start (NIL NIL "name" NIL), end (NIL NIL NIL NIL).
        self.assertIn(
            b' ((NIL NIL "alice" "example.test")(NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL))'
            b' ((NIL NIL "Group" NIL)(NIL NIL "bob" "example.test")("Carl" NIL "carl" "remote.test")(NIL NIL NIL NIL))'
            b" NIL NIL NIL)",
            reply,
        )


class LineCounts(IMAPTestCase):
    async def test_an_8bit_header_does_not_fail_the_fetch(self) -> None:
        """Raw 8-bit header octets (common in a Subject) come out of the parser as characters:
        ENVELOPE answers with them as UTF-8 literals instead of failing the whole FETCH."""
        await self.deliver(b"From: \xc3\xa9mile <emile@example.test>\r\nSubject: caf\xc3\xa9\r\n\r\nbody\r\n")
        session = await self.login()
        reply = await session.command(b"a FETCH 1 ENVELOPE")
        self.assertTrue(reply.endswith(b"a OK FETCH completed\r\n"), reply)
        self.assertIn(b' NIL "emile" "example.test"))', reply)

    async def test_lines_are_the_line_ends_in_each_part(self) -> None:
        await self.deliver(NESTED)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 BODY")
        self.assertEqual(
            reply,
            b'* 1 FETCH (BODY ((("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "7BIT" 23 1)'
            b'("TEXT" "HTML" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 12 0) "ALTERNATIVE")'
            b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 63 (NIL NIL ((NIL NIL "inner" "remote.test"))'
            b' ((NIL NIL "inner" "remote.test")) ((NIL NIL "inner" "remote.test")) NIL NIL NIL NIL NIL)'
            b' ("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 36 1) 3) "MIXED"))\r\n'
            b"a OK FETCH completed\r\n",
        )

"""UTF8=ACCEPT (RFC 6855): UTF-8 names, quoted strings and APPEND after ``ENABLE UTF8=ACCEPT``.

A session that did not enable it keeps modified UTF-7 names (RFC 3501 5.1.3)
and may still APPEND 8-bit header fields as a plain literal (a migration's
old mail, against RFC 6855 4's NO: mailsrv/imap/utf8accept.py says why); stored messages with
UTF-8 headers reach it unchanged (no downgrade, RFC 6855 7).
"""

from __future__ import annotations

from imap_harness import IMAPTestCase, Session

#: "Entwürfe" in UTF-8 and in modified UTF-7.
DRAFTS_UTF8 = "Entwürfe".encode("utf-8")
DRAFTS_UTF7 = b"Entw&APw-rfe"
#: A message with a UTF-8 From and Subject (RFC 6532).
UTF8_MESSAGE = "From: Jürgen <jürgen@bücher.example>\r\nSubject: Grüße\r\n\r\nHallo.\r\n".encode("utf-8")


class UTF8Case(IMAPTestCase):
    async def utf8(self, select: bytes | None = None) -> Session:
        """A session logged in as alice that enabled UTF8=ACCEPT."""
        session = await self.login(select=None)
        self.assertEqual(
            await session.command(b"E ENABLE UTF8=ACCEPT"), b"* ENABLED UTF8=ACCEPT\r\nE OK ENABLE completed\r\n"
        )
        if select is not None:
            self.assertIn(b"S OK", await session.command(b"S SELECT " + select))
        return session


class Enable(UTF8Case):
    async def test_capability_offers_it(self) -> None:
        session = self.open()
        session.received()
        capabilities = (await session.command(b"c CAPABILITY")).split(b"\r\n")[0].split(b" ")
        self.assertIn(b"UTF8=ACCEPT", capabilities)

    async def test_enable_names_it_once_and_case_does_not_matter(self) -> None:
        session = await self.utf8()
        self.assertEqual(await session.command(b"a ENABLE utf8=accept"), b"* ENABLED\r\na OK ENABLE completed\r\n")


class Names(UTF8Case):
    async def test_create_list_status_select_in_utf8(self) -> None:
        session = await self.utf8()
        self.assertIn(b"a OK", await session.command(b'a CREATE "' + DRAFTS_UTF8 + b'"'))
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "' + DRAFTS_UTF8 + b'"\r\n', await session.command(b'b LIST "" "Entw*"'))
        self.assertIn(b'* STATUS "' + DRAFTS_UTF8 + b'" (MESSAGES 0)\r\n',
                      await session.command(b'c STATUS "' + DRAFTS_UTF8 + b'" (MESSAGES)'))
        self.assertIn(b"d OK [READ-WRITE]", await session.command(b'd SELECT "' + DRAFTS_UTF8 + b'"'))
        self.assertEqual(self.successResultOf(self.store.user("alice@example.test").list_folders()).count("Entwürfe"), 1)

    async def test_an_ampersand_is_an_ampersand(self) -> None:
        session = await self.utf8()
        self.assertIn(b"a OK", await session.command(b'a CREATE "R&D"'))
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "R&D"\r\n', await session.command(b'b LIST "" "R*"'))
        rev1 = await self.login(select=None)
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "R&-D"\r\n', await rev1.command(b'c LIST "" "R*"'))

    async def test_a_session_without_it_still_gets_modified_utf7(self) -> None:
        session = await self.utf8()
        await session.command(b'a CREATE "' + DRAFTS_UTF8 + b'"')
        rev1 = await self.login(select=None)
        reply = await rev1.command(b'b LIST "" "Entw*"')
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "' + DRAFTS_UTF7 + b'"\r\n', reply)
        self.assertNotIn(DRAFTS_UTF8, reply)
        self.assertIn(b"c OK", await rev1.command(b"c SELECT " + DRAFTS_UTF7))

    async def test_invalid_utf8_in_a_quoted_name_is_bad(self) -> None:
        session = await self.utf8()
        reply = await session.command(b'a CREATE "Entw\xfcrfe"')  # Latin-1, not UTF-8
        self.assertEqual(reply, b"a BAD Illegal syntax: Invalid UTF-8 in a quoted string\r\n")
        self.assertEqual(await session.command(b'b CREATE "\xc0\xafx"'), b"b BAD Illegal syntax: Invalid UTF-8 in a quoted string\r\n")

    async def test_invalid_utf8_in_a_literal_name_is_no_cannot(self) -> None:
        session = await self.utf8()
        self.assertTrue(session.send(b"a CREATE {4}\r\n").startswith(b"+ "))
        session.server.dataReceived(b"x\xff\xfey\r\n")
        self.assertEqual(await session.wait_for(b"a"), b"a NO [CANNOT] Invalid mailbox name\r\n")

    async def test_a_control_character_in_a_name_is_refused(self) -> None:
        session = await self.utf8()
        reply = await session.command(b'a CREATE "a\xc2\x85b"')  # U+0085, a C1 control: RFC 6855 3
        self.assertEqual(reply, b"a NO [CANNOT] Invalid mailbox name\r\n")

    async def test_utf7_spelling_is_a_plain_name_after_enabling(self) -> None:
        session = await self.utf8()
        self.assertIn(b"a OK", await session.command(b"a CREATE " + DRAFTS_UTF7))
        self.assertIn("Entw&APw-rfe", self.successResultOf(self.store.user("alice@example.test").list_folders()))


class Search(UTF8Case):
    async def setUp(self) -> None:  # type: ignore[override]
        super().setUp()
        await self.deliver(UTF8_MESSAGE, b"From: bob@example.test\r\nSubject: plain\r\n\r\nx\r\n")

    async def test_search_with_charset_is_bad(self) -> None:
        session = await self.utf8(select=b"INBOX")
        reply = await session.command(b'a SEARCH CHARSET UTF-8 SUBJECT "Gr\xc3\xbc\xc3\x9fe"')
        self.assertEqual(reply, b"a BAD No CHARSET after ENABLE UTF8=ACCEPT: strings are UTF-8\r\n")

    async def test_search_takes_utf8_in_a_quoted_string(self) -> None:
        session = await self.utf8(select=b"INBOX")
        reply = await session.command(b'a SEARCH SUBJECT "Gr\xc3\xbc\xc3\x9fe"')
        self.assertEqual(reply, b"* SEARCH 1\r\na OK SEARCH completed\r\n")

    async def test_sort_takes_only_utf8_as_its_charset(self) -> None:
        session = await self.utf8(select=b"INBOX")
        self.assertEqual(await session.command(b"a SORT (SUBJECT) US-ASCII ALL"),
                         b"a BAD Only CHARSET UTF-8 after ENABLE UTF8=ACCEPT\r\n")
        self.assertEqual(await session.command(b"b SORT (SUBJECT) UTF-8 ALL"), b"* SORT 1 2\r\nb OK SORT completed\r\n")

    async def test_search_with_charset_still_works_without_it(self) -> None:
        session = await self.login()
        reply = await session.command(b'a SEARCH CHARSET UTF-8 SUBJECT "Gr\xc3\xbc\xc3\x9fe"')
        self.assertEqual(reply, b"* SEARCH 1\r\na OK SEARCH completed\r\n")


class Append(UTF8Case):
    async def append(self, session: Session, head: bytes, message: bytes, tail: bytes = b"") -> bytes:
        """``a APPEND`` with *message* as a synchronising literal, after the ``+``."""
        invite = session.send(head + b"{%d}\r\n" % len(message))
        self.assertTrue(invite.startswith(b"+ "), invite)
        session.server.dataReceived(message + tail + b"\r\n")
        return await session.wait_for(b"a")

    async def test_the_utf8_item_stores_the_message_as_it_came(self) -> None:
        session = await self.utf8()
        reply = await self.append(session, b"a APPEND INBOX UTF8 (~", UTF8_MESSAGE, b")")
        self.assertIn(b"a OK [APPENDUID ", reply)
        self.assertIn(b"b OK", await session.command(b"b EXAMINE INBOX"))
        reply = await session.command(b"c FETCH 1 BODY.PEEK[]")
        self.assertEqual(reply, b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\nc OK FETCH completed\r\n" % (len(UTF8_MESSAGE), UTF8_MESSAGE))

    async def test_the_utf8_item_with_flags_and_date(self) -> None:
        session = await self.utf8()
        reply = await self.append(session, b'a APPEND INBOX (\\Seen) "17-Jul-1996 02:44:25 -0700" UTF8 (~', UTF8_MESSAGE, b")")
        self.assertIn(b"a OK [APPENDUID ", reply)
        self.assertEqual(self.inbox.messages()[0].flags, frozenset({"\\Seen"}))

    async def test_the_utf8_item_needs_its_closing_parenthesis(self) -> None:
        session = await self.utf8()
        reply = await self.append(session, b"a APPEND INBOX UTF8 (~", UTF8_MESSAGE)
        self.assertEqual(reply, b"a BAD Illegal syntax: Missing ) after the UTF8 message\r\n")
        self.assertEqual(self.inbox.messages(), [])

    async def test_the_utf8_item_without_enable_is_bad(self) -> None:
        session = await self.login(select=None)
        reply = await self.append(session, b"a APPEND INBOX UTF8 (~", UTF8_MESSAGE, b")")
        self.assertEqual(reply, b"a BAD APPEND's UTF8 item needs ENABLE UTF8=ACCEPT\r\n")

    async def test_8bit_headers_without_enable_are_stored_as_sent(self) -> None:
        session = await self.login(select=None)
        reply = await self.append(session, b"a APPEND INBOX ", UTF8_MESSAGE)
        self.assertIn(b"a OK [APPENDUID ", reply)
        reply = await session.command(b"b SELECT INBOX")
        reply = await session.command(b"c FETCH 1 BODY.PEEK[]")
        self.assertIn(b"{%d}\r\n%s)" % (len(UTF8_MESSAGE), UTF8_MESSAGE), reply)

    async def test_8bit_in_the_body_only_is_fine_without_enable(self) -> None:
        session = await self.login(select=None)
        message = "Subject: plain\r\n\r\nGrüße\r\n".encode("utf-8")
        self.assertIn(b"a OK [APPENDUID ", await self.append(session, b"a APPEND INBOX ", message))

    async def test_8bit_headers_in_a_plain_literal_are_fine_once_enabled(self) -> None:
        session = await self.utf8()
        self.assertIn(b"a OK [APPENDUID ", await self.append(session, b"a APPEND INBOX ", UTF8_MESSAGE))

    async def test_8bit_headers_in_a_plain_literal_are_fine_for_imap4rev2(self) -> None:
        session = await self.login(select=None)
        await session.command(b"e ENABLE IMAP4rev2")
        self.assertIn(b"a OK [APPENDUID ", await self.append(session, b"a APPEND INBOX ", UTF8_MESSAGE))


class Delivery(UTF8Case):
    async def test_a_session_without_it_gets_utf8_headers_unchanged(self) -> None:
        await self.deliver(UTF8_MESSAGE)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)] ENVELOPE)")
        self.assertIn("From: Jürgen <jürgen@bücher.example>\r\nSubject: Grüße\r\n".encode("utf-8"), reply)
        self.assertIn("Grüße".encode("utf-8"), reply.split(b"ENVELOPE", 1)[1])
        self.assertTrue(reply.endswith(b"a OK FETCH completed\r\n"))

"""Hostile or odd command syntax (RFC 3501 9): a clean tagged answer, never a
traceback in the log nor a Python ``b'...'`` repr on the wire."""

from __future__ import annotations

import base64

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

from imap_harness import PASSWORD, IMAPTestCase
from support import audit_events

ONE = b"From: Bob <bob@example.test>\r\nSubject: say \"hi\" a\\b\r\n\r\nPizza at noon?\r\n"
TWO = b"From: carol@example.test\r\nSubject: other\r\n\r\nNothing.\r\n"


class QuietTestCase(IMAPTestCase):
    """Fails a test that logs a failure (a traceback) or answers with a repr."""

    def setUp(self) -> None:
        super().setUp()
        self.events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.addCleanup(self.assert_quiet)

    def assert_quiet(self) -> None:
        failures = [e for e in self.events if "log_failure" in e]
        self.assertEqual(failures, [])
        self.assertEqual(self.flushLoggedErrors(), [])


class Search(QuietTestCase):
    async def test_bare_search_is_bad(self) -> None:
        session = await self.login()
        self.assertEqual(await session.command(b"s SEARCH"), b"s BAD Illegal syntax: Missing search criteria\r\n")
        self.assertEqual(await session.command(b"t SEARCH CHARSET UTF-8"), b"t BAD Illegal syntax: search criteria missing\r\n")

    async def test_deep_nesting_is_bad_and_the_session_goes_on(self) -> None:
        await self.deliver(ONE)
        session = await self.login()
        deep = {
            b"parens": b"(" * 3000 + b"ALL" + b")" * 3000,
            b"or": b"OR " * 2000 + b"ALL " * 2001,
            b"not": b"NOT " * 5000 + b"ALL",
            b"mixed": b"(NOT " * 40 + b"ALL" + b")" * 40,
        }
        for name, criteria in deep.items():
            reply = await session.command(name + b" SEARCH " + criteria.strip())
            self.assertTrue(reply.startswith(name + b" BAD "), reply[:80])
            self.assertTrue(reply.endswith(b": search program nested too deeply\r\n"), reply[:80])
        self.assertEqual(await session.command(b"n NOOP"), b"n OK NOOP completed\r\n")
        self.assertEqual(len([e for e in self.events if e.get("log_level").name in ("error", "critical")]), 0)

    async def test_nesting_up_to_the_cap_works(self) -> None:
        await self.deliver(ONE)
        session = await self.login()
        for criteria in (b"(" * 64 + b"ALL" + b")" * 64, b"NOT " * 64 + b"ALL", b"OR " * 63 + b"ALL " * 64):
            reply = await session.command(b"s SEARCH " + criteria.strip())
            self.assertIn(reply, (b"* SEARCH\r\ns OK SEARCH completed\r\n", b"* SEARCH 1\r\ns OK SEARCH completed\r\n"))
        reply = await session.command(b"s SEARCH " + b"NOT " * 65 + b"ALL")
        self.assertTrue(reply.startswith(b"s BAD"))

    async def test_quoted_specials_and_literals(self) -> None:
        await self.deliver(ONE, TWO)
        session = await self.login()
        # RFC 3501 9: \" and \\ inside a quoted string.
        reply = await session.command(b'a SEARCH SUBJECT "say \\"hi\\" a\\\\b"')
        self.assertEqual(reply, b"* SEARCH 1\r\na OK SEARCH completed\r\n")
        reply = await session.command(b'b SEARCH CHARSET "UTF-8" SUBJECT "a\\\\b"')
        self.assertEqual(reply, b"* SEARCH 1\r\nb OK SEARCH completed\r\n")
        self.assertTrue((await session.command(b'c SEARCH SUBJECT "bad \\q"')).startswith(b"c BAD"))
        # A literal inside the search keys (RFC 3501 4.3) is asked for.
        self.assertEqual(session.send(b"d SEARCH OR SUBJECT {5}\r\n"), b"+ Ready for 5 octets of text\r\n")
        session.server.dataReceived(b"other FROM {3}\r\n")
        self.assertEqual(session.received(), b"+ Ready for 3 octets of text\r\n")
        session.server.dataReceived(b"bob\r\n")
        self.assertEqual(await session.wait_for(b"d"), b"* SEARCH 1 2\r\nd OK SEARCH completed\r\n")


class MailboxNames(QuietTestCase):
    async def test_8bit_and_broken_utf7_names_get_cannot(self) -> None:
        session = await self.login(select=None)
        for command in (
            b'a CREATE "Tr\xc3\xa9s"', b'a CREATE "&bad"', b"a CREATE &AGE-", b'a SELECT "&bad"',
            b'a STATUS "Tr\xc3\xa9s" (MESSAGES)', b'a RENAME INBOX "a&b"', b'a LIST "" "Tr\xc3\xa9s*"',
            b"a SUBSCRIBE {4}", b"a DELETE \xff",
        ):
            if command.endswith(b"}"):
                self.assertEqual(session.send(command + b"\r\n"), b"+ Ready for 4 octets of text\r\n")
                session.server.dataReceived(b"&bad\r\n")
                reply = await session.wait_for(b"a")
            else:
                reply = await session.command(command)
            self.assertEqual(reply, b"a NO [CANNOT] Invalid mailbox name\r\n", command)
        self.assertEqual(self.successResultOf(self.store.user("alice@example.test").list_folders()), ["INBOX"])

    async def test_modified_utf7_and_escaped_names_work(self) -> None:
        session = await self.login(select=None)
        self.assertEqual(await session.command(b"a CREATE Tr&AOk-s"), b"a OK Mailbox created\r\n")
        self.assertEqual(await session.command(b'b CREATE "q\\"uote"'), b"b OK Mailbox created\r\n")
        reply = await session.command(b'c LIST "" *')
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "Tr&AOk-s"\r\n', reply)
        self.assertIn(b'* LIST (\\HasNoChildren) "/" "q\\"uote"\r\n', reply)
        self.assertEqual(sorted(self.successResultOf(self.store.user("alice@example.test").list_folders())), ["INBOX", "Trés", 'q"uote'])


class CommandNames(QuietTestCase):
    async def test_8bit_tag_or_command_is_bad(self) -> None:
        for session in (self.open(), await self.login(select=None)):
            session.received()
            self.assertEqual(session.send(b"\xff\xfe \xc3\r\n"), b"* BAD Invalid tag\r\n")
            self.assertEqual(session.send(b"a \xc3\r\n"), b"a BAD Invalid command name\r\n")
            self.assertEqual(session.send(b"a+ NOOP\r\n"), b"* BAD Invalid tag\r\n")
            self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")


class Literals(QuietTestCase):
    async def test_signed_or_spaced_sizes_are_bad(self) -> None:
        session = await self.login()
        for size in (b"-1", b"+5", b" 5", b"5++", b"5 +", b"1_0", b""):
            reply = session.send(b"f APPEND INBOX {" + size + b"}\r\n")
            self.assertEqual(reply, b"f BAD Illegal syntax: Invalid literal\r\n", size)
            reply = session.send(b"g CREATE {" + size + b"}\r\n")
            self.assertEqual(reply, b"g BAD Illegal syntax: Invalid literal\r\n", size)
        self.assertEqual(self.inbox.messages(), [])
        self.assertEqual(await session.command(b"h NOOP"), b"h OK NOOP completed\r\n")

    async def test_quoted_password_with_escapes(self) -> None:
        session = self.open()
        session.received()
        self.assertEqual(await session.command(b'a LOGIN "alice@example.test" "correct\\" horse"'), b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
        self.assertEqual(await session.command(b'b LOGIN "alice@example.test" "correct horse\\\\"'), b"b NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
        self.assertEqual(await session.command(b'c LOGIN "alice@example.test" "correct horse"'), b"c OK LOGIN succeeded\r\n")


class SequenceNumbers(QuietTestCase):
    async def test_beyond_exists_is_bad_but_uids_are_not(self) -> None:
        await self.deliver(ONE, TWO)
        session = await self.login()
        for command in (b"FETCH 999 FLAGS", b"FETCH 1:3 FLAGS", b"STORE 3 +FLAGS (\\Seen)", b"COPY 2,5 INBOX"):
            reply = await session.command(b"m " + command)
            self.assertEqual(reply, b"m BAD Invalid messageset: no such message\r\n", command)
        self.assertEqual(await session.command(b"u UID FETCH 999 FLAGS"), b"u OK FETCH completed\r\n")
        reply = await session.command(b"v FETCH 2:* FLAGS")
        self.assertEqual(reply, b"* 2 FETCH (FLAGS (\\Recent))\r\nv OK FETCH completed\r\n")
        reply = await session.command(b"w FETCH 0 FLAGS")
        self.assertEqual(reply, b"w BAD Illegal syntax: bad message number\r\n")

    async def test_star_in_an_empty_mailbox_is_bad(self) -> None:
        session = await self.login()
        self.assertEqual(await session.command(b"m FETCH * FLAGS"), b"m BAD Invalid messageset: no such message\r\n")
        self.assertEqual(await session.command(b"u UID FETCH 1:* FLAGS"), b"u OK FETCH completed\r\n")


class FetchSyntax(QuietTestCase):
    async def test_bad_partials_and_empty_header_lists(self) -> None:
        await self.deliver(ONE)
        session = await self.login()
        for item, error in (
            (b"BODY.PEEK[TEXT]<-1.5>", b"Invalid partial"),
            (b"BODY.PEEK[TEXT]<1.0>", b"Invalid partial"),
            (b"BODY.PEEK[]<+1.5>", b"Invalid partial"),
            (b"(BODY.PEEK[HEADER.FIELDS ()])", b"Empty header list"),
            (b"(BODY.PEEK[HEADER.FIELDS.NOT ()])", b"Empty header list"),
            (b"BODY[NONSENSE]", b"Invalid section"),
        ):
            reply = await session.command(b"r FETCH 1 " + item)
            self.assertEqual(reply, b"r BAD Illegal syntax: " + error + b"\r\n", item)
        reply = await session.command(b"s FETCH 1 (BODY.PEEK[HEADER.FIELDS (From)]<0.4>)")
        self.assertEqual(reply, b"* 1 FETCH (BODY[HEADER.FIELDS (FROM)]<0> {4}\r\nFrom)\r\ns OK FETCH completed\r\n")


class NoReprs(QuietTestCase):
    async def test_error_texts_carry_no_python_reprs(self) -> None:
        session = await self.login()
        for command in (
            b'CREATE "a" b', b"STATUS INBOX ((MESSAGES)", b'STATUS INBOX (MESSAGES "x)', b"UID FROB 1",
            b"FETCH 1 BODY[HEADER.FIELDS (a]", b"FETCH x FLAGS",
        ):
            reply = await session.command(b"x " + command)
            self.assertTrue(reply.startswith(b"x BAD Illegal syntax: "), (command, reply))
            self.assertNotIn(b"b'", reply)
            self.assertNotIn(b'b"', reply)


class AuthorizationIdentity(QuietTestCase):
    async def authenticate(self, message: bytes) -> bytes:
        session = self.open()
        session.received()
        self.assertEqual(session.send(b"a AUTHENTICATE PLAIN\r\n"), b"+ \r\n")
        session.server.dataReceived(base64.b64encode(message) + b"\r\n")
        return await session.wait_for(b"a")

    async def test_another_authzid_is_refused(self) -> None:
        # RFC 4616 2: no proxy authorization, so the login MUST fail.
        reply = await self.authenticate(b"bob@example.test\0alice@example.test\0" + PASSWORD)
        self.assertEqual(reply, b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
        logins = [(e["user"], e["result"]) for e in audit_events(list(self.events), "login")]
        self.assertEqual(logins, [("alice@example.test", "failed")])

    async def test_own_authzid_in_any_case_is_accepted(self) -> None:
        reply = await self.authenticate(b"Alice@Example.TEST\0alice@example.test\0" + PASSWORD)
        self.assertEqual(reply, b"a OK Authentication successful\r\n")


class Capabilities(QuietTestCase):
    async def test_children_advertised_before_and_after_login(self) -> None:
        session = self.open()
        self.assertIn(b" CHILDREN", session.received())  # greeting
        for current in (session, await self.login(select=None)):
            reply = await current.command(b"c CAPABILITY")
            self.assertIn(b" CHILDREN", reply.split(b"\r\n")[0])

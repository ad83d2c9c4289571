"""ENABLE (RFC 5161), ID (RFC 2971), UNSELECT (RFC 3691), SASL-IR (RFC 4959), LITERAL+ (RFC 7888)."""

from __future__ import annotations

import base64

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher

import mailsrv
from imap_harness import CREDENTIALS, PASSWORD, IMAPTestCase

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class Enable(IMAPTestCase):
    async def test_enabled_lists_only_what_was_turned_on(self) -> None:
        session = await self.login(select=None)
        # RFC 5161 3.2: unknown extensions are ignored, the response comes anyway.
        reply = await session.command(b"a ENABLE X-GOOD-IDEA CONDSTORE X-GOOD-IDEA")
        self.assertEqual(reply, b"* ENABLED CONDSTORE\r\na OK ENABLE completed\r\n")
        reply = await session.command(b"b ENABLE CONDSTORE")
        self.assertEqual(reply, b"* ENABLED\r\nb OK ENABLE completed\r\n")  # already on: not newly enabled

    async def test_only_in_the_authenticated_state(self) -> None:
        session = self.open()
        session.received()
        self.assertTrue((await session.command(b"a ENABLE UTF8=ACCEPT")).startswith(b"a BAD "))
        await session.command(b"b LOGIN " + CREDENTIALS)
        self.assertTrue((await session.command(b"c ENABLE")).startswith(b"c BAD "))  # needs a capability
        await session.command(b"d SELECT INBOX")
        self.assertTrue((await session.command(b"e ENABLE CONDSTORE")).startswith(b"e BAD "))


class Id(IMAPTestCase):
    SERVER = b'* ID ("name" "mailsrv" "version" "%s" "vendor" "mailsrv")\r\n' % mailsrv.__version__.encode()
    ANONYMOUS = b'* ID ("name" "mailsrv" "vendor" "mailsrv")\r\n'  # no version before login (RFC 2971 7)

    async def test_answers_in_any_state_and_logs_the_client(self) -> None:
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        session = self.open()
        session.received()
        reply = await session.command(b'a ID ("name" "Thunderbird" "version" "128.0" "os" NIL)')
        self.assertEqual(reply, self.ANONYMOUS + b"a OK ID completed\r\n")
        logged = [e["client_id"] for e in events if "client_id" in e]
        self.assertEqual(logged, [{"name": "Thunderbird", "version": "128.0", "os": None}])
        await session.command(b"b LOGIN " + CREDENTIALS)
        self.assertEqual(await session.command(b"c ID NIL"), self.SERVER + b"c OK ID completed\r\n")

    async def test_logged_values_are_printable(self) -> None:
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        session = self.open()
        session.received()
        session.send(b'a ID ("name" {7}\r\n')
        reply = session.send(b"evil\r\nx)\r\n")
        self.assertTrue(reply.endswith(b"a OK ID completed\r\n"), reply)
        self.assertEqual([e["client_id"] for e in events if "client_id" in e], [{"name": "evil??x"}])

    async def test_rfc_size_bounds_are_bad(self) -> None:
        session = self.open()
        session.received()
        long_field = b'a ID ("' + b"f" * 31 + b'" "v")'
        self.assertTrue((await session.command(long_field)).startswith(b"a BAD "))
        long_value = b'b ID ("name" "' + b"v" * 1025 + b'")'
        self.assertTrue((await session.command(long_value)).startswith(b"b BAD "))
        many = b"c ID (" + b" ".join(b'"f%d" "v"' % i for i in range(31)) + b")"
        self.assertEqual(await session.command(many), b"c BAD Too many ID fields (RFC 2971 allows 30)\r\n")
        at_limits = b"d ID (" + b" ".join(b'"%s" "%s"' % (b"%030d" % i, b"v" * 1024) for i in range(30)) + b")"
        self.assertTrue((await session.command(at_limits)).endswith(b"d OK ID completed\r\n"))
        for bad in (b"e ID", b"e ID ()x", b'e ID ("name")', b"e ID name"):
            self.assertTrue((await session.command(bad)).startswith(b"e BAD "), bad)


class Unselect(IMAPTestCase):
    async def test_deselects_without_expunging(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()
        await session.command(b"a STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(await session.command(b"b UNSELECT"), b"b OK UNSELECT completed\r\n")
        self.assertEqual(session.server.state, "auth")
        self.assertEqual([i.uid for i in self.inbox.messages()], [1, 2])  # CLOSE would have expunged 1
        self.assertTrue((await session.command(b"c UNSELECT")).startswith(b"c BAD "))  # selected state only
        self.assertTrue((await session.command(b"d FETCH 1 FLAGS")).startswith(b"d BAD "))


class SaslInitialResponse(IMAPTestCase):
    async def test_plain_in_one_round_trip(self) -> None:
        session = self.open()
        session.received()
        response = base64.b64encode(b"\0alice@example.test\0" + PASSWORD)
        reply = await session.command(b"a AUTHENTICATE PLAIN " + response)
        self.assertEqual(reply, b"a OK Authentication successful\r\n")  # no "+" continuation
        self.assertEqual(session.server.state, "auth")

    async def test_bad_initial_responses(self) -> None:
        session = self.open()
        session.received()
        wrong = base64.b64encode(b"\0alice@example.test\0wrong")
        reply = await session.command(b"a AUTHENTICATE PLAIN " + wrong)
        self.assertEqual(reply, b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
        self.assertEqual(await session.command(b"b AUTHENTICATE PLAIN not-base64!"), b"b BAD Malformed initial response\r\n")
        # RFC 4959 3: "=" is an empty response, which PLAIN cannot use.
        self.assertEqual(await session.command(b"c AUTHENTICATE PLAIN ="), b"c BAD Malformed authentication response\r\n")
        self.assertEqual(session.server.state, "unauth")


class NonSynchronisingLiterals(IMAPTestCase):
    async def test_literal_plus_alone_is_advertised(self) -> None:
        """RFC 7888 5: LITERAL- is not advertised beside LITERAL+, which allows all it allows."""
        session = await self.login(select=None)
        capabilities = (await session.command(b"c CAPABILITY")).split(b"\r\n", 1)[0].split()
        self.assertIn(b"LITERAL+", capabilities)
        self.assertNotIn(b"LITERAL-", capabilities)

    async def test_append_without_waiting_for_continuation(self) -> None:
        session = await self.login()
        session.server.dataReceived(b"a APPEND INBOX (\\Seen) {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
        reply = await session.wait_for(b"a")  # no "+ Ready" before the updates and the result
        self.assertEqual(
            reply,
            b"* 1 EXISTS\r\n* 1 RECENT\r\na OK [APPENDUID %d 1] APPEND completed\r\n" % self.inbox.uidvalidity,
        )
        fetched = await session.command(b"b FETCH 1 BODY.PEEK[]")
        self.assertIn(b"{%d}\r\n" % len(MESSAGE) + MESSAGE, fetched)

    async def test_literals_in_several_arguments_and_pipelined_commands(self) -> None:
        session = self.open()
        session.received()
        user, password = b"alice@example.test", PASSWORD
        data = b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\nb CREATE {3+}\r\nBox\r\nc SELECT Box\r\n" % (
            len(user), user, len(password), password)
        session.server.dataReceived(data)
        reply = await session.wait_for(b"c")
        self.assertNotIn(b"+ Ready", reply)
        self.assertIn(b"a OK LOGIN succeeded\r\n", reply)
        self.assertIn(b"b OK Mailbox created\r\n", reply)
        self.assertTrue(reply.endswith(b"c OK [READ-WRITE] SELECT completed\r\n"))

    async def test_too_large_is_read_past_and_the_session_goes_on(self) -> None:
        """The octets of a refused ``{n+}`` literal never run as commands."""
        session = await self.login()
        limit = self.ctx.config.limits.imap_max_literal_size
        smuggled = b"x DELETE INBOX\r\n"
        body = smuggled * ((limit + 1) // len(smuggled) + 1)
        session.server.dataReceived(b"a APPEND INBOX {%d+}\r\n" % len(body))
        session.server.dataReceived(body + b" {5+}\r\nhello\r\nb NOOP\r\n")
        reply = await session.wait_for(b"b")
        self.assertEqual(reply, b"a BAD [TOOBIG] Literal too large\r\nb OK NOOP completed\r\n")
        self.assertEqual(self.inbox.messages(), [])

    async def test_non_append_literal_over_the_line_budget(self) -> None:
        session = await self.login()
        size = self.ctx.config.limits.imap_max_line_length + 1
        session.server.dataReceived(b"a CREATE {%d+}\r\n" % size + b"y" * size + b"\r\nb NOOP\r\n")
        reply = await session.wait_for(b"b")
        self.assertEqual(reply, b"a BAD [TOOBIG] Literal too large\r\nb OK NOOP completed\r\n")

    async def test_synchronising_literal_after_a_refused_one_is_never_invited(self) -> None:
        session = await self.login()
        size = self.ctx.config.limits.imap_max_line_length + 1
        session.server.dataReceived(b"a CREATE {%d+}\r\n" % size + b"y" * size + b" {4}\r\n")
        self.assertEqual(await session.wait_for(b"a"), b"a BAD [TOOBIG] Literal too large\r\n")
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")

    async def test_absurd_announcement_ends_the_session_cleanly(self) -> None:
        """Reading 100 GB to stay in step is not worth it: BAD, BYE, closed."""
        session = await self.login()
        size = 2 * self.ctx.config.limits.imap_max_literal_size + 1
        reply = session.send(b"a APPEND INBOX {%d+}\r\n" % size)
        self.assertEqual(reply, b"a BAD [TOOBIG] Literal too large\r\n* BYE Cannot read on past that literal\r\n")
        self.assertTrue(session.transport.disconnecting)

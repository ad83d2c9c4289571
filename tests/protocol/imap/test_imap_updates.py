"""Live updates between sessions and IDLE (RFC 3501 5.2, 7.4.1; RFC 2177)."""

from __future__ import annotations


from mailsrv.message.body import Body
from mailsrv.workers import InlineExecutor
from imap_harness import IMAPTestCase

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class TwoSessions(IMAPTestCase):
    async def test_expunge_elsewhere_waits_for_an_allowed_point(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        a = await self.login()
        b = await self.login()
        await b.command(b"b1 STORE 2 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(await b.command(b"b2 EXPUNGE"), b"* 2 EXPUNGE\r\nb2 OK EXPUNGE completed\r\n")
        # RFC 3501 7.4.1: no EXPUNGE during FETCH/STORE/SEARCH; numbers stay
        # put.  Flag changes may be reported at any time.
        reply = await a.command(b"a1 FETCH 3 UID")
        self.assertEqual(
            reply, b"* 3 FETCH (UID 3)\r\n* 2 FETCH (FLAGS (\\Recent \\Deleted))\r\na1 OK FETCH completed\r\n"
        )
        self.assertEqual(await a.command(b"a2 SEARCH ALL"), b"* SEARCH 1 3\r\na2 OK SEARCH completed\r\n")
        reply = await a.command(b"a3 NOOP")
        self.assertEqual(reply, b"* 2 EXPUNGE\r\na3 OK NOOP completed\r\n")
        self.assertEqual(await a.command(b"a4 FETCH 2 UID"), b"* 2 FETCH (UID 3)\r\na4 OK FETCH completed\r\n")

    async def test_flags_and_new_mail_from_elsewhere(self) -> None:
        await self.deliver(MESSAGE)
        a = await self.login()
        b = await self.login()
        await b.command(b"b1 STORE 1 +FLAGS.SILENT (\\Flagged)")
        await self.deliver(MESSAGE)
        reply = await a.command(b"a1 NOOP")
        self.assertEqual(reply, b"* 2 EXISTS\r\n* 2 RECENT\r\n* 1 FETCH (FLAGS (\\Recent \\Flagged))\r\na1 OK NOOP completed\r\n")

    async def test_pop3_style_expunge_reaches_the_session(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        a = await self.login()
        self.successResultOf(self.inbox.expunge([1]))  # what the POP3 adapter does at QUIT
        self.assertEqual(await a.command(b"a1 CHECK"), b"* 1 EXPUNGE\r\na1 OK CHECK completed\r\n")


class Idle(IMAPTestCase):
    async def test_delivery_shows_exists_while_idling(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        self.assertEqual(session.send(b"A002 IDLE\r\n"), b"+ idling\r\n")
        await self.deliver(MESSAGE)
        # At once: no clock advanced, no command sent (the store announces the delivery).
        self.assertEqual(session.received(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")
        self.successResultOf(self.inbox.expunge([1]))
        self.assertEqual(session.received(), b"* 1 EXPUNGE\r\n")
        self.assertEqual(session.send(b"A003 NOOP\r\n"), b"* BAD Expected DONE\r\n")  # still idling (RFC 2177)
        self.assertEqual(session.send(b"DONE\r\n"), b"A002 OK IDLE terminated\r\n")
        self.assertEqual(await session.command(b"A004 NOOP"), b"A004 OK NOOP completed\r\n")

    async def test_idle_polls_for_changes_from_another_node(self) -> None:
        session = await self.login()
        session.send(b"a IDLE\r\n")
        other_node = type(self.inbox)("INBOX", self.inbox.path, InlineExecutor())  # a second view of the same Maildir
        await other_node.append(Body.from_wire(MESSAGE))
        self.assertEqual(session.received(), b"")
        session.clock.advance(session.server.IDLE_POLL_SECONDS)
        self.assertEqual(session.received(), b"* 1 EXISTS\r\n* 1 RECENT\r\n")  # appended without flags: new
        session.send(b"DONE\r\n")
        self.assertEqual(session.clock.getDelayedCalls()[0].getTime() > 60, True)  # only the idle timeout is left


class Pipelining(IMAPTestCase):
    async def test_commands_answer_in_order_behind_slow_ones(self) -> None:
        session = await self.login(select=None)
        session.server.dataReceived(b"a CREATE Box\r\nb APPEND Box {2}\r\n")
        self.assertEqual(session.received(), b"a OK Mailbox created\r\n+ Ready for 2 octets of data\r\n")
        session.server.dataReceived(b"hi\r\nc STATUS Box (MESSAGES)\r\nd NOOP\r\n")
        reply = await session.wait_for(b"d")
        box = self.folder("Box")
        self.assertEqual(
            reply,
            b'b OK [APPENDUID %d 1] APPEND completed\r\n* STATUS "Box" (MESSAGES 1)\r\nc OK STATUS completed\r\n'
            b"d OK NOOP completed\r\n" % box.uidvalidity,
        )

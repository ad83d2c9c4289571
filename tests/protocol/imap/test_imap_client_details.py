"""The details real clients trip on (issue 8, item 7), each as the RFC words it.

Long UID sets with the default configuration, ``\\Seen`` by BODY[] and not by
BODY.PEEK[], RENAME of INBOX, DELETE of a folder with children, the names
RFC 3501 allows, STATUS RECENT of an unselected folder, the autologout
timer, and ``NO [SERVERBUG]`` for our own bugs.
"""

from __future__ import annotations

import os

from twisted.logger import globalLogPublisher

from imap_harness import IMAPTestCase, Session
from mailsrv import config as configuration
from mailsrv.imap import server as imapserver
from mailsrv.imap.responses import SERVER_FAILURE
from mailsrv.imap.server import AUTH_TIMEOUT, LOGGED_IN
from support import make_context

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


async def append(session: Session, tag: bytes, folder: bytes, flags: bytes = b"") -> None:
    """APPEND :data:`MESSAGE` to *folder* as a client does: the line, the ``+``, the literal."""
    session.send(tag + b" APPEND " + folder + (b" (" + flags + b")" if flags else b"") + b" {%d}\r\n" % len(MESSAGE))
    session.server.dataReceived(MESSAGE + b"\r\n")
    assert b" OK [APPENDUID " in await session.wait_for(tag)


class DefaultLineLimit(IMAPTestCase):
    """``[limits] imap_max_line_length`` as shipped, not as the harness sets it."""

    def setUp(self) -> None:
        super().setUp()
        defaults = configuration.Config(
            data_dir=self.ctx.config.data_dir,
            auth=configuration.AuthConfig(allow_plaintext_auth_on_loopback=True),
            imap=self.ctx.config.imap,
        )
        self.assertEqual(defaults.limits.imap_max_line_length, configuration.LimitsConfig().imap_max_line_length)
        self.ctx = make_context(defaults)
        self.store = self.ctx.store
        self.inbox = self.folder("INBOX")

    async def test_a_one_mebibyte_uid_set_is_read(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()
        uid_set = b",".join(b"%d" % n for n in range(1, 10**6, 2))[: 1024 * 1024 - 40].rstrip(b",")
        self.assertGreater(len(uid_set), 1000 * 1024)
        reply = await session.command(b"a UID FETCH " + uid_set + b" FLAGS")
        self.assertEqual(reply, b"* 1 FETCH (UID 1 FLAGS (\\Recent))\r\na OK FETCH completed\r\n")

    async def test_a_line_past_the_limit_holds_no_more_than_the_limit(self) -> None:
        session = await self.login()
        limit = self.ctx.config.limits.imap_max_line_length
        self.assertEqual(session.send(b"a NOOP " + b"1," * (limit // 2)), b"a BAD Command line too long\r\n")
        for _ in range(4):
            session.send(b"2," * (limit // 4))
            self.assertLessEqual(len(session.server.input), limit)
        self.assertEqual(session.send(b"\r\nb NOOP\r\n"), b"b OK NOOP completed\r\n")


class SeenByFetch(IMAPTestCase):
    async def test_body_peek_leaves_seen_alone_and_body_sets_it(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        reply = await session.command(b"a FETCH 1 (BODY.PEEK[])")
        self.assertNotIn(b"FLAGS", reply)
        self.assertEqual(await session.command(b"b FETCH 1 FLAGS"), b"* 1 FETCH (FLAGS (\\Recent))\r\nb OK FETCH completed\r\n")
        # RFC 3501 6.4.5: BODY[] sets \Seen, and the changed FLAGS come back with it.
        reply = await session.command(b"c FETCH 1 BODY[]")
        self.assertIn(b"FLAGS (\\Recent \\Seen)", reply)
        self.assertEqual(self.folder("INBOX").messages()[0].flags, frozenset({"\\Seen"}))

    async def test_body_in_a_read_only_session_sets_nothing(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login(select=None)
        await session.command(b"a EXAMINE INBOX")
        self.assertNotIn(b"FLAGS", await session.command(b"b FETCH 1 BODY[]"))
        self.assertEqual(self.folder("INBOX").messages()[0].flags, frozenset())


class RenameInbox(IMAPTestCase):
    async def test_rename_inbox_moves_its_messages_and_leaves_it_empty(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login(select=None)
        self.assertEqual(await session.command(b"a RENAME INBOX Old"), b"a OK Mailbox renamed\r\n")
        reply = await session.command(b"b STATUS Old (MESSAGES RECENT)")
        self.assertIn(b'* STATUS "Old" (MESSAGES 2 RECENT 2)', reply)  # no session had seen them: still \Recent
        reply = await session.command(b"c STATUS INBOX (MESSAGES)")
        self.assertIn(b'* STATUS "INBOX" (MESSAGES 0)', reply)
        await self.deliver(MESSAGE)  # INBOX still takes mail
        self.assertIn(b"(MESSAGES 1)", await session.command(b"d STATUS INBOX (MESSAGES)"))


class DeleteWithChildren(IMAPTestCase):
    """RFC 3501 6.3.4: the messages go, the name stays as ``\\Noselect`` while it has inferiors."""

    async def test_delete_of_a_parent_keeps_it_noselect(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE foo/bar")
        await append(session, b"b", b"foo")
        self.assertEqual(await session.command(b"c DELETE foo"), b"c OK Mailbox deleted\r\n")
        self.assertEqual(
            await session.command(b'd LIST "" foo*'),
            b'* LIST (\\Noselect \\HasChildren) "/" "foo"\r\n'
            b'* LIST (\\HasNoChildren) "/" "foo/bar"\r\n'
            b"d OK LIST completed\r\n",
        )
        self.assertTrue((await session.command(b"e SELECT foo")).startswith(b"e NO "))
        # "It is an error to attempt to delete a name that has inferior hierarchical names and also has the
        # \Noselect mailbox name attribute."
        self.assertTrue((await session.command(b"f DELETE foo")).startswith(b"f NO "))
        self.assertEqual(await session.command(b"g DELETE foo/bar"), b"g OK Mailbox deleted\r\n")
        self.assertEqual(await session.command(b'h LIST "" foo*'), b"h OK LIST completed\r\n")

    async def test_list_status_skips_a_noselect_parent(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE foo/bar")
        await session.command(b"b DELETE foo")
        reply = await session.command(b'c LIST "" "foo*" RETURN (STATUS (MESSAGES))')
        self.assertEqual(reply.count(b"* STATUS"), 1)
        self.assertIn(b'* STATUS "foo/bar" (MESSAGES 0)', reply)


class Names(IMAPTestCase):
    async def test_backslash_and_quotes_are_stored(self) -> None:
        session = await self.login(select=None)
        for tag, name in ((b"a", b'"foo\\\\bar"'), (b"b", b'"say \\"hi\\""'), (b"c", b'"it\'s"')):
            self.assertEqual(await session.command(tag + b" CREATE " + name), tag + b" OK Mailbox created\r\n")
        reply = await session.command(b'd LIST "" *')
        for name in (b'"foo\\\\bar"', b'"say \\"hi\\""', b'"it\'s"'):
            self.assertIn(b'"/" ' + name + b"\r\n", reply)
        self.assertIn(b"OK [READ-WRITE]", await session.command(b'e SELECT "foo\\\\bar"'))
        self.assertIn(b"OK [READ-WRITE]", await session.command(b'f SELECT "say \\"hi\\""'))
        for entry in os.listdir(self.store.user("alice@example.test").path):
            self.assertNotIn("/", entry)

    async def test_dot_dot_and_slash_stay_inside_the_maildir(self) -> None:
        session = await self.login(select=None)
        for tag, name in ((b"a", b'"../x"'), (b"b", b'"a/../../x"'), (b"c", b'".."'), (b"d", b'"/x"')):
            self.assertTrue((await session.command(tag + b" CREATE " + name)).startswith(tag + b" NO "), name)
        root = os.path.dirname(self.store.user("alice@example.test").path)
        self.assertEqual(sorted(os.listdir(root)), ["alice"])

    async def test_non_ascii_names_round_trip_in_modified_utf7(self) -> None:
        session = await self.login(select=None)
        # RFC 3501 5.1.3's example name, then one outside the BMP (UTF-16 surrogates in the base64).
        for tag, name in ((b"a", b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"), (b"b", b"&2D3eAA-mail")):
            self.assertEqual(await session.command(tag + b" CREATE " + name), tag + b" OK Mailbox created\r\n")
        self.assertIn("~peter/mail/台北/日本語", self.successResultOf(self.store.user("alice@example.test").list_folders()))
        reply = await session.command(b'c LIST "" *')
        self.assertIn(b'"/" "~peter/mail/&U,BTFw-/&ZeVnLIqe-"\r\n', reply)
        self.assertIn(b'"/" "&2D3eAA-mail"\r\n', reply)
        self.assertIn(b"OK [READ-WRITE]", await session.command(b"d SELECT &2D3eAA-mail"))
        self.assertTrue((await session.command(b"e CREATE &Jjo!")).startswith(b"e NO "))  # not modified UTF-7


class StatusRecent(IMAPTestCase):
    async def test_append_to_an_unselected_folder_is_recent(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE Other")
        await append(session, b"b", b"Other")
        reply = await session.command(b"c STATUS Other (MESSAGES RECENT)")
        self.assertEqual(reply, b'* STATUS "Other" (MESSAGES 1 RECENT 1)\r\nc OK STATUS completed\r\n')
        # The session that selects it first takes the \Recent (RFC 3501 2.3.2); STATUS then counts none.
        self.assertIn(b"* 1 RECENT\r\n", await session.command(b"d SELECT Other"))
        other = await self.login(select=None)
        self.assertIn(b"(RECENT 0)", await other.command(b"e STATUS Other (RECENT)"))


    async def test_append_with_flags_and_copies_are_recent_too(self) -> None:
        session = await self.login(select=None)
        await session.command(b"a CREATE Sent")
        await append(session, b"b", b"Sent", flags=b"\\Seen")  # a client saving what it sent
        reply = await session.command(b"c STATUS Sent (MESSAGES RECENT)")
        self.assertEqual(reply, b'* STATUS "Sent" (MESSAGES 1 RECENT 1)\r\nc OK STATUS completed\r\n')
        self.assertIn(b"* 1 RECENT\r\n", await session.command(b"d SELECT Sent"))
        self.assertIn(b"\\Recent", await session.command(b"e FETCH 1 FLAGS"))
        await session.command(b"f CREATE Archive")
        self.assertIn(b"g OK", await session.command(b"g COPY 1 Archive"))
        other = await self.login(select=None)
        self.assertIn(b"(RECENT 0)", await other.command(b"h STATUS Sent (RECENT)"))  # claimed by the SELECT
        self.assertIn(b"(RECENT 1)", await other.command(b"i STATUS Archive (RECENT)"))  # RFC 3501 6.4.7
        self.assertIn(b"* 1 RECENT\r\n", await other.command(b"j SELECT Archive"))
        self.assertIn(b"* 0 RECENT\r\n", await session.command(b"k SELECT Archive"))


class Autologout(IMAPTestCase):
    """RFC 3501 5.4: an authenticated client idle for at least 30 minutes may be logged out, not sooner."""

    async def test_thirty_minutes_idle_before_logout(self) -> None:
        self.assertGreaterEqual(AUTH_TIMEOUT, 30 * 60)
        session = await self.login()
        session.clock.advance(29 * 60)
        self.assertEqual(session.received(), b"")
        self.assertFalse(session.transport.disconnecting)
        self.assertEqual(await session.command(b"a NOOP"), b"a OK NOOP completed\r\n")
        session.clock.advance(AUTH_TIMEOUT - 1)
        self.assertFalse(session.transport.disconnecting)
        session.clock.advance(1)
        self.assertEqual(session.received(), b"* BYE Autologout; idle for too long\r\n")
        self.assertTrue(session.transport.disconnecting)

    async def test_idle_counts_as_idle_too(self) -> None:
        session = await self.login()
        session.send(b"a IDLE\r\n")
        session.clock.advance(AUTH_TIMEOUT - 1)
        self.assertFalse(session.transport.disconnecting)
        session.clock.advance(1)
        self.assertIn(b"* BYE Autologout", session.received())


class ServerBug(IMAPTestCase):
    async def test_unexpected_error_is_serverbug_and_logged(self) -> None:
        logged: list[dict] = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)

        async def broken(server, args):
            raise ZeroDivisionError("a bug of ours")

        self.patch(imapserver, "COMMANDS", {**imapserver.COMMANDS, b"NAMESPACE": imapserver.Entry(LOGGED_IN, broken)})
        session = await self.login(select=None)
        reply = await session.command(b"a NAMESPACE")
        self.assertEqual(reply, b"a NO " + SERVER_FAILURE + b"\r\n")
        self.assertNotIn(b"ZeroDivision", reply)
        self.assertTrue(any(e.get("log_failure") and e["log_failure"].check(ZeroDivisionError) for e in logged))
        self.flushLoggedErrors(ZeroDivisionError)
        self.assertEqual(await session.command(b"b NOOP"), b"b OK NOOP completed\r\n")

"""NOTIFY (RFC 5465): what another session, SMTP delivery or the folder tree changes reaches a watching session.

The watching session sends nothing: what it is owed goes out on its next
reactor turn (its clock advanced by :meth:`NotifyCase.pushed`), between
commands, as section 3 has it; the same events reach it in IDLE.
"""

from __future__ import annotations

import dataclasses

from twisted.internet.testing import StringTransport

from imap_harness import CREDENTIALS, LOOPBACK, IMAPTestCase, Session
from mailsrv.imap import notifications

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"
PERSONAL = b"(personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange MailboxMetadataChange))"


class NotifyCase(IMAPTestCase):
    def pushed(self, session: Session) -> bytes:
        """What the session sent of itself on its next turns."""
        for _ in range(5):
            session.clock.advance(0)
        return session.received()

    async def watching(self, *groups: bytes, select: bytes | None = b"INBOX", status: bool = False) -> Session:
        session = await self.login(select)
        reply = await session.command(b"N1 NOTIFY SET " + (b"STATUS " if status else b"") + b" ".join(groups))
        self.assertTrue(reply.endswith(b"N1 OK NOTIFY completed\r\n"), reply)
        return session

    async def other(self) -> Session:
        return await self.login(select=None)

    async def create(self, *names: bytes) -> None:
        session = await self.other()
        for name in names:
            self.assertIn(b"C OK", await session.command(b"C CREATE " + name))
        session.close()

    async def append(self, session: Session, name: bytes, count: int = 1) -> None:
        for _ in range(count):
            session.server.dataReceived(b"A APPEND " + name + b" {%d+}\r\n" % len(MESSAGE) + MESSAGE + b"\r\n")
        reply = await session.wait_for(b"A")
        self.assertEqual(reply.count(b"A OK"), count, reply)


class Grammar(NotifyCase):
    async def refused(self, arguments: bytes) -> bytes:
        session = await self.login()
        reply = await session.command(b"N NOTIFY " + arguments)
        return reply.rsplit(b"\r\n", 2)[-2]

    async def test_message_new_and_expunge_go_together(self) -> None:
        self.assertTrue((await self.refused(b"SET (personal (MessageNew))")).startswith(b"N BAD"))
        self.assertTrue((await self.refused(b"SET (personal (FlagChange))")).startswith(b"N BAD"))

    async def test_one_selected_filter_and_only_message_events_on_it(self) -> None:
        both = b"SET (selected (MessageNew MessageExpunge)) (selected-delayed (MessageNew MessageExpunge))"
        self.assertTrue((await self.refused(both)).startswith(b"N BAD"))
        self.assertTrue((await self.refused(b"SET (selected (MailboxName))")).startswith(b"N BAD"))

    async def test_an_event_we_do_not_give_is_no_badevent_with_ours(self) -> None:
        for event in (b"AnnotationChange", b"XNothing"):
            line = await self.refused(b"SET (personal (MessageNew MessageExpunge " + event + b"))")
            self.assertEqual(line, b"N NO [BADEVENT (MessageNew MessageExpunge FlagChange MailboxName "
                                   b"SubscriptionChange MailboxMetadataChange ServerMetadataChange)] Unsupported event")

    async def test_garbage_is_bad(self) -> None:
        for arguments in (b"", b"SET", b"SET (nowhere (MessageNew MessageExpunge))", b"SET (personal",
                          b"SET (mailboxes (MessageNew MessageExpunge))", b"NONE extra", b"SET (personal (MailboxName)"):
            self.assertTrue((await self.refused(arguments)).startswith(b"N BAD"), arguments)


class OtherMailboxes(NotifyCase):
    async def test_status_asks_for_every_watched_mailbox_but_the_selected_one(self) -> None:
        await self.create(b"Archive", b"Lists/Twisted")
        session = await self.login(select=None)
        self.assertIn(b"E OK", await session.command(b"E ENABLE CONDSTORE"))
        self.assertIn(b"S OK", await session.command(b"S SELECT INBOX"))
        reply = await session.command(b"N NOTIFY SET STATUS (subtree Lists (MessageNew MessageExpunge)) "
                                      b"(mailboxes Archive (MessageNew MessageExpunge)) (mailboxes INBOX (MessageNew MessageExpunge))")
        self.assertRegex(reply, rb'\A\* STATUS "Archive" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)\r\n'
                                rb'\* STATUS "Lists" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)\r\n'
                                rb'\* STATUS "Lists/Twisted" \(MESSAGES 0 UIDNEXT 1 UIDVALIDITY \d+ UNSEEN 0 HIGHESTMODSEQ \d+\)\r\n'
                                rb'N OK NOTIFY completed\r\n\Z')

    async def test_mail_in_another_mailbox_is_one_status_between_commands(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(PERSONAL)
        await self.append(await self.other(), b"Archive", count=3)
        self.assertEqual(self.pushed(session), b'* STATUS "Archive" (MESSAGES 3 UIDNEXT 4 UNSEEN 3)\r\n')
        self.assertEqual(self.pushed(session), b"")

    async def test_smtp_delivery_to_the_inbox_reaches_a_session_that_selected_another(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(PERSONAL, select=b"Archive")
        await self.deliver(MESSAGE)
        self.assertEqual(self.pushed(session), b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_flag_changes_and_expunges_elsewhere(self) -> None:
        await self.create(b"Archive")
        writer = await self.other()
        await self.append(writer, b"Archive")
        session = await self.watching(PERSONAL)
        self.assertIn(b"S OK", await writer.command(b"S SELECT Archive"))
        self.assertIn(b"F OK", await writer.command(b"F STORE 1 +FLAGS (\\Deleted)"))
        self.assertRegex(self.pushed(session), rb'\A\* STATUS "Archive" \(UIDVALIDITY \d+ UNSEEN 1 HIGHESTMODSEQ \d+\)\r\n\Z')
        self.assertIn(b"X OK", await writer.command(b"X EXPUNGE"))
        self.assertEqual(self.pushed(session), b'* STATUS "Archive" (MESSAGES 0 UIDNEXT 2 UNSEEN 0)\r\n')

    async def test_a_mailbox_the_request_does_not_name_is_silent(self) -> None:
        await self.create(b"Archive", b"Sent")
        session = await self.watching(b"(mailboxes Sent (MessageNew MessageExpunge))")
        writer = await self.other()
        await self.append(writer, b"Archive")
        self.assertEqual(self.pushed(session), b"")
        await self.append(writer, b"Sent")
        self.assertEqual(self.pushed(session), b'* STATUS "Sent" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_none_silences_what_a_later_group_would_name(self) -> None:
        await self.create(b"Archive", b"Sent")
        session = await self.watching(b"(mailboxes Archive NONE)", PERSONAL)
        writer = await self.other()
        await self.append(writer, b"Archive")
        await self.append(writer, b"Sent")
        self.assertEqual(self.pushed(session), b'* STATUS "Sent" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_owed_responses_go_before_a_tagged_reply(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(PERSONAL)
        await self.append(await self.other(), b"Archive")  # its push is due; a command comes first
        self.assertEqual(await session.command(b"P NOOP"),
                         b'* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\nP OK NOOP completed\r\n')
        self.assertEqual(self.pushed(session), b"")

    async def test_idle_hears_other_mailboxes(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(PERSONAL)
        self.assertEqual(session.send(b"I IDLE\r\n"), b"+ idling\r\n")
        await self.append(await self.other(), b"Archive")
        self.assertEqual(self.pushed(session), b'* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')
        self.assertEqual(session.send(b"DONE\r\n"), b"I OK IDLE terminated\r\n")

    async def test_subscribed_follows_the_subscriptions(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(b"(subscribed (MessageNew MessageExpunge))")
        writer = await self.other()
        await self.append(writer, b"Archive")
        self.assertEqual(self.pushed(session), b"")
        self.assertIn(b"S OK", await writer.command(b"S SUBSCRIBE Archive"))
        await self.append(writer, b"Archive")
        self.assertEqual(self.pushed(session), b'* STATUS "Archive" (MESSAGES 2 UIDNEXT 3 UNSEEN 2)\r\n')

    async def test_none_ends_the_watch(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(PERSONAL)
        self.assertIn(b"N2 OK", await session.command(b"N2 NOTIFY NONE"))
        await self.append(await self.other(), b"Archive")
        self.assertEqual(self.pushed(session), b"")
        self.assertEqual(self.folder("Archive")._listeners, [])

    async def test_logout_ends_the_watch(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(PERSONAL)
        await session.command(b"Z LOGOUT")
        self.assertEqual(self.folder("Archive")._listeners, [])
        self.assertEqual(self.store.user("alice@example.test")._tree_listeners, [])

    async def test_more_mailboxes_than_the_limit_is_notificationoverflow(self) -> None:
        self.ctx.config = dataclasses.replace(
            self.ctx.config, imap=dataclasses.replace(self.ctx.config.imap, notify_max_mailboxes=2))
        await self.create(b"A", b"B")
        session = await self.login()
        reply = await session.command(b"N NOTIFY SET (personal (MessageNew MessageExpunge))")
        self.assertTrue(reply.endswith(b"N NO [NOTIFICATIONOVERFLOW] NOTIFY would watch more than 2 mailboxes\r\n"))
        self.assertEqual(self.folder("A")._listeners, [])
        self.assertIn(b"N2 OK", await session.command(b"N2 NOTIFY SET (mailboxes A (MessageNew MessageExpunge))"))
        reply = await session.command(b"N3 NOTIFY SET (personal (MessageNew MessageExpunge))")
        self.assertIn(b"N3 NO [NOTIFICATIONOVERFLOW]", reply)
        await self.append(await self.other(), b"A")  # the NOTIFY before the refused one holds
        self.assertEqual(self.pushed(session), b'* STATUS "A" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_too_much_owed_ends_notify_with_one_overflow(self) -> None:
        self.patch(notifications, "MAX_OWED", 3)
        session = await self.watching(PERSONAL)
        await self.create(b"A", b"B", b"C", b"D")
        self.assertEqual(self.pushed(session), b"* " + notifications.OVERFLOW + b"\r\n")
        self.assertIsNone(session.server.notifications)
        await self.create(b"E")
        self.assertEqual(self.pushed(session), b"")

    async def test_a_client_that_stops_reading_is_sent_nothing_and_owes_no_more_than_the_limit(self) -> None:
        self.patch(notifications, "MAX_OWED", 3)
        await self.create(b"Archive")
        session = await self.watching(PERSONAL)
        producer = session.transport.producer
        producer.pauseProducing()  # the client stopped reading
        writer = await self.other()
        await self.append(writer, b"Archive")
        self.assertEqual(self.pushed(session), b"")  # the push waits for the client
        for name in (b"B", b"C", b"D", b"E"):
            self.assertIn(b"C OK", await writer.command(b"C CREATE " + name))
        producer.resumeProducing()
        self.assertEqual(self.pushed(session), b"* " + notifications.OVERFLOW + b"\r\n")
        self.assertIsNone(session.server.notifications)
        self.assertEqual(self.folder("Archive")._listeners, [])


class FolderTree(NotifyCase):
    async def test_create_delete_and_rename_by_another_session(self) -> None:
        session = await self.watching(PERSONAL)
        writer = await self.other()
        self.assertIn(b"C OK", await writer.command(b"C CREATE Lists/Twisted"))
        self.assertEqual(self.pushed(session), b'* LIST () "/" "Lists"\r\n* LIST () "/" "Lists/Twisted"\r\n')
        self.assertIn(b"R OK", await writer.command(b"R RENAME Lists Mailing"))
        self.assertEqual(self.pushed(session), b'* LIST () "/" "Mailing" ("OLDNAME" ("Lists"))\r\n'
                                               b'* LIST () "/" "Mailing/Twisted" ("OLDNAME" ("Lists/Twisted"))\r\n')
        self.assertIn(b"D OK", await writer.command(b"D DELETE Mailing/Twisted"))
        self.assertEqual(self.pushed(session), b'* LIST (\\NonExistent) "/" "Mailing/Twisted"\r\n')

    async def test_a_renamed_folder_is_watched_under_its_new_name_only(self) -> None:
        await self.create(b"Archive")
        before = self.folder("Archive")
        session = await self.watching(b"(personal (MessageNew MessageExpunge))", select=b"Archive")
        self.assertIn(b"S OK", await session.command(b"S SELECT INBOX"))
        writer = await self.other()
        self.assertIn(b"R OK", await writer.command(b"R RENAME Archive Old"))
        self.assertIn(b"R OK", await writer.command(b"R RENAME INBOX Saved"))  # INBOX stays, empty
        self.assertEqual(before._listeners, [])
        await self.append(writer, b"Old")
        self.assertEqual(self.pushed(session), b'* STATUS "Old" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')
        self.assertIn(b"S OK", await session.command(b"S SELECT Old"))
        await self.deliver(MESSAGE)
        self.assertEqual(self.pushed(session), b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_a_folder_made_elsewhere_is_watched(self) -> None:
        session = await self.watching(b"(personal (MessageNew MessageExpunge))")
        writer = await self.other()
        self.assertIn(b"C OK", await writer.command(b"C CREATE Archive"))
        self.assertEqual(self.pushed(session), b"")  # no MailboxName asked for
        await self.append(writer, b"Archive")
        self.assertEqual(self.pushed(session), b'* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_the_sessions_own_changes_are_not_told_back(self) -> None:
        session = await self.watching(PERSONAL)
        for command in (b"C CREATE Archive", b"S SUBSCRIBE Archive", b'M SETMETADATA Archive (/private/comment "x")'):
            reply = await session.command(command)
            self.assertEqual(reply.count(b"\r\n"), 1, reply)
        await self.append(await self.other(), b"Archive")  # but its new folder is watched
        self.assertEqual(self.pushed(session), b'* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def test_subscriptions_and_metadata_changed_by_another_session(self) -> None:
        session = await self.watching(PERSONAL)
        writer = await self.other()
        self.assertIn(b"S OK", await writer.command(b"S SUBSCRIBE INBOX"))
        self.assertEqual(self.pushed(session), b'* LIST (\\Subscribed) "/" "INBOX"\r\n')
        self.assertIn(b"U OK", await writer.command(b"U UNSUBSCRIBE INBOX"))
        self.assertEqual(self.pushed(session), b'* LIST () "/" "INBOX"\r\n')
        self.assertIn(b"M OK", await writer.command(b'M SETMETADATA INBOX (/private/comment "x" /shared/comment "y")'))
        self.assertEqual(self.pushed(session), b'* METADATA "INBOX" (/private/comment /shared/comment)\r\n')
        self.assertIn(b"V OK", await writer.command(b'V SETMETADATA "" (/private/vendor/x/y "z")'))
        self.assertEqual(self.pushed(session), b"")  # ServerMetadataChange was not asked for

    async def test_server_metadata(self) -> None:
        session = await self.watching(b"(personal (ServerMetadataChange))")
        writer = await self.other()
        self.assertIn(b"V OK", await writer.command(b'V SETMETADATA "" (/private/vendor/x/y "z")'))
        self.assertEqual(self.pushed(session), b'* METADATA "" (/private/vendor/x/y)\r\n')


class SelectedMailbox(NotifyCase):
    SELECTED = b"(selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge FlagChange))"

    async def test_new_mail_comes_with_the_fetch_items_asked_for(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.watching(self.SELECTED)
        await self.deliver(MESSAGE.replace(b"hi", b"news"))
        self.assertEqual(self.pushed(session), b"* 2 EXISTS\r\n* 2 RECENT\r\n"
                                               b"* 2 FETCH (UID 2 BODY[HEADER.FIELDS (SUBJECT)] {17}\r\n"
                                               b"Subject: news\r\n\r\n)\r\n")

    async def test_flag_changes_carry_the_uid_and_expunges_go_at_once(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.watching(self.SELECTED)
        writer = await self.login()
        self.assertIn(b"F OK", await writer.command(b"F STORE 1 +FLAGS.SILENT (\\Deleted)"))
        self.assertEqual(self.pushed(session), b"* 1 FETCH (FLAGS (\\Recent \\Deleted) UID 1)\r\n")
        self.assertIn(b"X OK", await writer.command(b"X EXPUNGE"))
        self.assertEqual(self.pushed(session), b"* 1 EXPUNGE\r\n")

    async def test_selected_delayed_keeps_expunges_for_a_command(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.watching(b"(selected-delayed (MessageNew MessageExpunge FlagChange))")
        writer = await self.login()
        self.assertIn(b"F OK", await writer.command(b"F STORE 1 +FLAGS.SILENT (\\Deleted)"))
        self.assertIn(b"X OK", await writer.command(b"X EXPUNGE"))
        self.assertEqual(self.pushed(session), b"* 1 FETCH (FLAGS (\\Recent \\Deleted) UID 1)\r\n")
        self.assertEqual(await session.command(b"P NOOP"), b"* 1 EXPUNGE\r\nP OK NOOP completed\r\n")

    async def test_without_a_selected_filter_the_selected_mailbox_waits_for_a_command(self) -> None:
        session = await self.watching(PERSONAL)
        await self.deliver(MESSAGE)
        self.assertEqual(self.pushed(session), b"")  # 3.1: as SELECTED NONE; nor a STATUS for it
        self.assertEqual(session.send(b"I IDLE\r\n"), b"+ idling\r\n* 1 EXISTS\r\n* 1 RECENT\r\n")
        await self.deliver(MESSAGE)
        self.assertEqual(self.pushed(session), b"")  # 4: IDLE sends what NOTIFY asked for, no more
        self.assertEqual(session.send(b"DONE\r\n"), b"* 2 EXISTS\r\n* 2 RECENT\r\nI OK IDLE terminated\r\n")

    async def test_the_mailbox_left_gets_status_again(self) -> None:
        await self.create(b"Archive")
        session = await self.watching(self.SELECTED, PERSONAL)
        self.assertIn(b"S OK", await session.command(b"S SELECT Archive"))
        await self.deliver(MESSAGE)
        self.assertEqual(self.pushed(session), b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n')

    async def held_push_then(self, line: bytes, idle: bool) -> bytes:
        """A MessageNew FETCH push held by a client that stopped reading, then *line*: all that comes out."""
        session = await self.watching(b"(selected (MessageNew (UID BODY.PEEK[]) MessageExpunge))")
        if idle:
            self.assertEqual(session.send(b"I IDLE\r\n"), b"+ idling\r\n")
        producer = session.transport.producer
        producer.pauseProducing()  # the client stops reading
        await self.deliver(MESSAGE + b"x" * 200_000 + b"\r\n")
        out = self.pushed(session)  # the push starts and waits for the client to read on
        return out + session.send(line) + self.read_on(session)

    def read_on(self, session: Session) -> bytes:
        """What the server sends to a client that reads again each time it is paused, until it is done."""
        out = b""
        for _ in range(20):
            session.transport.producer.resumeProducing()
            out += self.pushed(session)
        return out

    async def test_done_waits_for_a_new_message_fetch_being_sent(self) -> None:
        out = await self.held_push_then(b"DONE\r\n", idle=True)
        self.assertTrue(out.endswith(b")\r\nI OK IDLE terminated\r\n"), out[-60:])

    async def test_a_command_waits_for_a_new_message_fetch_being_sent(self) -> None:
        out = await self.held_push_then(b"P NOOP\r\n", idle=False)
        self.assertTrue(out.endswith(b")\r\nP OK NOOP completed\r\n"), out[-60:])
        out = await self.held_push_then(b"* NOOP\r\n", idle=False)  # a bad tag too
        self.assertTrue(out.endswith(b")\r\n* BAD Invalid tag\r\n"), out[-60:])

    async def test_what_comes_during_a_push_follows_it(self) -> None:
        await self.create(b"Archive")
        session = self.open(transport=_FillsUp(peerAddress=LOOPBACK))
        session.received()
        for command in (b"L LOGIN " + CREDENTIALS, b"S SELECT INBOX", b"N NOTIFY SET (selected (MessageNew "
                        b"(UID BODY.PEEK[]) MessageExpunge)) " + PERSONAL):
            self.assertRegex(await session.command(command), rb"(\A|\n)[LSN] OK ")
        await self.deliver(MESSAGE + b"x" * 200_000 + b"\r\n")
        out = self.pushed(session)  # the FETCH starts, and its first chunk fills the client's window
        self.assertIn(b"* 1 FETCH (UID 1 BODY[] {", out)
        await self.append(await self.other(), b"Archive")
        out += self.read_on(session)
        self.assertTrue(out.endswith(b')\r\n* STATUS "Archive" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n'), out[-80:])


class _FillsUp(StringTransport):
    """A client whose window a 64 KiB chunk fills: the server is paused after each."""

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(data) >= 65536 and self.producer is not None:
            self.producer.pauseProducing()

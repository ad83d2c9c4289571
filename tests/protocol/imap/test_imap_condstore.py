"""CONDSTORE and QRESYNC (RFC 7162), after the RFC's examples, in one session and across two."""

from __future__ import annotations

import re

from imap_harness import IMAPTestCase

from mailsrv.store import Store
from mailsrv.workers import InlineExecutor

MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


def modseq_of(reply: bytes, seq: int) -> int:
    """The MODSEQ a ``* seq FETCH (...)`` line of *reply* gives."""
    match = re.search(rb"\* %d FETCH \([^\r]*MODSEQ \((\d+)\)" % seq, reply)
    assert match is not None, reply
    return int(match.group(1))


class Condstore(IMAPTestCase):
    async def test_select_and_status_report_highestmodseq(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login(select=None)
        highest = self.inbox.highest_modseq
        reply = await session.command(b"a SELECT INBOX (CONDSTORE)")  # RFC 7162 3.1.2.1, 3.1.7
        self.assertIn(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % highest, reply)
        self.assertTrue(reply.endswith(b"a OK [READ-WRITE] SELECT completed\r\n"))
        reply = await session.command(b"b STATUS INBOX (UIDNEXT MESSAGES HIGHESTMODSEQ)")  # RFC 7162 3.1.6
        self.assertEqual(reply, b'* STATUS "INBOX" (UIDNEXT 2 MESSAGES 1 HIGHESTMODSEQ %d)\r\n'
                                b"b OK STATUS completed\r\n" % highest)

    async def test_an_empty_folder_has_a_nonzero_highestmodseq_below_its_first_change(self) -> None:
        session = await self.login(select=None)
        reply = await session.command(b"a STATUS INBOX (HIGHESTMODSEQ)")
        self.assertIn(b"(HIGHESTMODSEQ 1)", reply)  # RFC 7162 7: mod-sequence-value is nonzero
        await self.deliver(MESSAGE)
        await session.command(b"b SELECT INBOX")
        reply = await session.command(b"c FETCH 1:* (FLAGS) (CHANGEDSINCE 1)")
        self.assertIn(b"* 1 FETCH (FLAGS (\\Recent) MODSEQ (", reply)

    async def test_fetch_modseq_and_changedsince(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        session = await self.login()
        reply = await session.command(b"a FETCH 1:3 (MODSEQ)")  # RFC 7162 3.1.4.1
        before = modseq_of(reply, 3)
        self.assertEqual(reply.count(b"FETCH (MODSEQ ("), 3)
        reply = await session.command(b"b STORE 2 +FLAGS (\\Seen)")
        changed = modseq_of(reply, 2)
        self.assertEqual(reply, b"* 2 FETCH (FLAGS (\\Recent \\Seen) MODSEQ (%d))\r\nb OK STORE completed\r\n"
                         % changed)  # CONDSTORE is on since the FETCH MODSEQ (3.1.8)
        self.assertGreater(changed, before)
        reply = await session.command(b"c FETCH 1:* (UID FLAGS) (CHANGEDSINCE %d)" % before)  # RFC 7162 3.1.4.2
        self.assertEqual(reply, b"* 2 FETCH (UID 2 FLAGS (\\Recent \\Seen) MODSEQ (%d))\r\nc OK FETCH completed\r\n"
                         % changed)
        reply = await session.command(b"d UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % changed)
        self.assertEqual(reply, b"d OK FETCH completed\r\n")

    async def test_a_fetch_that_sets_seen_reports_the_new_modseq(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login(select=None)
        await session.command(b"a SELECT INBOX (CONDSTORE)")
        reply = await session.command(b"b FETCH 1 (BODY[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"FLAGS (\\Recent \\Seen) MODSEQ (%d))" % self.inbox.get(1).modseq, reply)

    async def test_conditional_store(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        session = await self.login()
        base = modseq_of(await session.command(b"a FETCH 3 (MODSEQ)"), 3)
        await session.command(b"b STORE 1 +FLAGS.SILENT (\\Answered)")
        # RFC 7162 3.1.3, example 7: 1 changed after base, so only 2 and 3 are stored.
        reply = await session.command(b"c STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Deleted)" % base)
        lines = reply.splitlines()
        self.assertEqual(lines[-1], b"c OK [MODIFIED 1] Conditional STORE failed")
        self.assertRegex(lines[0], rb"^\* 2 FETCH \(MODSEQ \(\d+\)\)$")  # .SILENT: MODSEQ, no FLAGS
        self.assertRegex(lines[1], rb"^\* 3 FETCH \(MODSEQ \(\d+\)\)$")
        self.assertNotIn("\\Deleted", self.inbox.get(1).flags)
        self.assertIn("\\Deleted", self.inbox.get(2).flags)
        reply = await session.command(b"d UID STORE 1:3 (UNCHANGEDSINCE 0) +FLAGS (\\Seen)")  # 0 always fails
        self.assertEqual(reply, b"d OK [MODIFIED 1:3] Conditional STORE failed\r\n")
        self.assertNotIn("\\Seen", self.inbox.get(3).flags)

    async def test_a_store_that_changes_nothing_passes_and_keeps_the_modseq(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        modseq = modseq_of(await session.command(b"a FETCH 1 (MODSEQ)"), 1)
        reply = await session.command(b"b STORE 1 (UNCHANGEDSINCE %d) -FLAGS (\\Seen)" % modseq)
        self.assertEqual(reply, b"* 1 FETCH (FLAGS (\\Recent) MODSEQ (%d))\r\nb OK STORE completed\r\n" % modseq)

    async def test_search_modseq(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        session = await self.login()
        reply = await session.command(b"a STORE 2 +FLAGS (\\Draft)")
        self.assertNotIn(b"MODSEQ", reply)  # CONDSTORE not on yet
        changed = self.inbox.get(2).modseq
        # RFC 7162 3.1.5: the response names the highest modseq of what matched.
        reply = await session.command(b"b SEARCH MODSEQ %d" % changed)
        # RFC 7162 3.1.8: CONDSTORE is on now, and the client learns the mailbox's HIGHESTMODSEQ.
        self.assertEqual(reply, b"* OK [HIGHESTMODSEQ %d] Highest\r\n* SEARCH 2 (MODSEQ %d)\r\nb OK SEARCH completed\r\n"
                         % (self.inbox.highest_modseq, changed))
        reply = await session.command(b'c UID SEARCH MODSEQ "/flags/\\\\draft" all %d' % (changed + 1))
        self.assertEqual(reply, b"* SEARCH\r\nc OK SEARCH completed\r\n")
        reply = await session.command(b"d SEARCH OR NOT MODSEQ %d DRAFT" % changed)
        self.assertEqual(reply, b"* SEARCH 1 2 3 (MODSEQ %d)\r\nd OK SEARCH completed\r\n" % changed)
        reply = await session.command(b"e STORE 1 +FLAGS (\\Seen)")
        self.assertIn(b"MODSEQ (", reply)  # SEARCH MODSEQ turned CONDSTORE on (3.1.8)

    async def test_esearch_with_modseq(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        session = await self.login(select=None)
        await session.command(b"a SELECT INBOX (CONDSTORE)")
        await session.command(b"b STORE 1 +FLAGS.SILENT (\\Seen)")
        await session.command(b"c STORE 3 +FLAGS.SILENT (\\Seen)")
        first, last = self.inbox.get(1).modseq, self.inbox.get(3).modseq
        # RFC 7162 3.1.5 with RFC 4731: MODSEQ return data, of the messages returned.
        reply = await session.command(b"d SEARCH RETURN (MIN) MODSEQ %d" % first)
        self.assertEqual(reply, b'* ESEARCH (TAG "d") MIN 1 MODSEQ %d\r\nd OK SEARCH completed\r\n' % first)
        reply = await session.command(b"e UID SEARCH RETURN (ALL) MODSEQ %d" % first)
        self.assertEqual(reply, b'* ESEARCH (TAG "e") UID ALL 1,3 MODSEQ %d\r\ne OK SEARCH completed\r\n' % last)
        reply = await session.command(b"f SEARCH RETURN (COUNT) MODSEQ %d" % (last + 1))
        self.assertEqual(reply, b'* ESEARCH (TAG "f") COUNT 0\r\nf OK SEARCH completed\r\n')

    async def test_bad_modifiers_are_bad(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        for command in (b"a FETCH 1 FLAGS (CHANGEDSINCE x)", b"a FETCH 1 FLAGS (NOSUCH 1)",
                        b"a UID FETCH 1 FLAGS (CHANGEDSINCE 1 VANISHED)",  # QRESYNC not enabled
                        b"a STORE 1 (UNCHANGEDSINCE -1) +FLAGS (\\Seen)", b"a STORE 1 (FOO 1) +FLAGS (\\Seen)",
                        b"a SEARCH MODSEQ", b"a SEARCH MODSEQ 99999999999999999999",
                        b"a SELECT INBOX (QRESYNC (1 1))", b"a SELECT INBOX (NOSUCH)"):
            reply = await session.command(command)
            self.assertTrue(reply.startswith(b"a BAD "), (command, reply))


class TwoSessionsCondstore(IMAPTestCase):
    async def test_the_other_session_sees_the_change_with_its_modseq(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        a = await self.login(select=None)
        await a.command(b"a1 ENABLE CONDSTORE")
        await a.command(b"a2 SELECT INBOX")
        b = await self.login()
        reply = await b.command(b"b1 STORE 2 +FLAGS (\\Flagged)")
        self.assertEqual(reply, b"* 2 FETCH (FLAGS (\\Flagged))\r\nb1 OK STORE completed\r\n")  # b: no CONDSTORE
        modseq = self.inbox.get(2).modseq
        reply = await a.command(b"a3 NOOP")  # RFC 7162 3.1.8: unsolicited FETCH carries MODSEQ
        self.assertEqual(reply, b"* 2 FETCH (FLAGS (\\Recent \\Flagged) MODSEQ (%d))\r\na3 OK NOOP completed\r\n"
                         % modseq)

    async def test_a_conditional_store_loses_to_a_change_from_elsewhere(self) -> None:
        await self.deliver(MESSAGE)
        a = await self.login()
        b = await self.login()
        seen = modseq_of(await a.command(b"a1 FETCH 1 (MODSEQ)"), 1)
        await b.command(b"b1 STORE 1 +FLAGS (\\Seen)")
        reply = await a.command(b"a2 STORE 1 (UNCHANGEDSINCE %d) FLAGS (\\Deleted)" % seen)
        self.assertTrue(reply.endswith(b"a2 OK [MODIFIED 1] Conditional STORE failed\r\n"), reply)
        self.assertEqual(self.inbox.get(1).flags, {"\\Seen"})


    async def test_changedsince_leaves_out_a_message_expunged_elsewhere(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        a = await self.login()
        b = await self.login()
        known = self.inbox.highest_modseq
        await b.command(b"b1 STORE 1 +FLAGS.SILENT (\\Deleted)")
        await b.command(b"b2 EXPUNGE")
        reply = await a.command(b"a1 FETCH 1:2 (FLAGS) (CHANGEDSINCE %d)" % known)
        # Only the (unsolicited) \\Deleted of message 1; no NO: the EXPUNGE comes after the command.
        self.assertRegex(reply, rb"\A\* OK \[HIGHESTMODSEQ \d+\] Highest\r\n\* 1 FETCH \(FLAGS \(\\Recent \\Deleted\) MODSEQ \(\d+\)\)\r\na1 OK FETCH completed\r\n\Z")
        self.assertEqual(await a.command(b"a2 NOOP"), b"* 1 EXPUNGE\r\na2 OK NOOP completed\r\n")


class Qresync(IMAPTestCase):
    async def qresync_session(self, select: bytes | None = None) -> object:
        session = await self.login(select=None)
        self.assertEqual(await session.command(b"e ENABLE QRESYNC"), b"* ENABLED QRESYNC\r\ne OK ENABLE completed\r\n")
        if select is not None:
            reply = await session.command(b"s SELECT " + select)
            self.assertIn(b"s OK", reply)
        return session

    async def test_select_qresync_reports_vanished_and_changed(self) -> None:
        await self.deliver(*[MESSAGE] * 5)
        session = await self.qresync_session()
        reply = await session.command(b"s1 SELECT INBOX")
        known = self.inbox.highest_modseq
        await session.command(b"s2 STORE 2,4 +FLAGS.SILENT (\\Deleted)")
        await session.command(b"s3 EXPUNGE")
        reply = await session.command(b"s4 STORE 2 +FLAGS (\\Flagged)")  # UID 3
        flagged = modseq_of(reply, 2)
        await session.command(b"s5 LOGOUT")
        later = await self.qresync_session()
        v = self.inbox.uidvalidity
        reply = await later.command(b"q1 SELECT INBOX (QRESYNC (%d %d 1:5))" % (v, known))  # RFC 7162 3.2.5.1
        self.assertIn(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % self.inbox.highest_modseq, reply)
        tail = reply[reply.index(b"* VANISHED"):]
        self.assertEqual(tail, b"* VANISHED (EARLIER) 2,4\r\n"
                               b"* 2 FETCH (UID 3 FLAGS (\\Flagged) MODSEQ (%d))\r\n"
                               b"q1 OK [READ-WRITE] SELECT completed\r\n" % flagged)

    async def test_another_uidvalidity_gets_a_plain_select(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.qresync_session()
        reply = await session.command(b"q SELECT INBOX (QRESYNC (%d 1))" % (self.inbox.uidvalidity + 1))
        self.assertNotIn(b"VANISHED", reply)
        self.assertNotIn(b"FETCH", reply)

    async def test_vanished_instead_of_expunge_and_closed(self) -> None:
        await self.deliver(*[MESSAGE] * 4)
        a = await self.qresync_session(b"INBOX")
        b = await self.login()
        await b.command(b"b1 STORE 1,3 +FLAGS.SILENT (\\Deleted)")
        await b.command(b"b2 STORE 2 +FLAGS.SILENT (\\Flagged)")
        self.assertEqual(await b.command(b"b3 EXPUNGE"), b"* 1 EXPUNGE\r\n* 2 EXPUNGE\r\nb3 OK EXPUNGE completed\r\n")
        reply = await a.command(b"a1 NOOP")  # RFC 7162 3.2.10: VANISHED, with UIDs
        self.assertEqual(reply, b"* VANISHED 1,3\r\n* 1 FETCH (FLAGS (\\Recent \\Flagged) UID 2 MODSEQ (%d))\r\n"
                                b"a1 OK NOOP completed\r\n" % self.inbox.get(2).modseq)  # UID: RFC 7162 3.2.4
        await a.command(b"a2 STORE 2 +FLAGS.SILENT (\\Deleted)")
        reply = await a.command(b"a3 EXPUNGE")  # RFC 7162 3.2.7
        self.assertEqual(reply, b"* VANISHED 4\r\na3 OK [HIGHESTMODSEQ %d] EXPUNGE completed\r\n"
                         % self.inbox.highest_modseq)
        reply = await a.command(b"a4 EXAMINE INBOX")
        self.assertTrue(reply.startswith(b"* OK [CLOSED] Previous mailbox closed\r\n* FLAGS "), reply)  # 3.2.11

    async def expunged_since_known(self, count: int, doomed: bytes) -> tuple[object, int]:
        """A QRESYNC session on INBOX of *count* messages, the HIGHESTMODSEQ it knew, then *doomed* expunged."""
        await self.deliver(*[MESSAGE] * count)
        session = await self.qresync_session(b"INBOX")
        known = self.inbox.highest_modseq
        await session.command(b"a STORE " + doomed + b" +FLAGS.SILENT (\\Deleted)")
        await session.command(b"b EXPUNGE")
        return session, known

    async def test_uid_fetch_vanished(self) -> None:
        session, known = await self.expunged_since_known(5, b"1,3")
        await session.command(b"c STORE 1 +FLAGS.SILENT (\\Seen)")  # UID 2
        # RFC 7162 3.2.6: the expunged UIDs of the set, then what changed.
        reply = await session.command(b"d UID FETCH 1:4 (FLAGS) (CHANGEDSINCE %d VANISHED)" % known)
        self.assertEqual(reply, b"* VANISHED (EARLIER) 1,3\r\n"
                                b"* 1 FETCH (UID 2 FLAGS (\\Recent \\Seen) MODSEQ (%d))\r\nd OK FETCH completed\r\n"
                         % self.inbox.get(2).modseq)
        self.assertTrue((await session.command(b"e FETCH 1 (FLAGS) (CHANGEDSINCE 1 VANISHED)")).startswith(b"e BAD"))

    async def test_expunges_older_than_kept_fall_back_to_every_missing_uid(self) -> None:
        session, known = await self.expunged_since_known(6, b"2,5")
        self.inbox._uids.modseqs.forgotten = self.inbox.highest_modseq  # as compaction past KEEP_EXPUNGED leaves it
        v = self.inbox.uidvalidity
        reply = await session.command(b"c SELECT INBOX (QRESYNC (%d %d 1:4))" % (v, known))
        self.assertIn(b"* VANISHED (EARLIER) 2\r\n", reply)  # RFC 7162 3.2.5.2: from the known set
        reply = await session.command(b"d SELECT INBOX (QRESYNC (%d %d))" % (v, known))
        self.assertIn(b"* VANISHED (EARLIER) 2,5\r\n", reply)  # 1:UIDNEXT-1
        reply = await session.command(b"e SELECT INBOX (QRESYNC (%d %d 1:6 (1:3 1,3,4)))" % (v, known))
        self.assertIn(b"* VANISHED (EARLIER) 2,5\r\n", reply)  # sequence match data: parsed

    async def test_modseqs_and_vanished_survive_a_restart(self) -> None:
        _, known = await self.expunged_since_known(3, b"2")
        self.ctx.store = Store(self.store.root, InlineExecutor())  # a new process on the same Maildir
        restarted = await self.qresync_session()
        reply = await restarted.command(b"c SELECT INBOX (QRESYNC (%d %d))" % (self.inbox.uidvalidity, known))
        self.assertIn(b"* VANISHED (EARLIER) 2\r\n", reply)
        self.assertIn(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % self.inbox.highest_modseq, reply)

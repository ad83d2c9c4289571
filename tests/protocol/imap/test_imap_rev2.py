"""IMAP4rev2 (RFC 9051) for a client that sends ``ENABLE IMAP4rev2``; IMAP4rev1 clients see no change.

The INBOX holds messages 1..3 with UIDs 2..4 (UID 1 was expunged), 2 and
3 \\Flagged, so a reply that mixes up sequence numbers and UIDs shows.
"""

from __future__ import annotations

from imap_harness import ALICE, IMAPTestCase, Session

MESSAGE = b"From: bob@example.test\r\nSubject: note %d\r\n\r\nBody %d.\r\n"
#: "Entwürfe" as a rev2 client writes it (UTF-8) and as a rev1 client does (modified UTF-7).
DRAFTS_UTF8 = "Entwürfe".encode("utf-8")
DRAFTS_UTF7 = b"Entw&APw-rfe"


class Rev2Case(IMAPTestCase):
    async def setUp(self) -> None:  # type: ignore[override]
        super().setUp()
        await self.deliver(*(MESSAGE % (n, n) for n in range(4)))
        self.successResultOf(self.inbox.expunge([1]))
        self.successResultOf(self.inbox.store_flags([(uid, frozenset({"\\Flagged"})) for uid in (3, 4)]))

    async def rev2(self, select: bytes | None = b"INBOX") -> Session:
        """A session logged in as alice that enabled IMAP4rev2, with *select* selected."""
        session = await self.login(select=None)
        self.assertEqual(await session.command(b"E ENABLE IMAP4rev2"), b"* ENABLED IMAP4rev2\r\nE OK ENABLE completed\r\n")
        if select is not None:
            self.assertIn(b"S OK", await session.command(b"S SELECT " + select))
        return session

    async def check(self, session: Session, command: bytes, *untagged: bytes, result: bytes) -> None:
        tag = command.split(b" ", 1)[0]
        expected = b"".join(b"* " + line + b"\r\n" for line in untagged) + tag + b" " + result + b"\r\n"
        self.assertEqual(await session.command(command), expected)


class Enable(Rev2Case):
    async def test_capability_offers_rev2_beside_rev1_with_its_base_extensions(self) -> None:
        session = self.open()
        session.received()
        capabilities = (await session.command(b"c CAPABILITY")).split(b"\r\n")[0].split(b" ")
        self.assertEqual(capabilities[2:4], [b"IMAP4rev1", b"IMAP4rev2"])
        # RFC 9051 folds these in; a rev2 client may use them without looking for them.
        for name in (b"ENABLE", b"IDLE", b"NAMESPACE", b"UNSELECT", b"UIDPLUS", b"ESEARCH", b"SEARCHRES", b"MOVE",
                     b"LITERAL+", b"LIST-EXTENDED", b"LIST-STATUS", b"SPECIAL-USE", b"STATUS=SIZE", b"BINARY"):
            self.assertIn(name, capabilities)

    async def test_enable_turns_it_on_once(self) -> None:
        session = await self.rev2(select=None)
        self.assertEqual(await session.command(b"a ENABLE imap4rev2"), b"* ENABLED\r\na OK ENABLE completed\r\n")


class Select(Rev2Case):
    async def test_select_names_the_mailbox_and_leaves_out_recent_and_unseen(self) -> None:
        session = await self.rev2(select=None)
        folder = self.inbox
        await self.check(
            session, b"a SELECT inbox",
            b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            b"OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)] Flags permitted",
            b"3 EXISTS",
            b'LIST () "/" "INBOX"',  # RFC 9051 6.3.2
            b"OK [UIDVALIDITY %d] UIDs valid" % folder.uidvalidity,
            b"OK [UIDNEXT 5] Predicted next UID",
            b"OK [HIGHESTMODSEQ %d] Highest" % folder.highest_modseq,
            result=b"OK [READ-WRITE] SELECT completed",
        )

    async def test_rev1_select_is_unchanged(self) -> None:
        session = await self.login(select=None)
        reply = await session.command(b"a EXAMINE INBOX")
        self.assertIn(b"* 1 RECENT\r\n* OK [UNSEEN 1] First unseen\r\n", reply)  # one still in new/, left there
        self.assertNotIn(b"LIST", reply)

    async def test_no_recent_anywhere_and_rev1_sessions_keep_it(self) -> None:
        session = await self.rev2()
        await self.deliver(MESSAGE % (5, 5))
        await self.check(session, b"a NOOP", b"4 EXISTS", result=b"OK NOOP completed")
        await self.check(session, b"b FETCH 4 (FLAGS)", b"4 FETCH (FLAGS ())", result=b"OK FETCH completed")
        # The rev2 session claimed no \Recent (RFC 9051 2.3.2), so the next IMAP4rev1 session gets it:
        # UIDs 2 and 5, which no flag change moved out of new/.
        rev1 = await self.login(select=None)
        self.assertIn(b"* 4 EXISTS\r\n* 2 RECENT\r\n", await rev1.command(b"c SELECT INBOX"))
        self.assertIn(b"* 4 FETCH (FLAGS (\\Recent))", await rev1.command(b"d FETCH 4 (FLAGS)"))


class Search(Rev2Case):
    async def test_search_answers_esearch(self) -> None:
        session = await self.rev2()
        # RFC 9051 6.4.4: no RETURN is RETURN (ALL); IMAP4rev2 has no "* SEARCH".
        await self.check(session, b"A282 SEARCH FLAGGED", b'ESEARCH (TAG "A282") ALL 2:3', result=b"OK SEARCH completed")
        await self.check(
            session, b"A283 UID SEARCH CHARSET UTF-8 FLAGGED", b'ESEARCH (TAG "A283") UID ALL 3:4',
            result=b"OK SEARCH completed",
        )
        await self.check(session, b"A284 SEARCH DELETED", b'ESEARCH (TAG "A284")', result=b"OK SEARCH completed")
        await self.check(
            session, b"A285 SEARCH RETURN (COUNT) FLAGGED", b'ESEARCH (TAG "A285") COUNT 2',
            result=b"OK SEARCH completed",
        )

    async def test_modseq_comes_in_the_esearch(self) -> None:
        session = await self.rev2()
        top = max(self.inbox.get(uid).modseq for uid in (3, 4))
        await self.check(
            session, b"a SEARCH MODSEQ 1 FLAGGED",
            b"OK [HIGHESTMODSEQ %d] Highest" % self.inbox.highest_modseq,
            b'ESEARCH (TAG "a") ALL 2:3 MODSEQ %d' % top,
            result=b"OK SEARCH completed",
        )

    async def test_rev1_search_is_unchanged(self) -> None:
        session = await self.login()
        await self.check(session, b"a SEARCH FLAGGED", b"SEARCH 2 3", result=b"OK SEARCH completed")


class Names(Rev2Case):
    async def test_names_are_utf8_both_ways(self) -> None:
        session = await self.rev2(select=None)
        await self.check(session, b'a CREATE "' + DRAFTS_UTF8 + b'"', result=b"OK Mailbox created")
        await self.check(
            session, b'b LIST "" "Entw*"', b'LIST (\\HasNoChildren) "/" "' + DRAFTS_UTF8 + b'"',
            result=b"OK LIST completed",
        )
        await self.check(
            session, b'c STATUS "' + DRAFTS_UTF8 + b'" (MESSAGES)', b'STATUS "' + DRAFTS_UTF8 + b'" (MESSAGES 0)',
            result=b"OK STATUS completed",
        )
        self.assertIn(b'* LIST () "/" "' + DRAFTS_UTF8 + b'"\r\n', await session.command(b'd SELECT "' + DRAFTS_UTF8 + b'"'))
        # The same folder, as an IMAP4rev1 client sees it.
        rev1 = await self.login(select=None)
        self.assertIn(b'"/" "' + DRAFTS_UTF7 + b'"\r\n', await rev1.command(b'e LIST "" "Entw*"'))

    async def test_an_ampersand_is_an_ampersand(self) -> None:
        session = await self.rev2(select=None)
        await self.check(session, b'a CREATE "R&D"', result=b"OK Mailbox created")
        await self.check(session, b"b SUBSCRIBE R&D", result=b"OK Subscribed")
        await self.check(session, b'c LSUB "" "R*"', b'LSUB () "/" "R&D"', result=b"OK LSUB completed")
        rev1 = await self.login(select=None)
        self.assertIn(b'"/" "R&-D"\r\n', await rev1.command(b'd LIST "" "R*"'))

    async def test_a_name_that_is_not_utf8_is_refused(self) -> None:
        session = await self.rev2(select=None)
        # A quoted string that is not UTF-8 breaks the grammar (RFC 9051 9 QUOTED-CHAR), BAD as RFC 6855 3 asks.
        await self.check(session, b'a CREATE "caf\xe9"', result=b"BAD Illegal syntax: Invalid UTF-8 in a quoted string")
        # RFC 9051 5.1: no C1 control, line or paragraph separator in a name.
        for name in ("a\u0085b", "a\u2028b", "a\u2029b"):
            await self.check(session, b'b CREATE "' + name.encode() + b'"', result=b"NO [CANNOT] Invalid mailbox name")
        self.assertEqual(self.successResultOf(self.store.user(ALICE).list_folders()), ["INBOX"])


class Status(Rev2Case):
    async def test_status_deleted_and_size(self) -> None:
        session = await self.rev2(select=None)
        self.successResultOf(self.inbox.store_flags([(2, frozenset({"\\Deleted"}))]))
        size = sum(info.size for info in self.inbox.messages())
        await self.check(
            session, b"a STATUS INBOX (MESSAGES DELETED SIZE)", b'STATUS "INBOX" (MESSAGES 3 DELETED 1 SIZE %d)' % size,
            result=b"OK STATUS completed",
        )


class ResponseCodes(Rev2Case):
    async def test_refusals_carry_rev2_codes(self) -> None:
        session = await self.rev2(select=None)
        await self.check(session, b"a CREATE Arch/2026", result=b"OK Mailbox created")
        await self.check(session, b"b CREATE Arch/2026", result=b"NO [ALREADYEXISTS] Mailbox already exists")
        await self.check(session, b"c DELETE Arch", result=b"OK Mailbox deleted")  # \Noselect while Arch/2026 lives
        # RFC 9051 7.1: HASCHILDREN, where an IMAP4rev1 session gets [CANNOT] (RFC 3501 has no code for it).
        await self.check(session, b"d DELETE Arch", result=b"NO [HASCHILDREN] Mailbox has children, delete them first")
        await self.check(session, b"e SELECT Nowhere", result=b"NO [NONEXISTENT] No such mailbox")


class Keywords(Rev2Case):
    async def test_the_rev2_keywords_are_kept(self) -> None:
        # RFC 9051 2.3.2 names them; a client sets them like any keyword, and PERMANENTFLAGS has \*.
        session = await self.rev2()
        keywords = b"$Forwarded $Junk $MDNSent $NotJunk $Phishing"
        await self.check(
            session, b"a STORE 1 +FLAGS (" + keywords + b")", b"1 FETCH (FLAGS (" + keywords + b"))",
            result=b"OK STORE completed",
        )
        self.assertEqual(self.inbox.get(2).flags, frozenset(keywords.decode().split()))

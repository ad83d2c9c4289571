"""METADATA (RFC 5464): GETMETADATA/SETMETADATA on the server and on mailboxes, limits, RENAME and DELETE."""

from __future__ import annotations

import dataclasses
import json
import os

from imap_harness import ALICE, IMAPTestCase, Session
from mailsrv import config as configuration
from mailsrv.store import metadata


class MetadataCase(IMAPTestCase):
    async def session(self) -> Session:
        return await self.login(select=None)

    async def check(self, session: Session, command: bytes, *untagged: bytes, result: bytes) -> None:
        tag = command.split(b" ", 1)[0]
        expected = b"".join(b"* " + line + b"\r\n" for line in untagged) + tag + b" " + result + b"\r\n"
        self.assertEqual(await session.command(command), expected)

    async def literal(self, session: Session, head: bytes, data: bytes, tail: bytes) -> bytes:
        """``a ...`` with *data* as a synchronising literal after *head*."""
        self.assertTrue(session.send(head + b"\r\n").startswith(b"+ "))
        session.server.dataReceived(data + tail + b"\r\n")
        return await session.wait_for(b"a")

    def stored(self) -> metadata.Annotations:
        return metadata.read(self.store.user(ALICE).path)


class Capability(MetadataCase):
    async def test_offered(self) -> None:
        session = await self.session()
        self.assertIn(b" METADATA ", (await session.command(b"c CAPABILITY")).split(b"\r\n")[0] + b" ")


class Mailbox(MetadataCase):
    async def test_set_then_get_private_and_shared(self) -> None:
        session = await self.session()
        await self.check(session, b'a SETMETADATA INBOX (/private/comment "My own comment" /shared/comment "Shared")',
                         result=b"OK SETMETADATA completed")
        await self.check(session, b'b GETMETADATA "INBOX" (/shared/comment /private/comment)',
                         b'METADATA "INBOX" (/shared/comment "Shared" /private/comment "My own comment")',
                         result=b"OK GETMETADATA completed")

    async def test_an_entry_not_set_is_nil(self) -> None:
        session = await self.session()
        await self.check(session, b"a GETMETADATA INBOX /private/comment",
                         b'METADATA "INBOX" (/private/comment NIL)', result=b"OK GETMETADATA completed")

    async def test_names_are_case_insensitive(self) -> None:
        session = await self.session()
        await session.command(b'a SETMETADATA INBOX (/Private/Comment "x")')
        await self.check(session, b"b GETMETADATA INBOX /PRIVATE/COMMENT",
                         b'METADATA "INBOX" (/private/comment "x")', result=b"OK GETMETADATA completed")

    async def test_nil_removes_an_entry(self) -> None:
        session = await self.session()
        await session.command(b'a SETMETADATA INBOX (/private/comment "x")')
        await self.check(session, b"b SETMETADATA INBOX (/private/comment NIL)", result=b"OK SETMETADATA completed")
        self.assertEqual(self.stored(), {})

    async def test_a_multiline_literal_value(self) -> None:
        session = await self.session()
        value = b"My new comment across\r\ntwo lines.\r\n"
        reply = await self.literal(session, b"a SETMETADATA INBOX (/private/comment {%d}" % len(value), value, b")")
        self.assertEqual(reply, b"a OK SETMETADATA completed\r\n")
        await self.check(session, b"b GETMETADATA INBOX /private/comment",
                         b'METADATA "INBOX" (/private/comment {%d}\r\n%s)' % (len(value), value),
                         result=b"OK GETMETADATA completed")

    async def test_a_binary_value_as_literal8_comes_back_as_literal8(self) -> None:
        session = await self.session()
        value = b"\x00\x01\n\xff"
        reply = await self.literal(session, b"a SETMETADATA INBOX (/private/vendor/x/bin ~{%d}" % len(value), value, b")")
        self.assertEqual(reply, b"a OK SETMETADATA completed\r\n")
        await self.check(session, b"b GETMETADATA INBOX /private/vendor/x/bin",
                         b'METADATA "INBOX" (/private/vendor/x/bin ~{4}\r\n\x00\x01\n\xff)',
                         result=b"OK GETMETADATA completed")

    async def test_a_missing_mailbox_is_no(self) -> None:
        session = await self.session()
        await self.check(session, b'a SETMETADATA Nope (/private/comment "x")', result=b"NO [NONEXISTENT] No such mailbox")
        await self.check(session, b"b GETMETADATA Nope /private/comment", result=b"NO [NONEXISTENT] No such mailbox")
        self.assertEqual(self.stored(), {})

    async def test_all_or_nothing(self) -> None:
        session = await self.session()
        big = b"x" * 20000
        reply = await self.literal(session, b'a SETMETADATA INBOX (/private/a "small" /private/b {%d}' % len(big), big, b")")
        self.assertEqual(reply, b"a NO [METADATA MAXSIZE 16384] Value too large\r\n")
        self.assertEqual(self.stored(), {})

    async def test_utf8_mailbox_names_after_enable(self) -> None:
        session = await self.session()
        await session.command(b'c CREATE "Entw&APw-rfe"')
        await session.command(b"e ENABLE UTF8=ACCEPT")
        await session.command(b'a SETMETADATA "Entw\xc3\xbcrfe" (/private/comment "d")')
        await self.check(session, b'b GETMETADATA "Entw\xc3\xbcrfe" /private/comment',
                         b'METADATA "Entw\xc3\xbcrfe" (/private/comment "d")', result=b"OK GETMETADATA completed")
        self.assertEqual(self.stored(), {"Entwürfe": {"/private/comment": b"d"}})


class Options(MetadataCase):
    async def setUp(self) -> None:  # type: ignore[override]
        super().setUp()
        session = await self.session()
        reply = await session.command(
            b'a SETMETADATA INBOX (/private/filters/values/small "SMALLER 5000" /private/filters/values/boss '
            b'"FROM \\"boss@example.com\\"" /private/filters/values/boss/deep "d" /shared/comment "'
            + b"c" * 2199 + b'" /private/comment "My own comment")')
        self.assertEqual(reply, b"a OK SETMETADATA completed\r\n")
        session.close()

    async def test_maxsize_leaves_out_long_values_and_says_how_long(self) -> None:
        session = await self.session()
        await self.check(session, b'a GETMETADATA (MAXSIZE 1024) "INBOX" (/shared/comment /private/comment)',
                         b'METADATA "INBOX" (/private/comment "My own comment")',
                         result=b"OK [METADATA LONGENTRIES 2199] GETMETADATA completed")

    async def test_depth_1_adds_children_not_grandchildren(self) -> None:
        session = await self.session()
        await self.check(session, b'a GETMETADATA (DEPTH 1) "INBOX" (/private/filters/values)',
                         b'METADATA "INBOX" (/private/filters/values NIL /private/filters/values/boss '
                         b'"FROM \\"boss@example.com\\"" /private/filters/values/small "SMALLER 5000")',
                         result=b"OK GETMETADATA completed")

    async def test_depth_infinity_on_a_scope_lists_the_tree(self) -> None:
        session = await self.session()
        reply = await session.command(b'a GETMETADATA (DEPTH infinity MAXSIZE 100) "INBOX" /private')
        self.assertEqual(reply.count(b"/private/"), 4)
        self.assertIn(b"/private/filters/values/boss/deep", reply)
        self.assertNotIn(b"/shared/comment", reply)

    async def test_unknown_option_and_bad_depth_are_bad(self) -> None:
        session = await self.session()
        self.assertTrue((await session.command(b"a GETMETADATA (FOO 1) INBOX /private/comment")).startswith(b"a BAD "))
        self.assertTrue((await session.command(b"b GETMETADATA (DEPTH 2) INBOX /private/comment")).startswith(b"b BAD "))


class EntryNames(MetadataCase):
    async def test_invalid_names_are_bad(self) -> None:
        session = await self.session()
        for name in (b"/private/a*", b"/private/a%b", b"/other/x", b"/private//x", b"/private/x/", b"comment",
                     b"/shared", b"/shared/vendor/x", b"/private/\xc3\xa9", b"/private/a\tb"):
            reply = await session.command(b'a SETMETADATA INBOX ("' + name + b'" "v")')
            self.assertEqual(reply, b"a BAD Invalid entry name\r\n", name)
        self.assertEqual(await session.command(b'b GETMETADATA INBOX "/private/a*"'), b"b BAD Invalid entry name\r\n")
        self.assertEqual(self.stored(), {})

    async def test_vendor_entries_need_four_components(self) -> None:
        session = await self.session()
        await self.check(session, b'a SETMETADATA INBOX (/shared/vendor/kolab/folder-type "mail")',
                         result=b"OK SETMETADATA completed")


class Server(MetadataCase):
    async def test_shared_admin_is_the_postmaster_and_read_only(self) -> None:
        session = await self.session()
        domain = self.ctx.config.domains[0].encode()
        await self.check(session, b'a GETMETADATA "" /shared/admin',
                         b'METADATA "" (/shared/admin "mailto:postmaster@' + domain + b'")', result=b"OK GETMETADATA completed")
        await self.check(session, b'b SETMETADATA "" (/shared/admin "mailto:me@example.test")',
                         result=b"NO Server's shared entries are read-only")
        await self.check(session, b'c SETMETADATA "" (/shared/comment "hi")',
                         result=b"NO Server's shared entries are read-only")

    async def test_private_server_entries_are_the_users(self) -> None:
        session = await self.session()
        await self.check(session, b'a SETMETADATA "" (/private/vendor/x/theme "dark")', result=b"OK SETMETADATA completed")
        other = await self.session()
        await self.check(other, b'b GETMETADATA "" /private/vendor/x/theme',
                         b'METADATA "" (/private/vendor/x/theme "dark")', result=b"OK GETMETADATA completed")
        self.assertEqual(self.stored(), {"": {"/private/vendor/x/theme": b"dark"}})


class Limits(MetadataCase):
    IMAP = configuration.IMAPConfig(drafts="", sent="", trash="", junk="", archive="", metadata_max_value_size=1024,
                                    metadata_max_entries=10, metadata_max_total_size=3000)

    def setUp(self) -> None:
        super().setUp()
        self.ctx.config = dataclasses.replace(self.ctx.config, imap=self.IMAP)

    async def test_a_value_over_the_size_is_maxsize(self) -> None:
        session = await self.session()
        await self.check(session, b'a SETMETADATA INBOX (/private/comment "' + b"x" * 1025 + b'")',
                         result=b"NO [METADATA MAXSIZE 1024] Value too large")
        await self.check(session, b'b SETMETADATA INBOX (/private/comment "' + b"x" * 1024 + b'")',
                         result=b"OK SETMETADATA completed")

    async def test_the_eleventh_entry_is_toomany_but_replacing_is_fine(self) -> None:
        session = await self.session()
        entries = b" ".join(b'/private/e%d "v"' % n for n in range(10))
        await self.check(session, b"a SETMETADATA INBOX (" + entries + b")", result=b"OK SETMETADATA completed")
        await self.check(session, b'b SETMETADATA INBOX (/private/e10 "v")', result=b"NO [METADATA TOOMANY] Too many entries")
        await self.check(session, b'c SETMETADATA INBOX (/private/e0 "w")', result=b"OK SETMETADATA completed")
        await self.check(session, b'd SETMETADATA "" (/private/e10 "v")', result=b"OK SETMETADATA completed")  # per mailbox

    async def test_the_users_total_is_maxsize_with_the_room_left(self) -> None:
        session = await self.session()
        await session.command(b"c CREATE Other")
        await self.check(session, b'a SETMETADATA INBOX (/private/a "' + b"x" * 1000 + b'" /private/b "' + b"x" * 1000
                         + b'")', result=b"OK SETMETADATA completed")
        # 2020 octets used (names and values); /private/c (10) leaves 970 for its value.
        await self.check(session, b'b SETMETADATA Other (/private/c "' + b"x" * 1000 + b'")',
                         result=b"NO [METADATA MAXSIZE 970] Value too large")
        await self.check(session, b'd SETMETADATA Other (/private/c "' + b"x" * 970 + b'")', result=b"OK SETMETADATA completed")


class FollowTheMailbox(MetadataCase):
    async def test_rename_moves_the_entries_with_subfolders(self) -> None:
        session = await self.session()
        await session.command(b"c CREATE A/B")
        await session.command(b'a SETMETADATA A (/private/comment "a")')
        await session.command(b'b SETMETADATA A/B (/private/comment "b")')
        self.assertIn(b"OK", await session.command(b"d RENAME A Z"))
        self.assertEqual(self.stored(), {"Z": {"/private/comment": b"a"}, "Z/B": {"/private/comment": b"b"}})
        await self.check(session, b"e GETMETADATA Z/B /private/comment",
                         b'METADATA "Z/B" (/private/comment "b")', result=b"OK GETMETADATA completed")

    async def test_renaming_inbox_copies_its_entries(self) -> None:
        session = await self.session()
        await session.command(b'a SETMETADATA INBOX (/private/comment "in")')
        self.assertIn(b"OK", await session.command(b"b RENAME INBOX Old"))
        self.assertEqual(self.stored(), {"INBOX": {"/private/comment": b"in"}, "Old": {"/private/comment": b"in"}})

    async def test_delete_drops_them_and_a_new_folder_starts_bare(self) -> None:
        session = await self.session()
        await session.command(b"c CREATE A/B")
        await session.command(b'a SETMETADATA A (/private/comment "a")')
        await session.command(b'b SETMETADATA A/B (/private/comment "b")')
        self.assertIn(b"OK", await session.command(b"d DELETE A"))
        self.assertEqual(self.stored(), {"A/B": {"/private/comment": b"b"}})
        await session.command(b"e CREATE A")
        await self.check(session, b"f GETMETADATA A /private/comment",
                         b'METADATA "A" (/private/comment NIL)', result=b"OK GETMETADATA completed")


class File(MetadataCase):
    async def test_written_atomically_as_json_beside_the_folders(self) -> None:
        session = await self.session()
        await session.command(b'a SETMETADATA INBOX (/private/comment "x")')
        root = self.store.user(ALICE).path
        with open(os.path.join(root, metadata.FILENAME), encoding="utf-8") as f:
            self.assertEqual(json.load(f), {"INBOX": {"/private/comment": "eA=="}})
        self.assertEqual([n for n in os.listdir(root) if n.endswith(".tmp")], [])

    async def test_a_corrupt_file_is_no_not_a_traceback(self) -> None:
        root = self.store.user(ALICE).path
        with open(os.path.join(root, metadata.FILENAME), "w") as f:
            f.write("{not json")
        session = await self.session()
        await self.check(session, b"a GETMETADATA INBOX /private/comment", result=b"NO mailsrv-metadata is corrupt")
        await self.check(session, b'b SETMETADATA INBOX (/private/comment "x")', result=b"NO mailsrv-metadata is corrupt")

    async def test_malformed_commands_are_bad(self) -> None:
        session = await self.session()
        for command in (b"a SETMETADATA INBOX /private/comment", b'a SETMETADATA INBOX (/private/comment)',
                        b"a SETMETADATA INBOX (/private/comment x)", b"a GETMETADATA INBOX", b"a GETMETADATA"):
            self.assertTrue((await session.command(command)).startswith(b"a BAD "), command)

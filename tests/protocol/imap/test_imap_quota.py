"""QUOTA (RFC 9208): GETQUOTAROOT, GETQUOTA, SETQUOTA refused, OVERQUOTA before anything is written."""

from __future__ import annotations

import os

from imap_harness import ALICE, IMAPTestCase
from mailsrv import config as configuration
from mailsrv.accounts import passwords
from mailsrv.store import maildirsize

#: Two fit in 2 KiB on disk (LF line ends), three do not.
MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\n" + (b"y" * 72 + b"\r\n") * 10
DISK = len(MESSAGE.replace(b"\r\n", b"\n"))


class Quota(IMAPTestCase):
    QUOTA = configuration.QuotaConfig(storage_kib=2, messages=3)

    def setUp(self) -> None:
        super().setUp()
        self.successResultOf(self.store.user(ALICE).create_folder("Archive"))
        self.archive = self.folder("Archive")

    def maildirsize_limits(self) -> str:
        with open(os.path.join(self.store.user(ALICE).path, maildirsize.FILENAME)) as f:
            return f.readline().strip()

    async def test_getquotaroot_names_the_root_and_its_usage(self) -> None:
        self.assertTrue(1024 <= 2 * DISK <= 2048 < 3 * DISK, DISK)
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()
        self.assertEqual(
            await session.command(b"a GETQUOTAROOT INBOX"),
            b'* QUOTAROOT "INBOX" "User quota"\r\n'
            b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 2 3)\r\n'
            b"a OK GETQUOTAROOT completed\r\n",
        )
        self.assertEqual(
            await session.command(b'b GETQUOTA "User quota"'),
            b'* QUOTA "User quota" (STORAGE 1 2 MESSAGE 2 3)\r\nb OK GETQUOTA completed\r\n',
        )
        self.assertEqual(self.maildirsize_limits(), "2048S,3C")  # Maildir++ keeps the limits we enforce

    async def test_unknown_root_and_mailbox(self) -> None:
        session = await self.login()
        self.assertEqual(await session.command(b"a GETQUOTA nope"), b"a NO [NONEXISTENT] No such quota root\r\n")
        self.assertEqual(await session.command(b"b GETQUOTAROOT Nope"), b"b NO [NONEXISTENT] No such mailbox\r\n")
        self.assertTrue((await session.command(b"c GETQUOTAROOT")).startswith(b"c BAD "))

    async def test_setquota_is_refused_and_changes_nothing(self) -> None:
        session = await self.login()
        self.assertEqual(
            await session.command(b'a SETQUOTA "User quota" (STORAGE 512)'),
            b"a NO [NOPERM] Quota limits are set by the administrator\r\n",
        )
        self.assertTrue((await session.command(b'b SETQUOTA "User quota" STORAGE')).startswith(b"b BAD "))
        self.assertIn(b"(STORAGE 0 2 MESSAGE 0 3)", await session.command(b'c GETQUOTA "User quota"'))

    async def test_append_over_quota_is_refused_before_writing(self) -> None:
        await self.deliver(MESSAGE, MESSAGE)
        session = await self.login()
        self.assertEqual(
            await session.command(b"a APPEND Archive {%d+}\r\n" % len(MESSAGE) + MESSAGE),
            b"a NO [OVERQUOTA] Quota exceeded (mailbox full)\r\n",  # three > 2 KiB
        )
        self.assertEqual(self.folder("Archive").messages(), [])
        small = b"Subject: s\r\n\r\nhi\r\n"
        reply = await session.command(b"b APPEND Archive {%d+}\r\n" % len(small) + small)
        self.assertIn(b"b OK [APPENDUID", reply)
        self.assertEqual(
            await session.command(b"c APPEND Archive {%d+}\r\n" % len(small) + small),
            b"c NO [OVERQUOTA] Quota exceeded (mailbox full)\r\n",  # a 4th message > 3
        )

    async def test_copy_over_quota_is_refused_and_move_is_not(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        self.successResultOf(self.store.user(ALICE).quota_usage())  # a maildirsize to keep up to date
        session = await self.login()
        self.assertEqual(await session.command(b"a COPY 1 Archive"), b"a NO [OVERQUOTA] Quota exceeded (mailbox full)\r\n")
        self.assertEqual(self.folder("Archive").messages(), [])
        reply = await session.command(b"b MOVE 1:2 Archive")  # usage stays what it is
        self.assertTrue(reply.endswith(b"b OK MOVE completed\r\n"), reply)
        self.assertEqual(len(self.folder("Archive").messages()), 2)
        self.assertIn(b"(STORAGE %d 2 MESSAGE 3 3)" % (3 * DISK // 1024), await session.command(b'c GETQUOTA "User quota"'))

    async def test_status_deleted_and_deleted_storage(self) -> None:
        await self.deliver(MESSAGE, MESSAGE, MESSAGE)
        session = await self.login()
        await session.command(b"a STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(
            await session.command(b"b STATUS INBOX (MESSAGES DELETED DELETED-STORAGE)"),
            b'* STATUS "INBOX" (MESSAGES 3 DELETED 2 DELETED-STORAGE 1)\r\nb OK STATUS completed\r\n',
        )

    async def test_the_user_file_overrides_the_default(self) -> None:
        stored = passwords.hash_password("pw")
        with open(self.ctx.config.users_file, "w") as f:
            f.write(f"{ALICE}:{stored}::::::userdb_quota_rule=*:storage=0:messages=1\n")
        await self.deliver(MESSAGE)
        session = await self.login()
        self.assertEqual(
            await session.command(b"a GETQUOTAROOT INBOX"),
            b'* QUOTAROOT "INBOX" "User quota"\r\n* QUOTA "User quota" (MESSAGE 1 1)\r\na OK GETQUOTAROOT completed\r\n',
        )
        self.assertEqual(self.maildirsize_limits(), "1C")


class NoQuota(IMAPTestCase):
    async def test_no_limits_means_no_quota_root(self) -> None:
        await self.deliver(MESSAGE)
        session = await self.login()
        self.assertEqual(await session.command(b"a GETQUOTAROOT INBOX"),
                         b'* QUOTAROOT "INBOX"\r\na OK GETQUOTAROOT completed\r\n')
        self.assertEqual(await session.command(b'b GETQUOTA "User quota"'),
                         b"b NO [NONEXISTENT] No such quota root\r\n")
        reply = await session.command(b"c APPEND INBOX {%d+}\r\n" % len(MESSAGE) + MESSAGE)
        self.assertIn(b"c OK [APPENDUID", reply)

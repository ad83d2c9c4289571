"""The submission checks' header reads: in memory on the reactor thread, a spooled body in the disk pool."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailsrv.delivery.envelope import Envelope
from mailsrv.message.body import Body, BodyWriter
from mailsrv.policy import CheckContext, Check
from mailsrv.policy.submission import CompleteHeader, SenderIsLogin
from support import CountingExecutor

ALICE = "alice@example.test"
MESSAGE = b"From: Alice <alice@example.test>\r\nSubject: hi\r\n\r\nbody\r\n"


class Owners:
    def may_send_as(self, login: str, address: str) -> bool:
        return login == address


class SubmissionReadTests(unittest.TestCase):
    def verdict(self, check: Check, body: Body) -> tuple[Any, int]:
        """The verdict of *check* at DATA for *body* sent by alice on a submission port, and the disk jobs run."""
        disk = CountingExecutor()
        session = SimpleNamespace(kind=SimpleNamespace(submission=True), user=ALICE)
        ctx = CheckContext(session=session, resolver=None, disk=disk)  # type: ignore[arg-type]
        envelope = Envelope(queue_id="q", sender=ALICE, body=body)
        verdict = self.successResultOf(defer.ensureDeferred(check.data(ctx, envelope)))  # type: ignore[arg-type]
        return verdict, disk.jobs

    def spooled(self, wire: bytes) -> Body:
        writer = BodyWriter(self.mktemp(), threshold=0)
        writer.write(wire)
        body = writer.finish()
        self.addCleanup(body.discard)
        self.assertFalse(body.in_memory)
        return body

    def test_author_of_a_body_in_memory_is_read_without_the_pool(self) -> None:
        verdict, jobs = self.verdict(SenderIsLogin(Owners()), Body.from_wire(MESSAGE))
        self.assertEqual((verdict.accepted, jobs), (True, 0))
        forged = MESSAGE.replace(b"alice@", b"boss@")
        verdict, jobs = self.verdict(SenderIsLogin(Owners()), Body.from_wire(forged))
        self.assertEqual((verdict.reply.code, jobs), (550, 0))

    def test_author_of_a_spooled_body_is_read_in_the_disk_pool(self) -> None:
        verdict, jobs = self.verdict(SenderIsLogin(Owners()), self.spooled(MESSAGE.replace(b"alice@", b"boss@")))
        self.assertEqual((verdict.reply.code, jobs), (550, 1))

    def test_missing_fields_of_a_body_in_memory_are_found_without_the_pool(self) -> None:
        verdict, jobs = self.verdict(CompleteHeader("mail.example.test"), Body.from_wire(MESSAGE))
        self.assertEqual(jobs, 0)
        self.assertEqual(sorted(f.split(b":")[0] for f in verdict.fields), [b"Date", b"Message-ID"])

    def test_missing_fields_of_a_spooled_body_are_found_in_the_disk_pool(self) -> None:
        complete = b"Date: Mon, 1 Dec 2026 00:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n" + MESSAGE
        verdict, jobs = self.verdict(CompleteHeader("mail.example.test"), self.spooled(complete))
        self.assertEqual((verdict.fields, jobs), ((), 1))

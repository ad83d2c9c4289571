"""The hop count (RFC 5321 6.3): where it reads the header, and its verdict."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailsrv.delivery.envelope import Envelope
from mailsrv.message.body import Body, BodyWriter
from mailsrv.policy import CheckContext
from mailsrv.policy.loops import MAX_HOPS, HopLimit
from support import CountingExecutor

HOP = b"Received: from a.example by b.example; Mon, 1 Dec 2026 00:00:00 +0000\r\n"


class HopLimitTests(unittest.TestCase):
    def verdict(self, body: Body) -> tuple[Any, int]:
        disk = CountingExecutor()
        ctx = CheckContext(session=None, resolver=None, disk=disk)  # type: ignore[arg-type]
        envelope = Envelope(queue_id="q", sender="", body=body)
        verdict = self.successResultOf(defer.ensureDeferred(HopLimit().data(ctx, envelope)))  # type: ignore[arg-type]
        return (verdict.reply.code if verdict.reply else None), disk.jobs

    def spooled(self, wire: bytes) -> Body:
        writer = BodyWriter(self.mktemp(), threshold=0)
        writer.write(wire)
        body = writer.finish()
        self.addCleanup(body.discard)
        return body

    def test_body_in_memory_is_counted_without_the_pool(self) -> None:
        verdict, jobs = self.verdict(Body.from_wire(HOP * MAX_HOPS + b"Subject: x\r\n\r\nhi\r\n"))
        self.assertEqual((verdict, jobs), (None, 0))
        verdict, jobs = self.verdict(Body.from_wire(HOP * (MAX_HOPS + 1) + b"Subject: x\r\n\r\nhi\r\n"))
        self.assertEqual((verdict, jobs), (554, 0))

    def test_spooled_body_is_read_in_the_disk_pool(self) -> None:
        body = self.spooled(HOP * (MAX_HOPS + 1) + b"Subject: x\r\n\r\nhi\r\n")
        self.assertFalse(body.in_memory)
        verdict, jobs = self.verdict(body)
        self.assertEqual((verdict, jobs), (554, 1))

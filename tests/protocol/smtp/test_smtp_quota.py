"""A full mailbox (``[quota]``, the user file): 452 4.2.2 per recipient, 552 5.2.2 when it can never fit.

Sessions on port 25 with the real store; the directory's limits are
alice: 2 KiB of storage, bob: one message, carol: none.
"""

from __future__ import annotations

import os

from mailsrv.message.body import Body
from mailsrv.smtp import replies
from mailsrv.store import Target
from mailsrv.store.maildirsize import Limits
from support import make_context
from test_smtp_inbound import QUEUED, InboundTestCase
from test_smtp_session import FakeDirectory

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@example.test"


class QuotaDirectory(FakeDirectory):
    limits = {ALICE: Limits(storage=2048), BOB: Limits(messages=1)}

    def quota(self, address: str) -> Limits:
        return self.limits.get(address, Limits())


def message(octets: int) -> bytes:
    """A message of about *octets* octets on disk (before our trace headers)."""
    return b"Subject: q\r\n\r\n" + (b"z" * 99 + b"\r\n") * (octets // 100)


def wire(reply) -> bytes:
    return reply.wire()


class QuotaTests(InboundTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.ctx = make_context(self.config, directory=QuotaDirectory(), checker=self.checker, tls_options=object())
        self.connect()
        self.ehlo()

    def fill(self, address: str, octets: int) -> None:
        """Put a message into *address*'s INBOX behind SMTP's back."""
        self.successResultOf(self.ctx.store.deliver([Target(address)], Body.from_wire(message(octets))))

    def stored(self, address: str) -> int:
        local = address.partition("@")[0]
        new = os.path.join(self.config.mail_dir, "example.test", local, "new")
        return len(os.listdir(new)) if os.path.isdir(new) else 0

    def send(self, data: bytes) -> bytes:
        self.assertEqual(self.say(b"DATA\r\n"), b"354 End data with <CR><LF>.<CR><LF>\r\n")
        return self.say(data + b".\r\n")

    def test_recipient_over_quota_gets_452_and_the_others_get_the_mail(self):
        self.fill(ALICE, 2100)
        self.fill(BOB, 100)
        self.mail()
        self.assertEqual(self.rcpt(ALICE.encode()), wire(replies.MAILBOX_FULL(address=ALICE)))
        self.assertEqual(self.rcpt(ALICE.encode()), b"452 4.2.2 <alice@example.test>: Mailbox full, try again later\r\n")
        self.assertEqual(self.rcpt(BOB.encode()), wire(replies.MAILBOX_FULL(address=BOB)))  # its one message
        self.assertEqual(self.rcpt(CAROL.encode()), b"250 2.1.5 Ok\r\n")
        self.assertRegex(self.send(message(100)), QUEUED)
        self.assertEqual((self.stored(ALICE), self.stored(BOB), self.stored(CAROL)), (1, 1, 1))

    def test_declared_size_decides_at_rcpt(self):
        self.fill(ALICE, 1000)
        self.mail(b"<bob@example.net> SIZE=3000")
        self.assertEqual(self.rcpt(ALICE.encode()), b"552 5.2.2 <alice@example.test>: Message is larger than the mailbox quota\r\n")
        self.say(b"RSET\r\n")
        self.mail(b"<bob@example.net> SIZE=1500")  # fits the quota, not what is left of it
        self.assertEqual(self.rcpt(ALICE.encode()), wire(replies.MAILBOX_FULL(address=ALICE)))
        self.say(b"RSET\r\n")
        self.mail(b"<bob@example.net> SIZE=500")
        self.assertEqual(self.rcpt(ALICE.encode()), b"250 2.1.5 Ok\r\n")

    def test_after_the_data_a_message_that_does_not_fit_is_refused_and_not_stored(self):
        self.fill(ALICE, 1500)
        self.mail()
        self.assertEqual(self.rcpt(ALICE.encode()), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.send(message(800)), wire(replies.MAILBOX_FULL(address=ALICE)))
        self.assertEqual(self.stored(ALICE), 1)
        self.assertEqual(self.transactions()[-1]["result"], 452)

    def test_after_the_data_a_message_larger_than_the_quota_is_refused_for_good(self):
        self.mail()
        self.assertEqual(self.rcpt(ALICE.encode()), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.send(message(3000)), wire(replies.MAILBOX_TOO_SMALL(address=ALICE)))
        self.assertEqual(self.stored(ALICE), 0)

    def test_with_another_recipient_the_message_is_stored_for_both(self):
        self.fill(ALICE, 1500)  # under quota at RCPT, so the 250 covers alice too
        self.mail()
        self.assertEqual(self.rcpt(ALICE.encode()), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.rcpt(CAROL.encode()), b"250 2.1.5 Ok\r\n")
        self.assertRegex(self.send(message(800)), QUEUED)
        self.assertEqual((self.stored(ALICE), self.stored(CAROL)), (2, 1))

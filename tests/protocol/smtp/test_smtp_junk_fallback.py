"""Mail bound for Junk when the recipient has no Junk folder: it lands in the INBOX, never lost or refused.

A message goes to Junk for its author's DMARC ``p=quarantine``, for
``p=reject`` with ``dmarc_reject = false``, and for rspamd's ``add header``;
an account set up before special-use folders existed has none, and a
user may delete theirs.  Each session here delivers into a real store
(Maildir in the test's directory): with a Junk folder the message is in
it; renamed, it is in the folder that now has the ``\\Junk`` use; without,
it is in the INBOX, marked as the Junk copy would be
(Authentication-Results, X-Spam), with one log line that says so.
"""

from __future__ import annotations

import dataclasses
import os

from twisted.logger import globalLogPublisher

from mailsrv import config as configuration
from mailsrv.store import Store
from mailsrv.workers import InlineExecutor
from rspamd_harness import FakeRspamd
from senderauth_harness import message
from support import make_context
from test_smtp_senderauth import QUEUED, SenderAuthTestCase
from test_smtp_session import HOST, FakeDirectory
from test_smtp_spam import replied

ALICE = "alice@example.test"


class JunkFallbackTestCase(SenderAuthTestCase):
    """Port 25 sessions into a real store; q.example publishes ``p=quarantine``."""

    def setUp(self) -> None:
        super().setUp()
        self.zone.add("_dmarc.q.example", "TXT", '"v=DMARC1; p=quarantine"')
        self.real = Store(self.config.mail_dir, InlineExecutor())
        self.ctx = make_context(self.config, store=self.real, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), resolver=self.ctx.policy.resolver, clock=self.clock)
        self.events: list[dict] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def maildir(self, folder: str = "") -> str:
        return os.path.join(self.config.mail_dir, "example.test", "alice", f".{folder}" if folder else "")

    def stored(self, folder: str = "") -> list[bytes]:
        """The messages of alice's *folder* (INBOX by default), ``new/`` and ``cur/``."""
        found = []
        for sub in ("new", "cur"):
            path = os.path.join(self.maildir(folder), sub)
            for name in sorted(os.listdir(path)) if os.path.isdir(path) else ():
                with open(os.path.join(path, name), "rb") as f:
                    found.append(f.read())
        return found

    def fallbacks(self, folder: str = "INBOX") -> list[str]:
        """What the log said of copies that went to *folder* for want of their own."""
        logged = [e["log_format"].format(**e) for e in self.events if "no folder" in e.get("log_format", "")]
        return [line for line in logged if line.endswith(f"delivered to {folder}")]

    def quarantined(self) -> bytes:
        """Send a message that fails q.example's DMARC; the reply."""
        return self.send(message("bob@q.example", subject="quarantined"))

    def assert_in_the_inbox(self, *marks: bytes) -> None:
        [inbox] = self.stored()
        self.assertIn(b"Subject: quarantined", inbox)
        for mark in marks:
            self.assertIn(mark, inbox)
        self.assertEqual(self.stored("Junk"), [])
        self.assertEqual(self.fallbacks(), [f"delivery to {ALICE}: no folder Junk; delivered to INBOX"])


class DMARCTests(JunkFallbackTestCase):
    QUARANTINED = f"Authentication-Results: {HOST};".encode()

    def test_with_a_junk_folder_quarantine_goes_there(self):
        self.successResultOf(self.real.user(ALICE).provision({"\\Junk": "Junk"}))
        self.assertRegex(self.quarantined(), QUEUED)
        [junk] = self.stored("Junk")
        self.assertIn(b"dmarc=fail (p=quarantine dis=quarantine) header.from=q.example", junk)
        self.assertEqual(self.stored(), [])
        self.assertEqual(self.fallbacks(), [])

    def test_an_account_that_never_had_one_gets_it_in_the_inbox(self):
        self.assertRegex(self.quarantined(), QUEUED)
        self.assert_in_the_inbox(self.QUARANTINED, b"dmarc=fail (p=quarantine dis=quarantine) header.from=q.example")

    def test_a_user_who_renamed_junk_gets_it_in_the_renamed_folder(self):
        """The \\Junk use follows a RENAME (RFC 6154): the folder the user calls Spam now takes it."""
        user = self.real.user(ALICE)
        self.successResultOf(user.provision({"\\Junk": "Junk"}))
        self.successResultOf(user.rename_folder("Junk", "Spam"))
        self.assertRegex(self.quarantined(), QUEUED)
        [spam] = self.stored("Spam")
        self.assertIn(b"Subject: quarantined", spam)
        self.assertEqual((self.stored(), self.stored("Junk")), ([], []))
        self.assertEqual(self.fallbacks("Spam"), [f"delivery to {ALICE}: no folder Junk; delivered to Spam"])
        self.assertEqual(self.fallbacks(), [])

    def test_a_user_who_deleted_junk_gets_it_in_the_inbox(self):
        user = self.real.user(ALICE)
        self.successResultOf(user.provision({"\\Junk": "Junk"}))
        self.successResultOf(user.delete_folder("Junk"))
        self.assertFalse(os.path.isdir(os.path.join(self.maildir("Junk"), "cur")))
        self.assertRegex(self.quarantined(), QUEUED)
        self.assert_in_the_inbox(self.QUARANTINED)


class RejectToJunkTests(JunkFallbackTestCase):
    dmarc_reject = False

    def test_a_reject_policy_delivered_to_junk_lands_in_the_inbox(self):
        self.assertRegex(self.send(message(subject="quarantined"), sender="forger@elsewhere.example"), QUEUED)
        self.assert_in_the_inbox(b"dmarc=fail (p=reject dis=reject) header.from=example.net")


class SpamTests(JunkFallbackTestCase):
    def setUp(self) -> None:
        self.rspamd = FakeRspamd()
        self.url = self.rspamd.listen(self)
        self.rspamd.mode, self.rspamd.score = "add header", 7.2
        super().setUp()

    def make_config(self, **auth):
        return dataclasses.replace(super().make_config(**auth), spam=configuration.SpamConfig(rspamd=self.url))

    async def test_add_header_without_a_junk_folder_lands_in_the_inbox(self):
        self.connect()
        self.say(b"EHLO client.example.net\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
                 b"DATA\r\n")
        self.transport.clear()
        self.server.dataReceived(message(subject="quarantined") + b".\r\n")
        self.assertRegex(await replied(self), QUEUED)
        self.assert_in_the_inbox(b"\nX-Spam: Yes\n", b"\nX-Spam-Action: add header\n")  # disk form: LF

"""Mail bound for Junk when the recipient has no Junk folder: the folder is made, never the INBOX.

A message goes to Junk for its author's DMARC ``p=quarantine``, for
``p=reject`` with ``dmarc_reject = false``, and for rspamd's ``add header``;
an account that never logged in over IMAP has no Junk yet, and a user may
delete theirs.  Delivered to the INBOX, a forgery the author's domain asked
to quarantine would sit where the user trusts mail, so the folder is made
(subscribed) instead.  Each session here delivers into a real store
(Maildir in the test's directory): with a Junk folder the message is in
it; renamed, it is in the folder that now has the ``\\Junk`` use; without,
Junk is made and takes it, with one log line that says so.
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

    def assert_in_a_new_junk(self, *marks: bytes) -> None:
        """The message is in a Junk folder made for it, subscribed; nothing in the INBOX."""
        [junk] = self.stored("Junk")
        self.assertIn(b"Subject: quarantined", junk)
        for mark in marks:
            self.assertIn(mark, junk)
        self.assertEqual(self.stored(), [])
        self.assertIn("Junk", self.successResultOf(self.real.user(ALICE).subscriptions()))
        self.assertEqual(self.made(), [f"delivery to {ALICE}: no folder Junk; made it"])
        self.assertEqual(self.fallbacks(), [])

    def made(self) -> list[str]:
        logged = [e["log_format"].format(**e) for e in self.events if "no folder" in e.get("log_format", "")]
        return [line for line in logged if line.endswith("made it")]


class DMARCTests(JunkFallbackTestCase):
    QUARANTINED = f"Authentication-Results: {HOST};".encode()

    def test_with_a_junk_folder_quarantine_goes_there(self):
        self.successResultOf(self.real.user(ALICE).provision({"\\Junk": "Junk"}))
        self.assertRegex(self.quarantined(), QUEUED)
        [junk] = self.stored("Junk")
        self.assertIn(b"dmarc=fail (p=quarantine dis=quarantine) header.from=q.example", junk)
        self.assertEqual(self.stored(), [])
        self.assertEqual(self.fallbacks(), [])

    def test_an_account_that_never_had_one_gets_junk_made(self):
        self.assertRegex(self.quarantined(), QUEUED)
        self.assert_in_a_new_junk(self.QUARANTINED, b"dmarc=fail (p=quarantine dis=quarantine) header.from=q.example")

    def test_the_first_login_after_it_still_sets_up_every_special_folder(self):
        """No special-use file was written for the new Junk: provisioning makes Drafts, Sent, Trash and names Junk."""
        self.assertRegex(self.quarantined(), QUEUED)
        user = self.real.user(ALICE)
        defaults = {"\\Drafts": "Drafts", "\\Junk": "Junk", "\\Sent": "Sent", "\\Trash": "Trash"}
        self.assertEqual(sorted(self.successResultOf(user.provision(defaults))), ["Drafts", "Sent", "Trash"])
        self.assertEqual(self.successResultOf(user.special_use())["Junk"], frozenset({"\\Junk"}))

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

    def test_a_user_who_deleted_junk_gets_it_made_again_with_its_use(self):
        user = self.real.user(ALICE)
        self.successResultOf(user.provision({"\\Junk": "Junk"}))
        self.successResultOf(user.delete_folder("Junk"))
        self.assertFalse(os.path.isdir(os.path.join(self.maildir("Junk"), "cur")))
        self.assertRegex(self.quarantined(), QUEUED)
        self.assert_in_a_new_junk(self.QUARANTINED)
        self.assertEqual(self.successResultOf(user.special_use())["Junk"], frozenset({"\\Junk"}))


class RejectToJunkTests(JunkFallbackTestCase):
    dmarc_reject = False

    def test_a_reject_policy_delivered_to_junk_makes_junk(self):
        self.assertRegex(self.send(message(subject="quarantined"), sender="forger@elsewhere.example"), QUEUED)
        self.assert_in_a_new_junk(b"dmarc=fail (p=reject dis=reject) header.from=example.net")


class SpamTests(JunkFallbackTestCase):
    def setUp(self) -> None:
        self.rspamd = FakeRspamd()
        self.url = self.rspamd.listen(self)
        self.rspamd.mode, self.rspamd.score = "add header", 7.2
        super().setUp()

    def make_config(self, **auth):
        return dataclasses.replace(super().make_config(**auth), spam=configuration.SpamConfig(rspamd=self.url))

    async def test_add_header_without_a_junk_folder_makes_junk(self):
        self.connect()
        self.say(b"EHLO client.example.net\r\nMAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
                 b"DATA\r\n")
        self.transport.clear()
        self.server.dataReceived(message(subject="quarantined") + b".\r\n")
        self.assertRegex(await replied(self), QUEUED)
        self.assert_in_a_new_junk(b"\nX-Spam: Yes\n", b"\nX-Spam-Action: add header\n")  # disk form: LF

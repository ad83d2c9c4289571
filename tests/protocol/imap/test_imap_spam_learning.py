"""COPY and MOVE into and out of the \\Junk folder teach rspamd's controller (a fake on 127.0.0.1).

Into Junk is ``/learnspam``, out of it (not to the Trash) ``/learnham``;
the client's reply never depends on the controller, which may be down.
"""

from __future__ import annotations

import dataclasses

from twisted.internet import defer, reactor, task

from imap_harness import IMAPTestCase
from mailsrv import config as configuration
from rspamd_harness import FakeRspamd
from support import make_context

MESSAGE = b"From: bob@example.net\r\nSubject: cheap pills\r\n\r\nBuy now.\r\n"


class LearningCase(IMAPTestCase):
    """alice with the default special folders; the context's [spam] controller is :attr:`rspamd`."""

    SPECIAL_FOLDERS = True
    password_file = ""

    def setUp(self) -> None:
        super().setUp()
        self.rspamd = FakeRspamd()
        spam = configuration.SpamConfig(controller=self.rspamd.listen(self), password_file=self.password_file)
        self.ctx = make_context(dataclasses.replace(self.ctx.config, spam=spam), store=self.store)

    async def settled(self) -> None:
        """Every lesson given (the learner works after the command answered)."""
        learner = self.ctx.spam_learner
        assert learner is not None
        await defer.gatherResults(list(learner.pending))

    async def lessons(self, *commands: bytes) -> list[tuple[str, bytes]]:
        """Run *commands* (each must succeed); the controller's requests: path, body."""
        session = await self.login()
        for command in commands:
            reply = await session.command(command)
            self.assertRegex(reply, rb"(\A|\n)a OK ")
        await self.settled()
        return [(request.path, request.body) for request in self.rspamd.requests]


class Learning(LearningCase):
    async def test_moving_into_junk_is_spam(self) -> None:
        await self.deliver(MESSAGE)
        self.assertEqual(await self.lessons(b"a MOVE 1 Junk"), [("/learnspam", MESSAGE.replace(b"\r\n", b"\n"))])

    async def test_copying_two_into_junk_teaches_both(self) -> None:
        await self.deliver(MESSAGE, MESSAGE.replace(b"pills", b"watches"))
        lessons = await self.lessons(b"a COPY 1:2 Junk")
        self.assertEqual([path for path, _ in lessons], ["/learnspam", "/learnspam"])
        self.assertIn(b"watches", lessons[1][1])

    async def test_moving_out_of_junk_is_ham(self) -> None:
        await self.deliver(MESSAGE)
        lessons = await self.lessons(b"a MOVE 1 Junk", b"a SELECT Junk", b"a MOVE 1 INBOX")
        self.assertEqual([path for path, _ in lessons], ["/learnspam", "/learnham"])

    async def test_lessons_are_given_in_the_order_of_the_commands(self) -> None:
        await self.deliver(MESSAGE)
        self.rspamd.mode = "hang"
        session = await self.login()
        for command in (b"a MOVE 1 Junk", b"a SELECT Junk", b"a MOVE 1 INBOX"):
            self.assertRegex(await session.command(command), rb"(\A|\n)a OK ")
        await self.rspamd.received(1)
        await task.deferLater(reactor, 0.2, lambda: None)
        self.assertEqual([request.path for request in self.rspamd.requests], ["/learnspam"])
        self.rspamd.mode = "no action"
        self.rspamd.answer_hanging()
        await self.settled()
        self.assertEqual([request.path for request in self.rspamd.requests], ["/learnspam", "/learnham"])

    async def test_deleting_spam_teaches_nothing(self) -> None:
        await self.deliver(MESSAGE)
        lessons = await self.lessons(b"a MOVE 1 Junk", b"a SELECT Junk", b"a MOVE 1 Trash")
        self.assertEqual([path for path, _ in lessons], ["/learnspam"])

    async def test_other_folders_teach_nothing(self) -> None:
        await self.deliver(MESSAGE)
        self.assertEqual(await self.lessons(b"a COPY 1 Archive", b"a MOVE 1 Sent"), [])

    async def test_a_folder_the_user_made_junk_counts(self) -> None:
        await self.deliver(MESSAGE)
        lessons = await self.lessons(b"a CREATE Spam (USE (\\Junk))", b"a COPY 1 Spam")
        self.assertEqual([path for path, _ in lessons], ["/learnspam"])

    async def test_a_failing_controller_is_invisible_to_the_client(self) -> None:
        await self.deliver(MESSAGE)
        for mode in ("500", "close"):
            self.rspamd.mode = mode
            self.assertEqual(len(await self.lessons(b"a COPY 1 Junk")), len(self.rspamd.requests))
        self.assertEqual(len(self.rspamd.requests), 2)
        self.assertEqual([i.uid for i in self.inbox.messages()], [1])


class Password(LearningCase):
    def setUp(self) -> None:
        self.password_file = self.mktemp()
        with open(self.password_file, "w") as f:
            f.write("s3cret\n")
        super().setUp()

    async def test_the_password_goes_in_its_header(self) -> None:
        await self.deliver(MESSAGE)
        await self.lessons(b"a COPY 1 Junk")
        self.assertEqual(self.rspamd.requests[0].headers["Password"], ["s3cret"])


"""Policy.run: only the checks that judge a stage are asked at it, in order, their verdicts combined."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.trial import unittest

from mailsrv import policy
from mailsrv.policy import ACCEPT, Check, CheckContext, Policy, Verdict, reject
from mailsrv.smtp import replies
from support import CountingExecutor


class _Tagging(Check):
    """Adds ``X-Tag: <name>`` at RCPT and notes what it saw."""

    def __init__(self, name: str, seen: list[tuple[str, tuple[bytes, ...]]]) -> None:
        self.name, self.seen = name, seen

    def rcpt(self, ctx: CheckContext, recipient: Any) -> Verdict:
        self.seen.append((self.name, ctx.headers))
        return Verdict(headers=(f"X-Tag: {self.name}\r\n".encode(),))


class _Inherits(_Tagging):
    """Judges RCPT through the method it inherits from a subclass of Check."""


class _DataOnly(Check):
    def __init__(self, seen: list[tuple[str, tuple[bytes, ...]]]) -> None:
        self.seen = seen

    def data(self, ctx: CheckContext, envelope: Any) -> Verdict:
        self.seen.append(("data", ctx.headers))
        return reject(replies.NOT_STORED)


class PolicyStageTests(unittest.TestCase):
    def run_stage(self, checks: list[Check], stage: str, *args: Any) -> Verdict:
        p = Policy(checks, CountingExecutor())
        return self.successResultOf(defer.ensureDeferred(p.run(stage, None, *args)))  # type: ignore[arg-type]

    def test_the_checks_of_a_stage_run_in_order_and_see_the_headers_before_them(self) -> None:
        seen: list[tuple[str, tuple[bytes, ...]]] = []
        checks = [_Tagging("a", seen), _DataOnly(seen), _Inherits("b", seen)]
        verdict = self.run_stage(checks, "rcpt", "alice@example.test")
        self.assertEqual(verdict.headers, (b"X-Tag: a\r\n", b"X-Tag: b\r\n"))
        self.assertEqual(seen, [("a", ()), ("b", (b"X-Tag: a\r\n",))])

    def test_a_check_is_asked_only_at_the_stages_it_overrides(self) -> None:
        seen: list[tuple[str, tuple[bytes, ...]]] = []
        checks = [_Tagging("a", seen), _DataOnly(seen)]
        self.assertIs(self.run_stage(checks, "mail", None), ACCEPT)
        self.assertEqual(seen, [])
        verdict = self.run_stage(checks, "data", object())
        self.assertEqual(verdict.reply, replies.NOT_STORED)
        self.assertEqual(seen, [("data", ())])

    def test_a_stage_no_check_judges_is_accepted_without_a_context(self) -> None:
        def no_context(**kwargs: Any) -> None:
            raise AssertionError("a CheckContext was built for a stage nobody judges")

        self.patch(policy, "CheckContext", no_context)
        self.assertIs(self.run_stage([_DataOnly([]), Check()], "helo", "client.example"), ACCEPT)
        self.assertIs(self.run_stage([], "connect"), ACCEPT)

    def test_every_stage_of_check_is_a_stage_of_the_policy(self) -> None:
        """A stage added to Check but not to STAGES would never be asked."""
        self.assertEqual({name for name in vars(Check) if not name.startswith("_")}, set(policy.STAGES))

"""Inbound policy: checks that run at each SMTP stage and may refuse or annotate.

A check is a :class:`Check` subclass that overrides the stages it cares
about; each stage returns a :class:`Verdict` (or a Deferred or coroutine of one):
accept, or refuse with an SMTP reply, plus header lines to add to the
message (whatever the stage: they go on top of every message the
connection or the transaction they came from sends, right below our
``Return-Path``, in the order the checks ran).  At the ``data`` stage a verdict may also complete the
message's own header (:attr:`Verdict.fields`: what a submission server adds,
RFC 6409 8), below the trace headers, drop header fields the message came
with (:attr:`Verdict.drop`: an Authentication-Results claiming to be ours,
RFC 8601 5) and send the local copies to a folder (:attr:`Verdict.folder`:
Junk, for a message its author's domain wants quarantined).
:class:`Policy` runs the configured checks in order at each stage; the first
refusal wins and the rest are not asked.  The stages and the order they
come in, for one connection:

1. ``connect`` once, before the greeting (a refusal replaces it, RFC 5321 3.1);
2. ``helo`` for each HELO/EHLO;
3. per transaction: ``mail`` once, ``rcpt`` for each recipient (after its
   syntax was checked, before it is routed), ``data`` once the whole body is
   in (its trace headers included), before it is delivered.

SPF, DKIM, DMARC and ARC are :mod:`mailsrv.policy.senderauth`; rate limits are
:mod:`.rates`, DNS blocklists :mod:`.dnsbl`; the resolver they use is on the
:class:`CheckContext`.  docs/HACKING.rst
shows how to add one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Sequence, TypeVar

from mailsrv.smtp.replies import Reply

if TYPE_CHECKING:
    from mailsrv.address import Mailbox
    from mailsrv.delivery.envelope import Envelope
    from mailsrv.message.body import Body
    from mailsrv.net.session import Session
    from mailsrv.workers import Executor

T = TypeVar("T")


@dataclass(frozen=True)
class Verdict:
    """Accept (``reply is None``) or refuse with *reply*; *headers* are CRLF-ended lines to add.

    *headers* go on top of the message, right below our ``Return-Path``
    (trace-like fields: they describe its way here); *fields*, from the ``data`` stage only, go below our
    ``Return-Path`` and ``Received``, just above the client's own header
    fields (a ``Date:`` the client left out, say).  *drop*, from ``data``
    only, is ``(offset, length)`` ranges of disk octets of the body that
    stage was given, each whole header fields, to remove.  *folder* names
    the folder the local recipients get the message in, ``None`` their INBOX.
    """

    reply: Reply | None = None
    headers: tuple[bytes, ...] = ()
    fields: tuple[bytes, ...] = ()
    drop: tuple[tuple[int, int], ...] = ()
    folder: str | None = None

    @property
    def accepted(self) -> bool:
        """True unless the check refused."""
        return self.reply is None


ACCEPT = Verdict()


def reject(reply: Reply) -> Verdict:
    """A refusal with *reply*."""
    return Verdict(reply=reply)


@dataclass(frozen=True)
class CheckContext:
    """What a check may look at besides the stage's own arguments."""

    session: "Session"
    #: The server's one DNS resolver (a dnspython ``Resolver``: blocking, query it in the ``dns`` pool).
    resolver: Any
    #: Runs blocking reads (the body, when it is spooled) off the reactor thread.
    disk: "Executor"
    #: Runs lookups on :attr:`resolver`: ``await ctx.dns.run(ctx.resolver.resolve, name, "TXT")``.
    dns: "Executor | None" = None
    #: The header lines the checks before this one added at this stage (a scanner wants to see them).
    headers: tuple[bytes, ...] = ()
    #: The header fields of the body the checks before this one drop (:attr:`Verdict.drop`): a
    #: scanner must not judge the message by a forged Authentication-Results it will not carry.
    drop: tuple[tuple[int, int], ...] = ()

    async def read(self, reader: "Callable[[Body], T]", body: "Body") -> T:
        """``reader(body)``: at once for a body in memory, in the :attr:`disk` pool for a spooled one.

        A body in memory is at most the spool threshold and reading it makes
        no system call, so the reactor thread does it itself: a trip through
        the pool costs more (two thread hand-offs contending for the GIL)
        than scanning a header.  A spooled body means file reads.
        """
        if body.in_memory:
            return reader(body)
        return await self.disk.run(reader, body)


class Check:
    """A policy check; every stage accepts unless overridden."""

    def connect(self, ctx: CheckContext) -> "Verdict | Awaitable[Verdict]":
        """A client connected (before the greeting)."""
        return ACCEPT

    def helo(self, ctx: CheckContext, name: str) -> "Verdict | Awaitable[Verdict]":
        """The client said HELO/EHLO *name*."""
        return ACCEPT

    def mail(self, ctx: CheckContext, sender: "Mailbox | None") -> "Verdict | Awaitable[Verdict]":
        """MAIL FROM; *sender* is ``None`` for the null reverse-path."""
        return ACCEPT

    def rcpt(self, ctx: CheckContext, recipient: "Mailbox") -> "Verdict | Awaitable[Verdict]":
        """RCPT TO, syntax already checked."""
        return ACCEPT

    def data(self, ctx: CheckContext, envelope: "Envelope") -> "Verdict | Awaitable[Verdict]":
        """The whole message is in ``envelope.body`` (disk form, trace headers first)."""
        return ACCEPT


#: The stages :meth:`Policy.run` knows, in the order they come.
STAGES = ("connect", "helo", "mail", "rcpt", "data")


def _judges(check: Check, stage: str) -> bool:
    """Whether *check* does anything at *stage*: it overrides :class:`Check`'s accept-all method."""
    return getattr(type(check), stage, None) is not getattr(Check, stage)


class Policy:
    """Runs *checks* in order at each stage (see the module docstring).

    Only the checks that override a stage are asked at it: with a dozen
    checks of which two or three care about a stage, asking all of them
    at every MAIL and RCPT is reactor time spent on accepting.
    """

    def __init__(
        self, checks: Sequence[Check], disk: "Executor", resolver: Any = None, dns: "Executor | None" = None
    ) -> None:
        self.checks = tuple(checks)
        self.disk = disk
        self.resolver = resolver
        self.dns = dns
        self._by_stage = {stage: tuple(c for c in self.checks if _judges(c, stage)) for stage in STAGES}

    async def run(self, stage: str, session: "Session", *args: Any) -> Verdict:
        """The combined verdict of every check at *stage* (one of :data:`STAGES`)."""
        checks = self._by_stage[stage]
        if not checks:
            return ACCEPT
        ctx = CheckContext(session=session, resolver=self.resolver, disk=self.disk, dns=self.dns)
        headers: tuple[bytes, ...] = ()
        fields: tuple[bytes, ...] = ()
        drop: tuple[tuple[int, int], ...] = ()
        folder: str | None = None
        for check in checks:
            verdict = getattr(check, stage)(replace(ctx, headers=headers, drop=drop) if headers or drop else ctx, *args)
            if not isinstance(verdict, Verdict):  # a Deferred or a coroutine
                verdict = await verdict
            if not verdict.accepted:
                return verdict
            headers += verdict.headers
            fields += verdict.fields
            drop += verdict.drop
            folder = folder or verdict.folder  # the first check that names one
        combined = Verdict(headers=headers, fields=fields, drop=drop, folder=folder)
        return combined if combined != ACCEPT else ACCEPT

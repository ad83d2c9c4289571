"""The policy check that has rspamd score every message arriving on port 25, before the 250."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from twisted.logger import Logger

from mailsrv.message import wire
from mailsrv.message.fields import field_spans
from mailsrv.message.headers import return_path_line
from mailsrv.net.session import Networks
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.policy.fcrdns import ClientNames
from mailsrv.smtp import replies
from mailsrv.spam import verdict as spam_verdict
from mailsrv.spam.producer import FileProducer
from mailsrv.spam.rspamd import Rspamd, ScanFailed
from mailsrv.workers import InlineExecutor

if TYPE_CHECKING:
    from mailsrv.config.policy import Network
    from mailsrv.delivery.envelope import Envelope
    from mailsrv.message.body import Body
    from mailsrv.net.session import Session

log = Logger()


def _name(field: bytes) -> bytes:
    return field.partition(b":")[0].rstrip(b" \t").lower()


def header_spans(body: "Body") -> tuple[tuple[tuple[int, int], ...], tuple[int, int] | None]:
    """The X-Spam fields *body* came with and its first Subject field, as ``(offset, length)``; blocking."""
    ours, subject = [], None
    for offset, length, field in field_spans(body):
        name = _name(field)
        if name in spam_verdict.FIELDS:
            ours.append((offset, length))
        elif name == b"subject" and subject is None:
            subject = (offset, length)
    return tuple(ours), subject


class SpamCheck(Check):
    """rspamd's verdict on port 25 mail from outside *trusted* networks (:mod:`mailsrv.spam`).

    Runs last among the checks, so rspamd sees the message as it will be
    stored: our Authentication-Results on top (``ctx.headers``), the forged
    ones the checks before it drop (``ctx.drop``) and the sender's own
    X-Spam fields left out.  The client's confirmed name (*names*) is looked
    up as it connects, for rspamd's ``Hostname``.  *junk*
    is the folder ``add header`` mail goes to (``""``: the INBOX);
    *tempfail* answers 451 when rspamd fails instead of delivering the
    message marked unchecked.  Mail is never lost for rspamd's sake: a
    failed scan delivers or defers, never refuses for good.
    """

    def __init__(
        self, scanner: Rspamd, hostname: str, trusted: "tuple[Network, ...]", junk: str, tempfail: bool = False,
        names: ClientNames | None = None,
    ) -> None:
        self._scanner = scanner
        self._hostname = hostname
        self._names = names
        self.configure(trusted, junk, tempfail)
        self._helo: "weakref.WeakKeyDictionary[Session, str]" = weakref.WeakKeyDictionary()

    def configure(self, trusted: "tuple[Network, ...]", junk: str, tempfail: bool) -> None:
        """Scan by these from now on (made and SIGHUP); the HELO names sessions gave are kept."""
        self._trusted = Networks(trusted)
        self._junk = junk or None
        self._tempfail = tempfail

    def _scanned(self, session: "Session") -> bool:
        """Port 25 mail of strangers; what our users and our networks send is ours."""
        return not (session.kind.submission or session.user is not None or session.peer_ip in self._trusted)

    def connect(self, ctx: CheckContext) -> Verdict:
        """Start looking up the client's name, which rspamd is told."""
        if self._names is not None and self._scanned(ctx.session):
            self._names.start(ctx)
        return ACCEPT

    def helo(self, ctx: CheckContext, name: str) -> Verdict:
        """Remember the HELO/EHLO name, which rspamd is told."""
        self._helo[ctx.session] = name
        return ACCEPT

    async def data(self, ctx: CheckContext, envelope: "Envelope") -> Verdict:
        """Scan the message; rspamd's action decides (:mod:`mailsrv.spam.verdict`)."""
        session = ctx.session
        if not self._scanned(session):
            return ACCEPT
        body = envelope.body
        assert body is not None
        executor = InlineExecutor() if body.in_memory else ctx.disk
        ours, subject = await executor.run(header_spans, body)
        message = FileProducer(body.open, body.size, executor, edits=_as_stored(ctx, envelope, ours))
        hostname = await self._names.hostname(ctx) if self._names is not None else None
        try:
            scan = await self._scanner.check(self._envelope(session, envelope, hostname), message)
        except ScanFailed as e:
            log.warn("rspamd did not scan {queue_id}: {reason}", queue_id=envelope.queue_id, reason=str(e))
            if self._tempfail:
                return reject(replies.SPAM_UNCHECKED)
            return spam_verdict.unchecked(str(e), ours)
        log.info("rspamd: {queue_id} {action} ({score:.2f})", queue_id=envelope.queue_id, action=scan.action,
                 score=scan.score)
        return spam_verdict.verdict(scan, drop=ours, subject=subject, junk=self._junk)

    def _envelope(self, session: "Session", envelope: "Envelope", hostname: str | None) -> dict[str, "str | list[str]"]:
        """The request headers of rspamd's protocol for this message.

        ``Rcpt`` is each recipient as the client named it, not where aliases
        lead: rspamd compares them with the To: and Cc: fields.
        """
        headers: dict[str, "str | list[str]"] = {
            "From": envelope.sender or "<>",
            "Rcpt": list(envelope.recipients),
            "IP": session.peer_ip,
            "Queue-Id": envelope.queue_id,
            "MTA-Name": self._hostname,
        }
        helo = self._helo.get(session)
        if helo:
            headers["Helo"] = helo
        if hostname is not None:
            headers["Hostname"] = hostname
        return headers


def _as_stored(
    ctx: CheckContext, envelope: "Envelope", ours: tuple[tuple[int, int], ...],
) -> list[tuple[int, int, bytes]]:
    """The edits that make the body what will be stored, as far as the checks so far know (see :class:`SpamCheck`)."""
    edits = [(offset, length, b"") for offset, length in (*ctx.drop, *ours)]
    if ctx.headers:
        edits.append((len(return_path_line(envelope.sender)), 0, wire.to_disk(b"".join(ctx.headers))))
    return sorted(edits, key=lambda edit: edit[:2])

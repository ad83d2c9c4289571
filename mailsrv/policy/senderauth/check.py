"""The policy check that authenticates the sender of every message arriving on port 25."""

from __future__ import annotations

import weakref
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.address import canonical_domain
from mailsrv.dkim import fastrsa, keymemo
from mailsrv.message.fields import field_spans, field_values, mailbox_list, read_header
from mailsrv.net.session import Networks
from mailsrv.policy import ACCEPT, Check, CheckContext, Verdict, reject
from mailsrv.policy.senderauth import authresults, dmarc
from mailsrv.policy.senderauth.spfresults import SPFResults
from mailsrv.policy.senderauth.verify import Message, Results, authenticate
from mailsrv.smtp import replies

log = Logger()

if TYPE_CHECKING:
    from mailsrv.config.policy import Network
    from mailsrv.delivery.envelope import Envelope
    from mailsrv.message.body import Body
    from mailsrv.net.session import Session


def forged_results(body: "Body", hostname: str) -> tuple[tuple[int, int], ...]:
    """``(offset, length)`` of every Authentication-Results field of *body* naming *hostname*; blocking if spooled."""
    return tuple((offset, length) for offset, length, field in field_spans(body)
                 if authresults.is_ours(field, hostname))


def read_message(body: "Body", hostname: str) -> Message:
    """The message, its author domains and our forged A-R fields; blocking on a spooled body."""
    domains = []
    for value in field_values(read_header(body), b"from"):
        for address in mailbox_list(value) or ():
            domains.append(canonical_domain(address.rpartition("@")[2]) or "")
    return Message(data=body.read(), authors=tuple(domains), drop=forged_results(body, hostname))


def judge(body: "Body", hostname: str, **where: Any) -> "tuple[Message, Results | Failure]":
    """:func:`read_message`, then :func:`authenticate` it, in one job of the ``dns`` pool.

    The reading is header parsing and, for a spooled body, a read of a file
    just written (in the page cache): one trip instead of a disk-pool trip
    and a DNS-pool trip, and nothing of it on the reactor.  A failure of
    the checks is returned, for the reactor to log, with the message, whose
    forged fields are removed all the same.
    """
    message = read_message(body, hostname)
    try:
        return message, authenticate(message, **where)
    except Exception:  # our bug, or a library's on odd input
        return message, Failure()


class SenderAuthentication(Check):
    """SPF, DKIM, DMARC and ARC for port 25 mail from outside *trusted* networks (:mod:`.senderauth`).

    Mail from a trusted network (this host, the admin's other servers) and
    whatever a logged-in user sends are not checked: they are ours.  The
    HELO name is remembered per session at ``helo``, for SPF's HELO check
    and the null sender (RFC 7208 2.3, 2.4).  *junk* is the folder a
    quarantined message goes to (``""``: the INBOX); *refuse* is ``[policy]
    dmarc_reject``.
    """

    def __init__(self, hostname: str, trusted: "tuple[Network, ...]", junk: str, refuse: bool = True) -> None:
        self._hostname = hostname
        self.configure(trusted, junk, refuse)
        self._helo: "weakref.WeakKeyDictionary[Session, str]" = weakref.WeakKeyDictionary()
        self._spf_results = SPFResults()
        fastrsa.install()  # RSA verification through OpenSSL: a fifth of the CPU per signature
        keymemo.install()  # and each key record parsed once

    def configure(self, trusted: "tuple[Network, ...]", junk: str, refuse: bool) -> None:
        """Judge by these from now on (made and SIGHUP); what sessions said so far is kept."""
        self._trusted = Networks(trusted)
        self._junk = junk or None
        self._refuse = refuse

    def _exempt(self, session: "Session") -> bool:
        return session.kind.submission or session.user is not None or session.peer_ip in self._trusted

    async def _unchecked(self, ctx: CheckContext, body: "Body") -> Verdict:
        """Mail we do not judge still loses the A-R fields naming us (RFC 8601 5).

        A trusted relay (a backup MX) passes internet mail on unchecked, and
        a user's client can write any header: a field with our name that
        stayed would be believed as our verdict.
        """
        drop = await ctx.read(partial(forged_results, hostname=self._hostname), body)
        return Verdict(drop=drop) if drop else ACCEPT

    def helo(self, ctx: CheckContext, name: str) -> Verdict:
        """Remember the HELO/EHLO name for :meth:`data`."""
        self._helo[ctx.session] = name
        return ACCEPT

    async def data(self, ctx: CheckContext, envelope: "Envelope") -> Verdict:
        """The A-R field on top, ours removed below; 550 5.7.1 or Junk as the author's DMARC policy says."""
        session = ctx.session
        body = envelope.body
        assert body is not None
        if self._exempt(session) or ctx.dns is None:
            return await self._unchecked(ctx, body)
        message, results = await ctx.dns.run(
            judge, body, self._hostname, resolver=ctx.resolver, ip=session.peer_ip, helo=self._helo.get(session, ""),
            sender=envelope.sender, spf_results=self._spf_results,
        )
        if isinstance(results, Failure):  # deliver unjudged rather than refuse forever
            log.failure("sender authentication failed for {queue_id}", results, queue_id=envelope.queue_id)
            return Verdict(drop=message.drop)
        disposition = results.dmarc.disposition
        if disposition == dmarc.REJECT and self._refuse:
            return reject(replies.DMARC_REJECTED(domain=results.author))  # RFC 7489 6.6.4, 7.3
        folder = self._junk if disposition in (dmarc.REJECT, dmarc.QUARANTINE) else None
        return Verdict(headers=(authresults.header(self._hostname, results),), drop=message.drop, folder=folder)

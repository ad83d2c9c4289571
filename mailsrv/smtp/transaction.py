"""The mail transaction (RFC 5321 3.3): MAIL, RCPT and DATA.

The state between MAIL and the end of DATA is a
:class:`~mailsrv.smtp.connection.Transaction`; the three command functions
take the connection (for its session, context and input) and return the
reply.  Who may send where is decided by the policy
checks (:mod:`mailsrv.policy`) and the router (:mod:`mailsrv.delivery.router`);
the body is read by :class:`~mailsrv.smtp.data.DataReader` into a
:class:`~mailsrv.message.body.BodyWriter` that spools large messages to
disk; what a logged-in user submits is DKIM-signed (:mod:`mailsrv.dkim`)
once the checks completed its header; the 250 comes only once
:class:`~mailsrv.delivery.local.LocalDelivery` has the message durably in
every mailbox (RFC 5321 6.1).
"""

from __future__ import annotations

import dataclasses
import re
import time
from typing import TYPE_CHECKING, Callable

from twisted.internet import task
from twisted.logger import Logger

from mailsrv.address import AddressSyntaxError, Mailbox, parse_path
from mailsrv.delivery.dsnrequest import NO_REQUEST, SUCCESS, RecipientRequest, passed_on, wants
from mailsrv.delivery.envelope import Envelope, new_queue_id
from mailsrv.delivery.bounce import Action
from mailsrv.delivery.queuedir import Recipient, Record, State
from mailsrv.delivery.router import Local, Refusal, Refused, Remote
from mailsrv.message.body import Body, BodyType, BodyWriter
from mailsrv.message.headers import return_path_line
from mailsrv.policy.senderauth import authresults
from mailsrv.smtp import quota, replies
from mailsrv.smtp.connection import Transaction
from mailsrv.smtp.data import DataReader
from mailsrv.smtp.params import parse_mail_params, parse_rcpt_params
from mailsrv.smtp.received import trace_headers, with_protocol
from mailsrv.smtp.smtputf8 import envelope_mailbox
from mailsrv.smtp.replies import Rejection, Reply

if TYPE_CHECKING:
    from mailsrv.policy import Verdict
    from mailsrv.smtp.connection import Connection

log = Logger()

_MAIL = re.compile(rb"FROM: ?<(?P<path>[^<>]*)>(?: +(?P<params>.*))?\Z", re.I | re.S)
_RCPT = re.compile(rb"TO: ?<(?P<path>[^<>]*)>(?: +(?P<params>.*))?\Z", re.I | re.S)


async def mail(server: "Connection", rest: bytes) -> Reply:
    """MAIL FROM (RFC 5321 4.1.1.2), with the RFC 1870 and RFC 6152 parameters."""
    if server.helo is None:
        return replies.HELO_FIRST  # RFC 5321 4.1.4
    if server.transaction is not None:
        return replies.NESTED_MAIL
    per_connection = server.ctx.config.limits.smtp_messages_per_connection
    if per_connection and server.counts.limited and server.counts.messages >= per_connection:
        return replies.MESSAGES_PER_CONNECTION  # a 421: the connection closes
    match = _MAIL.match(rest)
    if match is None:
        return replies.SYNTAX(usage="MAIL FROM:<address>")
    path = match.group("path")
    limits = server.ctx.config.limits
    try:
        params = parse_mail_params(
            match.group("params") or b"", max_size=limits.max_message_size, auth_offered=server.auth_offered(),
            tls_active=server.session.tls_active,
        )
        sender = envelope_mailbox(path, params.smtputf8) if path else None  # "<>" is the null reverse-path
    except AddressSyntaxError as e:
        return replies.BAD_SENDER_SYNTAX(reason=str(e))
    except Rejection as e:
        return e.reply
    verdict = await server.ctx.policy.run("mail", server.session, sender)
    if not verdict.accepted:
        assert verdict.reply is not None
        server.reject("mail", "<>" if sender is None else str(sender), verdict.reply)
        return verdict.reply
    envelope = Envelope(queue_id=new_queue_id(), sender="" if sender is None else str(sender), ret=params.ret,
                        envid=params.envid, require_tls=params.require_tls, smtputf8=params.smtputf8)
    server.transaction = Transaction(params=params, envelope=envelope, headers=list(verdict.headers))
    server.counts.messages += 1
    return replies.SENDER_OK


def _postmaster(server: "Connection") -> Mailbox:
    # RFC 5321 4.5.1: "<Postmaster>" without a domain must be accepted.
    return Mailbox("postmaster", server.ctx.config.domains[0])


async def rcpt(server: "Connection", rest: bytes) -> Reply:
    """RCPT TO (RFC 5321 4.1.1.3): policy checks, then the route decides."""
    transaction = server.transaction
    if transaction is None:
        return replies.NEED_MAIL
    match = _RCPT.match(rest)
    if match is None:
        return replies.SYNTAX(usage="RCPT TO:<address>")
    limits = server.ctx.config.limits
    if len(transaction.recipients) >= limits.max_recipients:
        return replies.TOO_MANY_RECIPIENTS  # RFC 5321 4.5.3.1.10
    counts = server.counts
    per_connection = limits.smtp_recipients_per_connection
    if per_connection and counts.limited and counts.recipients >= per_connection:
        return replies.RECIPIENTS_PER_CONNECTION
    path = match.group("path")
    try:
        request = parse_rcpt_params(match.group("params") or b"", transaction.params.smtputf8)
        recipient = (_postmaster(server) if path.lower() == b"postmaster"
                     else envelope_mailbox(path, transaction.params.smtputf8))
    except AddressSyntaxError as e:
        return replies.BAD_RECIPIENT_SYNTAX(reason=str(e))
    except Rejection as e:
        return e.reply
    reply = await _accept_recipient(server, transaction, recipient, request)
    if not reply.is_error:
        server.counts.recipients += 1
        return reply
    transaction.rejected.append(str(recipient))
    server.reject("rcpt", str(recipient), reply)
    if reply.code == 421:
        return reply
    return await _refused_recipient(server, reply)


async def _refused_recipient(server: "Connection", reply: Reply) -> Reply:
    """Answer a refused recipient: later and later after the first few, then 421 (a dictionary attack).

    The wait is a timer: the session reads nothing more meanwhile (a
    pipelining client waits too), and nothing else waits for it.
    """
    limits = server.ctx.config.limits
    counts = server.counts
    counts.failed_recipients += 1
    if limits.smtp_failed_recipients and counts.failed_recipients >= limits.smtp_failed_recipients:
        server.answer(reply)
        return replies.FAILED_RECIPIENTS
    delay = counts.failed_recipients - limits.smtp_failed_recipients_before_delay
    if delay > 0:
        await task.deferLater(server.clock, delay, lambda: None)
    return reply


async def _accept_recipient(
    server: "Connection", transaction: Transaction, recipient: Mailbox, request: RecipientRequest,
) -> Reply:
    verdict = await server.ctx.policy.run("rcpt", server.session, recipient)
    if not verdict.accepted:
        assert verdict.reply is not None
        return verdict.reply
    route = server.ctx.router.route(recipient)
    if isinstance(route, Refused):
        if route.reason is Refusal.NO_SUCH_USER:
            return replies.USER_UNKNOWN(address=recipient)
        if route.reason is Refusal.BAD_SRS:
            return replies.BAD_SRS(address=recipient)
        return replies.RELAY_DENIED(address=recipient)
    if isinstance(route, Remote):
        # No open relay, whatever the policy checks say: only a user logged
        # in on a submission listener may send to other servers.  A source
        # route to a remote mailbox asks us to relay even then.
        if not (server.kind.submission and server.session.user is not None) or recipient.routed:
            return replies.RELAY_DENIED(address=recipient)
        if server.ctx.queue is None:
            return replies.REMOTE_UNAVAILABLE
        transaction.envelope.remote.append(recipient.plain)
        if request != NO_REQUEST:
            transaction.envelope.requests[recipient.plain] = request
    else:
        assert isinstance(route, Local)
        if route.forward and (server.ctx.queue is None or server.ctx.srs is None):
            return replies.REMOTE_UNAVAILABLE
        full = await quota.first_refusal(server.ctx, route.users, transaction.params.size or 0)
        if full is not None:
            return full
        transaction.envelope.add_local(route.users)
        expanded = len(route.users) + len(route.forward) > 1
        transaction.envelope.add_forward(route.forward, passed_on(request, recipient.plain, expanded))
        if wants(request.notify, SUCCESS) and (expanded or route.users):
            # A single forwarding target relays the request instead (RFC 3461 5.2.7.2).
            action = Action.EXPANDED if expanded else Action.DELIVERED
            transaction.notices.setdefault(action, []).append(Recipient(recipient.plain, orcpt=request.orcpt))
    transaction.recipients.append(recipient)
    transaction.envelope.recipients.append(str(recipient))
    transaction.headers.extend(verdict.headers)
    return replies.RECIPIENT_OK


def _trace(server: "Connection", transaction: Transaction) -> bytes:
    """``Return-Path`` and ``Received`` (RFC 5321 4.4) for the top of the message."""
    session = server.session
    recipients = transaction.recipients
    config = server.ctx.config
    return trace_headers(
        sender=transaction.envelope.sender,
        helo=server.helo or session.peer_ip,
        client_ip=session.peer_ip,
        hostname=config.hostname,
        protocol=with_protocol(server.esmtp, session.tls_active, session.user is not None,
                               transaction.params.smtputf8),
        queue_id=transaction.envelope.queue_id,
        tls=session.tls_details(),
        recipient=str(recipients[0]) if len(recipients) == 1 else None,
        login=session.user if config.submission.received_login else None,
    )


async def data(server: "Connection", rest: bytes) -> Reply:
    """DATA (RFC 5321 4.1.1.4): read the body, check it, store it, then 250."""
    if rest.strip():
        return replies.SYNTAX(usage="DATA")
    transaction = server.transaction
    if transaction is None:
        return replies.NEED_MAIL
    if transaction.chunks is not None:
        return replies.DATA_AFTER_BDAT  # RFC 3030 2
    if transaction.params.body is BodyType.BINARY_MIME:
        return replies.BINARYMIME_NEEDS_BDAT  # RFC 3030 3
    if not transaction.recipients:
        return replies.NO_RECIPIENTS  # RFC 5321 3.3
    limits = server.ctx.config.limits
    writer = start_body(server, transaction)
    server.answer(replies.START_DATA)
    reader = DataReader(writer, limits.max_line_length, limits.max_message_size)
    await server.read_raw(reader)
    return await end_of_data(server, transaction, reader.size, reader.error)


def start_body(server: "Connection", transaction: Transaction) -> BodyWriter:
    """The writer of the transaction's body, our trace headers already on top (DATA, the first BDAT chunk)."""
    ctx = server.ctx
    writer = transaction.writer = BodyWriter(ctx.config.spool_dir, ctx.config.limits.spool_threshold,
                                             transaction.params.body)
    writer.write(_trace(server, transaction))
    transaction.trace_size = writer.size
    return writer


async def end_of_data(server: "Connection", transaction: Transaction, size: int, error: Reply | None) -> Reply:
    """The body is complete, *size* octets by RFC 1870: end the transaction with *error*, or deliver it.

    The same for DATA's final dot and BDAT LAST (RFC 3030 2); the reply is
    the transaction's one (250 only once the message is durable).
    """
    transaction.size = size
    server.transaction = None
    if error is not None:
        transaction.abort()
        server.log_transaction(transaction, error.code)
        return error
    writer, transaction.writer = transaction.writer, None
    assert writer is not None
    transaction.envelope.body = writer.finish()
    reply = await _deliver(server, transaction)
    server.log_transaction(transaction, reply.code)
    return reply


async def _deliver(server: "Connection", transaction: Transaction) -> Reply:
    """Check the complete message, then store it for local users and queue it for remote ones.

    The 250 comes only once both are durable; the body is discarded after,
    whatever happened (the stored and queued copies are their own).
    """
    ctx, envelope = server.ctx, transaction.envelope
    try:
        verdict = await ctx.policy.run("data", server.session, envelope)
        if not verdict.accepted:
            assert verdict.reply is not None
            server.reject("data", envelope.sender or "<>", verdict.reply)
            return verdict.reply
        edits = _edits(server, transaction, verdict)
        if edits:
            assert envelope.body is not None
            envelope.body = await _splice(server, envelope.body, edits)
        envelope.folder = verdict.folder
        if server.kind.submission and server.session.user is not None:
            reply = await _sign(server, envelope)
            if reply is not None:
                return reply
        if envelope.local_users and not (envelope.remote or envelope.forward):
            assert envelope.body is not None
            full = await quota.refusal_of_all(ctx, envelope.local_users, envelope.body.size)
            if full is not None:
                server.reject("data", envelope.sender or "<>", full)
                return full
        try:
            if envelope.local_users:
                await ctx.delivery.deliver(envelope)
            if envelope.remote:
                assert ctx.queue is not None
                await ctx.queue.enqueue(envelope)
            if envelope.forward:
                await _forward(server, envelope, checked=_checked(server, verdict))
        except Exception:
            return replies.NOT_STORED
        for action, recipients in transaction.notices.items():
            await _report(server, envelope, recipients, action)
        return replies.QUEUED(queue_id=envelope.queue_id)
    finally:
        transaction.abort()


def _edits(server: "Connection", transaction: Transaction, verdict: Verdict) -> list[tuple[int, int, bytes]]:
    """What the checks change in the body, as :meth:`Body.splice` edits in the order of the body."""
    headers = [*server.headers, *transaction.headers, *verdict.headers]  # the order the checks ran in
    edits = []
    if headers:  # on top, below our Return-Path (RFC 5321 4.4: final delivery puts it first)
        edits.append((len(return_path_line(transaction.envelope.sender)), 0, b"".join(headers)))
    if verdict.fields:  # below our Return-Path and Received, above the client's header
        edits.append((transaction.trace_size, 0, b"".join(verdict.fields)))
    edits.extend((offset, length, b"") for offset, length in verdict.drop)  # fields of the client's header
    return sorted(edits, key=lambda edit: edit[0])


async def _splice(server: "Connection", body: Body, edits: list[tuple[int, int, bytes]], keep: bool = False) -> Body:
    """:meth:`Body.splice`: here for a body in memory (a copy of at most the spool threshold, no
    system call), in the disk pool for a spooled one, whose copy reads and writes files."""
    if body.in_memory:
        return body.splice(edits, keep=keep)
    return await server.ctx.workers.disk.run(body.splice, edits, keep=keep)


async def _report(server: "Connection", envelope: Envelope, recipients: list[Recipient], action: Action) -> None:
    """The "delivered" (RFC 3461 5.2.3) or "expanded" (5.2.7.3) DSN for the recipients whose NOTIFY asked for it.

    After the message is stored, so a failure here (logged) changes
    nothing of the 250: the mail is delivered, only the report is lost.
    """
    ctx = server.ctx
    if not recipients or not envelope.sender or ctx.queue is None:
        return
    assert envelope.body is not None
    record = Record(queue_id=envelope.queue_id, sender=envelope.sender, queued_at=time.time(),
                    size=envelope.body.size, wire_size=envelope.body.wire_size, envid=envelope.envid,
                    require_tls=envelope.require_tls)
    delivered = [dataclasses.replace(r, state=State.DELIVERED) for r in recipients]
    try:
        await ctx.queue.report(record, delivered, action, envelope.body)
    except Exception:
        log.failure("the delivery report for {queue_id} was not sent", queue_id=envelope.queue_id)


def _checked(server: "Connection", verdict: Verdict) -> bool:
    """Whether the sender checks judged this message: the data stage's verdict carries our Authentication-Results."""
    hostname = server.ctx.config.hostname
    return any(authresults.is_ours(field, hostname) for field in verdict.headers)


async def _forward(server: "Connection", envelope: Envelope, checked: bool) -> None:
    """Queue the copy for the forwarding targets: same body, an SRS sender, an id of its own.

    A target the client also named directly is in ``envelope.remote``
    already and gets one copy only.  A message the sender checks judged
    is ARC-sealed (:mod:`mailsrv.dkim.arc`), in a copy of its own.
    """
    ctx = server.ctx
    assert ctx.queue is not None and ctx.srs is not None and envelope.body is not None
    targets = [address for address in envelope.forward if address not in envelope.remote]
    if not targets:
        return
    body = await _sealed(server, envelope) if checked else None
    # What the client asked of the message goes on with it (RFC 8689 4.2.1: REQUIRETLS too; RFC 3461 5.2.7).
    copy = Envelope(queue_id=new_queue_id(), sender=ctx.srs.forward(envelope.sender), remote=targets,
                    body=body or envelope.body, ret=envelope.ret, envid=envelope.envid,
                    require_tls=envelope.require_tls, smtputf8=envelope.smtputf8,
                    requests={t: envelope.forward_requests[t] for t in targets if t in envelope.forward_requests})
    try:
        await ctx.queue.enqueue(copy)
    finally:
        if body is not None:
            body.discard()
    log.info("{queue_id} forwarded as {copy_id} to {targets}", queue_id=envelope.queue_id,
             copy_id=copy.queue_id, targets=", ".join(targets))


async def _sealed(server: "Connection", envelope: Envelope) -> Body | None:
    """A copy of the body with an ARC set below our Return-Path, ``None`` when there is none to add.

    A failure to seal (our bug, a spool file unreadable) is logged and the
    copy goes unsealed: the author's DKIM signature is still on it.
    """
    ctx = server.ctx
    if ctx.sealer is None:
        return None
    try:
        return await _fields_on_top(server, envelope, ctx.sealer.seal_body, keep=True)
    except Exception:
        log.failure("ARC sealing failed for {queue_id}", queue_id=envelope.queue_id)
        return None


async def _fields_on_top(
    server: "Connection", envelope: Envelope, make: Callable[[Body], bytes | None], keep: bool,
) -> Body | None:
    """The body with the fields *make* computes from it (in the signing pool) right below our Return-Path.

    ``None`` when *make* has none to add; the body is kept only with *keep*
    (see :meth:`Body.splice`).
    """
    assert envelope.body is not None
    fields = await server.ctx.workers.signing.run(make, envelope.body)
    if fields is None:
        return None
    return await _splice(server, envelope.body, [(len(return_path_line(envelope.sender)), 0, fields)], keep=keep)


async def _sign(server: "Connection", envelope: Envelope) -> Reply | None:
    """Put a DKIM signature on what an authenticated user sends (RFC 6376 5.6), below our Return-Path.

    Return-Path stays the first line (RFC 5321 4.4 puts it on top at final
    delivery; the sender leaves it out when relaying, see
    :func:`mailsrv.message.headers.past_return_path`).  After every check, so that it covers the header as stored and sent,
    the ``Message-ID:`` and ``Date:`` the checks added included.  ``None``
    when signed (or when the author's domain has no key); a failure (our
    bug, or the spool file unreadable) tells the client to try again,
    rather than send the mail unsigned, which a receiver with a DMARC
    policy may refuse.
    """
    ctx = server.ctx
    if ctx.signer is None:
        return None
    try:
        signed = await _fields_on_top(server, envelope, ctx.signer.sign_body, keep=False)
        if signed is not None:
            envelope.body = signed
    except Exception:
        log.failure("DKIM signing failed for {queue_id}", queue_id=envelope.queue_id)
        return replies.NOT_STORED
    return None

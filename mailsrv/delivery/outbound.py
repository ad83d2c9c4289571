"""Wiring of outbound mail: the queue over ``<data_dir>/queue``, a sender, and where bounces go.

:func:`build_queue` is what the server start (and the tests, with a fake
:class:`~mailsrv.delivery.attempt.IRemoteDelivery`) call; the sender itself
is built elsewhere (``mailsrv.delivery.remote``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from mailsrv.address import Mailbox, normalize_domain
from mailsrv.config import Config
from mailsrv.delivery.attempt import IRemoteDelivery
from mailsrv.delivery.envelope import Envelope
from mailsrv.delivery.local import LocalDelivery
from mailsrv.delivery.queue import IQueue
from mailsrv.delivery.queuedir import QueueDir
from mailsrv.delivery.router import Local, Refused, Remote, Router
from mailsrv.delivery.runner import BounceSender, Queue
from mailsrv.delivery.warmup import Warmup
from mailsrv.message.body import Body
from mailsrv.message.headers import return_path_line
from mailsrv.net.audit import Audit
from mailsrv.workers import Workers

if TYPE_CHECKING:
    from mailsrv.dkim.signer import Signer

log = Logger()

#: Signs a report we made before it leaves for another server (see :meth:`Signer.sign_report`).
ReportSigner = Callable[[Body], Awaitable[Body]]

#: RFC 5321 4.4: final delivery puts the reverse-path on top, here the null one of a bounce.
RETURN_PATH = return_path_line("", b"\r\n")

def make_bounce_sender(router: Router, local: LocalDelivery, sign: ReportSigner | None = None) -> BounceSender:
    """Deliver a DSN as SMTP would deliver mail for its recipient: to the store, or through the queue.

    A sender address that has no route any more (the user was removed)
    gets nothing; the loss is logged and the bounce counts as sent.  A DSN
    that goes to another server (the sender's, or the original sender
    behind an SRS address) is signed with *sign* first, as what our users
    send is: receivers that check DKIM and DMARC treat an unsigned bounce
    as they treat forged ones.
    """

    async def send(envelope: Envelope, recipient: str, queue: IQueue) -> None:
        local_part, _, domain = recipient.rpartition("@")
        route = router.route(Mailbox(local_part, normalize_domain(domain)))
        if sign is not None and (isinstance(route, Remote) or (isinstance(route, Local) and route.forward)):
            assert envelope.body is not None
            envelope.body = await sign(envelope.body)
        if isinstance(route, Refused):
            log.warn("bounce {queue_id} for {recipient} dropped: {reason}", queue_id=envelope.queue_id,
                     recipient=recipient, reason=route.reason.value)
        elif isinstance(route, Remote):
            envelope.remote.append(recipient)
            await queue.enqueue(envelope)
        else:
            await _bounce_here(envelope, route, queue, local)
        assert envelope.body is not None
        envelope.body.discard()

    return send


async def _bounce_here(envelope: Envelope, route: Local, queue: IQueue, local: LocalDelivery) -> None:
    """A bounce to an address of ours: its users get it, and the remote senders behind it.

    A forwarded message that bounced names an SRS address of ours as its
    sender, and the router answers with the original sender as a
    forwarding target (:mod:`mailsrv.delivery.srs`); the bounce is
    queued to it, with the null sender still.
    """
    assert envelope.body is not None
    if route.users:
        envelope.body = envelope.body.insert([(0, RETURN_PATH)])  # in memory: no disk work
        envelope.add_local(route.users)
        await local.deliver(envelope)
    if route.forward:
        envelope.remote.extend(route.forward)
        await queue.enqueue(envelope)


def build_queue(
    config: Config, reactor: IReactorTime, workers: Workers, remote: IRemoteDelivery, *, router: Router,
    local: LocalDelivery, audit: Audit, signer: "Signer | None" = None,
) -> Queue:
    """The queue service for *config*'s data dir, sending through *remote*; start it to resume.

    With *signer*, the DSNs it sends to other servers are DKIM-signed (in the ``signing`` pool).
    """
    sign = None
    if signer is not None:
        def sign(body: Body) -> Awaitable[Body]:
            return workers.signing.run(signer.sign_report, body, config.hostname)
    return Queue(
        QueueDir(config.queue_dir), remote, config=config.delivery, hostname=config.hostname, disk=workers.disk,
        clock=reactor, audit=audit, bounce=make_bounce_sender(router, local, sign),
        concurrency=config.delivery.max_connections,
        grace=config.shutdown_grace,
        warmup=Warmup(config.warmup, config.warmup_file) if config.warmup.enabled else None,
    )

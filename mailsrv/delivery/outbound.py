"""Wiring of outbound mail: the queue over ``<data_dir>/queue``, a sender, and where bounces go.

:func:`build_queue` is what the server start (and the tests, with a fake
:class:`~mailsrv.delivery.attempt.IRemoteDelivery`) call; the sender itself
is built elsewhere (``mailsrv.delivery.remote``).
"""

from __future__ import annotations

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
from mailsrv.message.headers import return_path_line
from mailsrv.net.audit import Audit
from mailsrv.workers import Workers

log = Logger()

#: RFC 5321 4.4: final delivery puts the reverse-path on top, here the null one of a bounce.
RETURN_PATH = return_path_line("", b"\r\n")

def make_bounce_sender(router: Router, local: LocalDelivery) -> BounceSender:
    """Deliver a DSN as SMTP would deliver mail for its recipient: to the store, or through the queue.

    A sender address that has no route any more (the user was removed)
    gets nothing; the loss is logged and the bounce counts as sent.
    """

    async def send(envelope: Envelope, recipient: str, queue: IQueue) -> None:
        local_part, _, domain = recipient.rpartition("@")
        route = router.route(Mailbox(local_part, normalize_domain(domain)))
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
    local: LocalDelivery, audit: Audit,
) -> Queue:
    """The queue service for *config*'s data dir, sending through *remote*; start it to resume."""
    return Queue(
        QueueDir(config.queue_dir), remote, config=config.delivery, hostname=config.hostname, disk=workers.disk,
        clock=reactor, audit=audit, bounce=make_bounce_sender(router, local), concurrency=config.delivery.max_connections,
        grace=config.shutdown_grace,
        warmup=Warmup(config.warmup, config.warmup_file) if config.warmup.enabled else None,
    )

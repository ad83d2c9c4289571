"""The queue service: takes messages for remote recipients, sends them when due, retries, bounces.

:class:`Queue` is the :class:`~mailsrv.delivery.queue.IQueue` SMTP hands
remote recipients to.  The files are :mod:`.queuedir`'s; this module holds
only what is in memory: when each message is next due, the attempts in
flight, one timer for the earliest due message and one poll of the queue
directory.  The poll is how the ``mailsrv queue`` command (and another
server sharing the data dir) is noticed: any record it writes or removes
moves the directory's stamp, and the queue then re-reads the records that changed.

An attempt (:meth:`Queue._attempt`) takes the message's lease, groups the
recipients due by their way out (:func:`mailsrv.delivery.routing.group`:
by domain, or one group per relay), hands each group to the :class:`~mailsrv.delivery.attempt.IRemoteDelivery`
and writes each group's results to the record as soon as they come: the
window in which a crash makes us send again to a recipient that was
already delivered is from the peer's reply to that write (docs/internals.rst).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from functools import partial
from typing import Any, Awaitable, Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, DeferredSemaphore, ensureDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.config.delivery import DeliveryConfig
from mailsrv.delivery import queuedir, routing
from mailsrv.delivery.attempt import IRemoteDelivery, Outcome, RecipientResult
from mailsrv.delivery.bounce import EXPIRED, bounce_envelope
from mailsrv.delivery.envelope import Envelope
from mailsrv.delivery.queue import IQueue
from mailsrv.delivery.queuedir import QueueDir, Record, Recipient, State
from mailsrv.delivery.warmup import Warmup, hold
from mailsrv.message.body import Body
from mailsrv.message.fields import read_header
from mailsrv.net.audit import Audit
from mailsrv.store.files import WatchedFile
from mailsrv.workers import Executor

log = Logger()

#: Seconds between two looks at the queue directory's stamp (CLI edits, other servers).
POLL_INTERVAL = 5.0
#: Seconds before a message another process was sending is looked at again (it may have died).
BUSY_RETRY = 60.0
#: What a recipient the sender returned no result for is deferred with (a bug of the sender).
NO_RESULT = "4.3.0 the delivery attempt gave no result for this recipient"

#: Sends a bounce (an envelope from the null sender) to its recipient, through the given queue if the
#: recipient is remote; durable when it fires.
BounceSender = Callable[[Envelope, str, IQueue], Awaitable[object]]


def apply_results(
    record: Record, results: Sequence[RecipientResult], now: float, retry: Sequence[int], lifetime: int,
    attempted: Sequence[str] = (),
) -> None:
    """Record one attempt's *results* in *record*: delivered, failed, or deferred until the next wait.

    The waits are *retry* by attempt number, the last one repeating; a
    recipient still deferred *lifetime* seconds after the message was
    queued, plus the time warm-up held it back (``held``), fails instead
    (RFC 5321 4.5.4.1: give up after 4-5 days).  An
    *attempted* recipient without a result is deferred, so a faulty sender
    cannot make the queue try it again at once, forever.
    """
    by_address = {r.address: r for r in record.recipients}
    answered = {result.recipient for result in results}
    missing = [RecipientResult(a, Outcome.DEFERRED, NO_RESULT) for a in attempted if a not in answered]
    for result in [*results, *missing]:
        recipient = by_address.get(result.recipient)
        if recipient is None or not recipient.state.waiting:
            continue  # deleted or bounced by the admin meanwhile
        recipient.attempts += 1
        recipient.last_error, recipient.host, recipient.ip = result.reply, result.host, result.ip
        if result.outcome is Outcome.DELIVERED:
            recipient.state = State.DELIVERED
        elif result.outcome is Outcome.FAILED:
            recipient.state = State.FAILED
        elif now >= record.queued_at + lifetime + recipient.held:
            recipient.state = State.FAILED
            recipient.last_error = f"{EXPIRED} gave up after {lifetime / 3600:g} hours; last error: {result.reply}"
        else:
            recipient.state = State.DEFERRED
            recipient.next_attempt = now + retry[min(recipient.attempts, len(retry)) - 1]


def groups(recipients: Sequence[Recipient], delivery: DeliveryConfig) -> list[list[Recipient]]:
    """One SMTP transaction's recipients per list: one domain each, or all of those going to one relay."""
    by_way: dict[object, list[Recipient]] = defaultdict(list)
    for recipient in recipients:
        by_way[routing.group(delivery, recipient.domain)].append(recipient)
    return list(by_way.values())


def _mark_reported(addresses: set[str], record: Record) -> None:
    for recipient in record.recipients:
        if recipient.address in addresses and recipient.state is State.FAILED:
            recipient.reported = True


def _due(record: Record, now: float) -> float | None:
    """When *record* next needs an attempt: its earliest recipient, or now when a bounce is owed."""
    if record.unreported:
        return now
    return record.next_due()


@implementer(IQueue)
class Queue(Service):
    """The durable queue of one server, over the files at *directory*.

    *disk* runs every file operation; *clock* schedules; *bounce* sends a
    DSN (:func:`make_bounce_sender`); *warmup*, when set, may keep
    recipients back for later (:mod:`.warmup`).  At most *concurrency*
    messages are being attempted, and at most that many SMTP transactions
    run, at once.
    """

    name = "queue"

    def __init__(
        self, directory: QueueDir, remote: IRemoteDelivery, *, config: DeliveryConfig, hostname: str,
        disk: Executor, clock: IReactorTime, audit: Audit, bounce: BounceSender, concurrency: int,
        grace: float, warmup: Warmup | None = None,
    ) -> None:
        self.directory = directory
        self._remote = remote
        self._delivery = config
        self._retry = config.retry_seconds
        self._lifetime = config.lifetime_seconds
        self._hostname = hostname
        self._disk = disk
        self._clock = clock
        self._audit = audit
        self._bounce = bounce
        self._concurrency = concurrency
        self._transactions = DeferredSemaphore(concurrency)
        self._grace = grace
        self._warmup = warmup
        self._due: dict[str, float] = {}
        self._flight: dict[str, Deferred[None]] = {}
        self._timer: IDelayedCall | None = None
        self._poll: IDelayedCall | None = None
        self._stamp: object = None
        #: The records seen by the last scan (touched only by the scans, one at a time, in the disk pool).
        self._watched: dict[str, WatchedFile[Record | None]] = {}

    # -- IQueue ----------------------------------------------------------------

    def enqueue(self, envelope: Envelope) -> "Deferred[str]":
        """Write the message for ``envelope.remote`` durably (file and directory fsynced), then schedule it."""
        body = envelope.body
        assert body is not None and envelope.remote, "enqueue() needs a body and remote recipients"
        now = self._clock.seconds()
        record = Record(
            queue_id=envelope.queue_id, sender=envelope.sender, queued_at=now, size=body.size,
            wire_size=body.wire_size, body_type=body.body_type.value,
            recipients=[Recipient(address, next_attempt=now) for address in envelope.remote],
        )

        def added(lease: queuedir.Lease) -> str:
            self._due[record.queue_id] = now
            if self.running and len(self._flight) < self._concurrency:
                self._start(record.queue_id, (lease, record))  # the lease is ours already: no claim, no read
            else:
                lease.release()
                self._schedule()
            return record.queue_id

        return self._disk.run(self.directory.add, record, body).addCallback(added)

    # -- start and stop --------------------------------------------------------

    def startService(self) -> None:
        """Resume: remove crash debris, read every record, schedule what is due."""
        super().startService()
        self._disk.run(self.directory.remove_debris, time.time()).addErrback(
            lambda failure: log.failure("cleaning the queue directory failed", failure))
        self._rescan()

    def stopService(self) -> "Deferred[None]":
        """Start nothing new; wait for the attempts in flight and the sender's QUITs, at most *grace* seconds.

        An attempt cut off by the stop has written every result it got; its
        other recipients are attempted again after the restart.
        """
        super().stopService()
        closing = self._remote.close()  # sessions kept open end now, the ones in flight with their transaction
        for call in (self._timer, self._poll):
            if call is not None and call.active():
                call.cancel()
        self._timer = self._poll = None
        done: Deferred[None] = Deferred()
        timeout = self._clock.callLater(self._grace, lambda: done.called or done.callback(None))

        def ended(_: object) -> None:
            if timeout.active():
                timeout.cancel()
            if not done.called:
                done.callback(None)

        DeferredList([*self._flight.values(), closing]).addBoth(ended)
        return done

    # -- what is due -----------------------------------------------------------

    def _rescan(self) -> None:
        """Read every record again (start, or the directory changed) and reschedule."""

        def scanned(found: tuple[object, list[Record]]) -> None:
            self._stamp, records = found
            now = self._clock.seconds()
            self._due = {r.queue_id: due for r in records if (due := _due(r, now)) is not None}
            self._schedule()

        def failed(failure: Any) -> None:
            log.failure("reading the queue directory failed", failure)

        self._disk.run(self._scan).addCallbacks(scanned, failed).addBoth(lambda _: self._poll_later())

    def _scan(self) -> tuple[object, list[Record]]:
        """In the disk pool: the directory's stamp, then every record (a change after the stamp is seen next time).

        A record whose file did not change is not parsed again: one ``stat``.
        """
        stamp = self.directory.stamp()
        watched = self._watched
        self._watched = {i: watched.get(i) or self.directory.watched(i) for i in self.directory.ids()}
        return stamp, [r for w in self._watched.values() if (r := w.get()) is not None]

    def _poll_later(self) -> None:
        if self.running:
            self._poll = self._clock.callLater(POLL_INTERVAL, self._check_stamp)

    def _check_stamp(self) -> None:
        def checked(stamp: object) -> None:
            if stamp != self._stamp:
                self._rescan()
            else:
                self._poll_later()

        self._disk.run(self.directory.stamp).addCallbacks(checked, lambda f: self._poll_later())

    def _schedule(self) -> None:
        """Start what is due now (within the cap) and set the timer for the next one."""
        if not self.running:
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        now = self._clock.seconds()
        waiting = sorted((due, queue_id) for queue_id, due in self._due.items() if queue_id not in self._flight)
        for due, queue_id in waiting:
            if due > now:
                if len(self._flight) < self._concurrency:
                    self._timer = self._clock.callLater(due - now, self._schedule)
                return
            if len(self._flight) >= self._concurrency:
                return  # the end of an attempt schedules again
            self._start(queue_id)

    def _start(self, queue_id: str, claimed: "tuple[queuedir.Lease, Record] | None" = None) -> None:
        d = self._flight[queue_id] = ensureDeferred(self._attempt(queue_id, claimed))

        def ended(result: object) -> None:
            del self._flight[queue_id]
            if isinstance(result, Failure):
                log.failure("queue attempt for {queue_id} failed", result, queue_id=queue_id)
                self._due[queue_id] = self._clock.seconds() + self._retry[0]
            self._schedule()

        d.addBoth(ended)

    # -- one attempt -----------------------------------------------------------

    async def _attempt(self, queue_id: str, claimed: "tuple[queuedir.Lease, Record] | None") -> None:
        """Send a message's due recipients, then bounce what failed; reschedules it (or forgets it).

        *claimed* is the lease and record of a message just queued; any
        other message is claimed here first.
        """
        if claimed is None:
            try:
                claimed = await self._disk.run(queuedir.claim, self.directory, queue_id)
            except queuedir.Busy:
                self._due[queue_id] = self._clock.seconds() + BUSY_RETRY
                return
        if claimed is None:  # delivered or deleted meanwhile
            self._due.pop(queue_id, None)
            return
        lease, record = claimed
        try:
            now = self._clock.seconds()
            due = [r for r in record.waiting if r.next_attempt <= now]
            body = self.directory.body(record)
            sent = await DeferredList([ensureDeferred(self._send(record, body, group))
                                       for group in groups(due, self._delivery)], consumeErrors=True)
            for ok, failure in sent:
                if not ok:
                    failure.raiseException()  # after every transaction ended, so none runs without the lease
            if len(sent) == 1 and self._warmup is None:  # the record as its one update left it
                latest = sent[0][1]
            else:  # several updates (or warm-up's holds), in an order of their own
                latest = await self._disk.run(self.directory.read, queue_id)
            if latest is not None and latest.unreported:
                latest = await self._report(latest)
        finally:
            lease.release()
        due_at = None if latest is None else _due(latest, self._clock.seconds())
        if due_at is None:
            self._due.pop(queue_id, None)
        else:
            self._due[queue_id] = due_at

    async def _send(self, record: Record, body: Body, group: list[Recipient]) -> Record | None:
        """One SMTP transaction for *group*; its results written to the record before anything else.

        Returns the record as that update left it (None: it is gone), or
        None when warm-up held back the whole group.
        """
        if self._warmup is not None:
            group = await self._admit(record, group)
            if not group:
                return None
        addresses = [r.address for r in group]
        results = await self._transactions.run(self._remote.deliver, record.queue_id, record.sender, addresses, body)
        now = self._clock.seconds()
        change = partial(apply_results, results=results, now=now, retry=self._retry, lifetime=self._lifetime,
                         attempted=addresses)
        updated = await self._disk.run(self.directory.update, record.queue_id, change)
        self._log_attempt(record.queue_id, results, updated)
        return updated

    async def _admit(self, record: Record, group: list[Recipient]) -> list[Recipient]:
        """The recipients of *group* warm-up lets go now; the others are deferred in the record to their slot."""
        assert self._warmup is not None
        now = self._clock.seconds()
        holds = await self._disk.run(self._warmup.admit, [r.address for r in group], now)
        if holds:
            await self._disk.run(self.directory.update, record.queue_id, partial(hold, holds=holds, now=now))
            log.info("queue {queue_id}: {count} recipient(s) held back, {reason}", queue_id=record.queue_id,
                     count=len(holds), reason=next(iter(holds.values())).reason)
        return [r for r in group if r.address not in holds]

    def _log_attempt(self, queue_id: str, results: Sequence[RecipientResult], updated: Record | None) -> None:
        """One audit line per distinct answer of the attempt (usually one for the whole transaction)."""
        states = {r.address: r for r in updated.recipients} if updated is not None else {}
        lines: dict[tuple[Any, ...], list[str]] = defaultdict(list)
        for result in results:
            recipient = states.get(result.recipient)
            state = recipient.state.value if recipient is not None else result.outcome.value
            next_retry = recipient.next_attempt if recipient is not None and recipient.state is State.DEFERRED else None
            lines[(state, result.host, result.ip, result.tls, result.reply, next_retry)].append(result.recipient)
        for (state, host, ip, tls, reply, next_retry), recipients in lines.items():
            self._audit.send(queue_id, recipients, state, host=host, ip=ip, tls=tls, reply=reply,
                             next_retry=next_retry)

    async def _report(self, record: Record) -> Record | None:
        """Bounce the failed recipients not reported yet (none to a null sender); the updated record."""
        failed = record.unreported
        if record.sender:
            header = await self._disk.run(read_header, self.directory.body(record))
            envelope = bounce_envelope(record, failed, header, self._hostname, self._clock.seconds())
            await self._bounce(envelope, record.sender, self)
        reported = {r.address for r in failed}
        return await self._disk.run(self.directory.update, record.queue_id, partial(_mark_reported, reported))

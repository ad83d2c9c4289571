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
from mailsrv.delivery import queuedir, requiretls, routing
from mailsrv.delivery.attempt import IRemoteDelivery, Options, Outcome, RecipientResult
from mailsrv.delivery.bounce import EXPIRED, Action, report_envelope, returns_message
from mailsrv.delivery.dsnrequest import DELAY, FAILURE, NO_REQUEST, SUCCESS, RecipientRequest, wants
from mailsrv.delivery.envelope import Envelope
from mailsrv.delivery.queue import IQueue
from mailsrv.delivery.queuedir import QueueDir, Record, Recipient, State
from mailsrv.delivery.warmup import Warmup, hold
from mailsrv.message import wire
from mailsrv.message.body import Body, BodyType
from mailsrv.message.fields import read_header
from mailsrv.message.headers import past_return_path
from mailsrv.net.audit import Audit
from mailsrv.store.files import WatchedFile
from mailsrv.workers import Executor

log = Logger()

#: Seconds between two looks at the queue directory's stamp (CLI edits, other servers).
POLL_INTERVAL = 5.0
#: Seconds before a message another process was sending is looked at again (it may have died).
BUSY_RETRY = 60.0
#: Recipients in one SMTP transaction at most (RFC 5321 4.5.3.1.8: every server takes 100).
MAX_RECIPIENTS = 100
#: Octets read at a time when a queued body is checked for 8-bit data.
_SCAN_BLOCK = 1 << 16
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
            # RFC 3461 5.2.2: a server that offers DSN got NOTIFY and reports from there; one that
            # does not cannot, so we say "relayed" if the sender asked to hear of success.
            recipient.relayed = not result.peer_dsn and wants(recipient.notify, SUCCESS)
        elif result.outcome is Outcome.FAILED:
            recipient.state = State.FAILED
        elif now >= record.queued_at + lifetime + recipient.held:
            recipient.state = State.FAILED
            recipient.last_error = f"{EXPIRED} gave up after {lifetime / 3600:g} hours; last error: {result.reply}"
        else:
            recipient.state = State.DEFERRED
            recipient.next_attempt = now + retry[min(recipient.attempts, len(retry)) - 1]


def _options(record: Record, group: Sequence[Recipient]) -> Options:
    """What *record*'s sender asked of the delivery to *group*, for the sender to pass on and obey."""
    requests = {r.address: RecipientRequest(r.notify, r.orcpt) for r in group if r.notify or r.orcpt}
    return Options(ret=record.ret, envid=record.envid, requests=requests, require_tls=record.require_tls,
                   tls_optional=record.tls_optional, smtputf8=record.smtputf8)


def _seven_bit(body: Body) -> bool:
    """Whether *body* is all ASCII (read a block at a time: it may be spooled; blocking)."""
    with body.open() as f:
        return all(block.isascii() for block in iter(lambda: f.read(_SCAN_BLOCK), b""))


def _whole_message(body: Body) -> bytes:
    """The message in wire form, without our Return-Path (RFC 3461 4.3 ``RET=FULL``)."""
    with body.open() as f:
        return wire.to_wire(past_return_path(f).read())


def groups(recipients: Sequence[Recipient], delivery: DeliveryConfig) -> list[list[Recipient]]:
    """One SMTP transaction's recipients per list: one domain each, or all of those going to one relay,
    at most :data:`MAX_RECIPIENTS` in one.

    RFC 5321 4.5.3.1.8: a server must take 100 recipients in a transaction
    and may refuse more with 452; sending more would leave the rest to wait
    for a retry.  The lists of one destination follow one another on one
    kept session (:mod:`.reuse`) or run side by side within its slots.
    """
    by_way: dict[object, list[Recipient]] = defaultdict(list)
    for recipient in recipients:
        by_way[routing.group(delivery, recipient.domain)].append(recipient)
    return [way[i : i + MAX_RECIPIENTS] for way in by_way.values() for i in range(0, len(way), MAX_RECIPIENTS)]


def _mark_reported(addresses: set[str], record: Record) -> None:
    for recipient in record.recipients:
        if recipient.address in addresses and recipient.owes_report:
            recipient.reported = True


def _mark_warned(record: Record) -> None:
    record.delay_warned = True


def delay_warnable(record: Record, now: float, after: int) -> list[Recipient]:
    """The recipients a delay warning is owed for now (RFC 3464 Action: delayed), ``[]`` when none is.

    One warning per message, *after* seconds (0: never) from the time it
    was queued, for the recipients still deferred whose NOTIFY lets delays
    be reported (RFC 3461 4.1: DELAY, or no NOTIFY), never to the null sender.
    """
    if not after or record.delay_warned or not record.sender or now < record.queued_at + after:
        return []
    return [r for r in record.recipients if r.state is State.DEFERRED and wants(r.notify, DELAY)]


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
        self.configure(config)
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

    def configure(self, config: DeliveryConfig) -> None:
        """Retry, give up and warn by *config* from now on (made and SIGHUP): an attempt that fails
        from then on is scheduled with the new waits; a wait already set is not moved."""
        self._delivery = config
        self._retry = config.retry_seconds
        self._lifetime = config.lifetime_seconds
        self._delay_warning = config.delay_warning_seconds

    # -- IQueue ----------------------------------------------------------------

    def enqueue(self, envelope: Envelope) -> "Deferred[str]":
        """Write the message for ``envelope.remote`` durably (file and directory fsynced), then schedule it."""
        body = envelope.body
        assert body is not None and envelope.remote, "enqueue() needs a body and remote recipients"
        now = self._clock.seconds()
        requests = [envelope.requests.get(address, NO_REQUEST) for address in envelope.remote]
        record = Record(
            queue_id=envelope.queue_id, sender=envelope.sender, queued_at=now, size=body.size,
            wire_size=body.wire_size, body_type=body.body_type.value,
            recipients=[Recipient(address, next_attempt=now, notify=request.notify, orcpt=request.orcpt)
                        for address, request in zip(envelope.remote, requests)],
            ret=envelope.ret, envid=envelope.envid, require_tls=envelope.require_tls, smtputf8=envelope.smtputf8,
        )

        def added(lease: queuedir.Lease) -> str:
            self._due[record.queue_id] = now
            if self.running and len(self._flight) < self._concurrency:
                self._start(record.queue_id, (lease, record))  # the lease is ours already: no claim, no read
            else:
                lease.release()
                self._schedule()
            return record.queue_id

        return self._disk.run(self._add, record, body).addCallback(added)

    def _add(self, record: Record, body: Body) -> queuedir.Lease:
        """In the disk pool: tag the message as its header asks (RFC 8689 4.2.1), as needing
        SMTPUTF8 only if it does (RFC 6531 3.4), and as 8-bit if it is, then ``QueueDir.add`` it."""
        header = read_header(body)
        if not record.require_tls:
            record.tls_optional = requiretls.tls_optional(header)
        record.smtputf8 = record.smtputf8 and not (record.sender.isascii() and header.isascii())
        if body.body_type is BodyType.SEVEN_BIT and not _seven_bit(body):
            # RFC 6152 3: 8-bit octets go only to a server that offers 8BITMIME, declared so, whatever
            # the client that sent them declared; to any other server the message bounces unchanged.
            record.body_type = BodyType.EIGHT_BIT_MIME.value
        return self.directory.add(record, body)

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
            if latest is not None:
                await self._warn(latest)
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
        results = await self._transactions.run(self._remote.deliver, record.queue_id, record.sender, addresses, body,
                                                _options(record, group))
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
        age = None if updated is None else self._clock.seconds() - updated.queued_at
        for (state, host, ip, tls, reply, next_retry), recipients in lines.items():
            self._audit.send(queue_id, recipients, state, host=host, ip=ip, tls=tls, reply=reply,
                             next_retry=next_retry, age=age)

    async def _report(self, record: Record) -> Record | None:
        """Report the recipients not reported yet (none to a null sender); the updated record.

        A failed recipient is bounced unless its NOTIFY leaves FAILURE out
        (RFC 3461 4.1, ``NEVER`` included); a relayed one gets its
        "relayed" DSN (see :func:`apply_results`).
        """
        owed = record.unreported
        if record.sender:
            failed = [r for r in owed if r.state is State.FAILED and wants(r.notify, FAILURE)]
            relayed = [r for r in owed if r.state is State.DELIVERED]
            for action, recipients in ((Action.FAILED, failed), (Action.RELAYED, relayed)):
                if recipients:
                    await self.report(record, recipients, action, self.directory.body(record))
        reported = {r.address for r in owed}
        return await self._disk.run(self.directory.update, record.queue_id, partial(_mark_reported, reported))

    async def _warn(self, record: Record) -> None:
        """The delay warning, if one is owed (:func:`delay_warnable`).

        The record says it was sent before it is: a crash in between loses
        the warning rather than sending it twice.
        """
        now = self._clock.seconds()
        late = delay_warnable(record, now, self._delay_warning)
        if not late:
            return
        if await self._disk.run(self.directory.update, record.queue_id, _mark_warned) is None:
            return  # delivered or deleted meanwhile
        until = record.queued_at + self._lifetime + max(r.held for r in late)
        await self.report(record, late, Action.DELAYED, self.directory.body(record), retry_until=until)

    async def report(
        self, record: Record, recipients: Sequence[Recipient], action: Action, body: Body,
        retry_until: float | None = None,
    ) -> None:
        """Send *record*'s sender one DSN of *action* about *recipients*, quoting *body*; durable when it returns.

        Also for what SMTP delivered here (:func:`mailsrv.smtp.transaction`),
        so every DSN leaves the same way.
        """
        full = returns_message(record, action)
        original = await self._disk.run(_whole_message if full else read_header, body)
        envelope = report_envelope(record, recipients, action, original, full=full, hostname=self._hostname,
                                   now=self._clock.seconds(), retry_until=retry_until)
        await self._bounce(envelope, record.sender, self)

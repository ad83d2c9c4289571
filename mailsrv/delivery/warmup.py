"""IP warm-up: how many recipients each large receiver may still get this hour, counted on disk.

The queue asks :meth:`Warmup.admit` before each SMTP transaction: "may
these recipients go now?"  Recipients of a domain in no ``[warmup]
groups`` entry always may, and cost no disk access.  For a group the
answer comes from its counters in ``<data_dir>/warmup.json``::

    {"gmail.com": {"first_send": 1764633600.0, "hour": 1764640800.0, "sent": 17}}

``first_send`` is when the group first got mail (its day 0: day *n*
starts *n* times 24 hours later), ``hour`` the clock hour being counted
(UTC, seconds since the epoch) and ``sent`` the recipients admitted in
it.  An admitted recipient counts whatever the receiver then answers: a
receiver that throttles still saw the attempt.  Recipients over the limit
get a :class:`Hold` until the next clock hour, and :func:`hold` writes it
into the queue record: deferred, with the reason as their last error (what
``mailsrv queue list`` shows), and the wait added to their ``held``
seconds, which lengthen their lifetime, so warm-up alone never makes mail
expire.

The file is read and replaced (:func:`mailsrv.store.files.replace_file`)
under :func:`mailsrv.store.files.locked` at every admission, so the
counters survive a restart and several servers sharing the data dir
share one limit.  Every function here blocks: the queue calls them in
``workers.disk``.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from twisted.logger import Logger

from mailsrv.address import canonical_domain
from mailsrv.config.warmup import WarmupConfig
from mailsrv.delivery.queuedir import Record, State
from mailsrv.store.files import locked, read_text, replace_file

HOUR = 3600
DAY = 86400

log = Logger()


@dataclass(frozen=True)
class Hold:
    """A recipient warm-up keeps back: until when, and why (in the admin's words)."""

    until: float
    reason: str


@dataclass
class Counter:
    """One group's counters in the file."""

    first_send: float
    hour: float
    sent: int = 0


def hourly_limit(config: WarmupConfig, day: int) -> float:
    """Recipients per hour on *day* (0 = the day of the first send): grown, capped; ``inf`` for no limit."""
    try:
        grown = math.floor(config.per_hour * (1 + config.daily_growth / 100) ** max(day, 0))
    except OverflowError:
        grown = math.inf
    return min(grown, config.max_per_hour or math.inf)


class Warmup:
    """The warm-up schedule of *config*, its counters in the file *path*."""

    def __init__(self, config: WarmupConfig, path: str) -> None:
        self._config = config
        self._path = path
        self._group_of = {domain: group[0] for group in config.groups for domain in group}

    def group(self, domain: str) -> str | None:
        """The name of *domain*'s group (its first domain), ``None`` when warm-up does not limit it."""
        return self._group_of.get(canonical_domain(domain) or domain.lower())

    def admit(self, addresses: Sequence[str], now: float) -> dict[str, Hold]:
        """Count the *addresses* that may be sent to at *now*; the others, each with its :class:`Hold`.

        In their order: the first ones of a group fill what is left of its
        hour.  Blocks (file lock, fsync) only when an address is in a group.
        """
        members: dict[str, list[str]] = defaultdict(list)
        for address in addresses:
            group = self.group(address.rpartition("@")[2])
            if group is not None:
                members[group].append(address)
        if not members:
            return {}
        holds: dict[str, Hold] = {}
        with locked(self._path):
            counters = _read(self._path)
            for group, capped in members.items():
                counter = counters.setdefault(group, Counter(first_send=now, hour=_hour(now)))
                holds.update(self._take(group, counter, capped, now))
            replace_file(self._path, _dump(counters))
        return holds

    def _take(self, group: str, counter: Counter, addresses: list[str], now: float) -> dict[str, Hold]:
        """Admit what fits in *group*'s hour, counting it; hold the rest until the next hour."""
        if counter.hour != _hour(now):
            counter.hour, counter.sent = _hour(now), 0
        limit = hourly_limit(self._config, int((now - counter.first_send) // DAY))
        room = len(addresses) if limit == math.inf else max(int(limit) - counter.sent, 0)
        counter.sent += min(room, len(addresses))
        held = addresses[room:]
        if not held:
            return {}
        until = counter.hour + HOUR
        slot = time.strftime("%H:%M", time.gmtime(until))
        reason = f"warm-up: {int(limit)}/hour to {group} reached, next slot at {slot} UTC"
        return {address: Hold(until, reason) for address in held}


def hold(record: Record, holds: Mapping[str, Hold], now: float) -> None:
    """Defer the held recipients of *record* to their slot (a record change for ``QueueDir.update``).

    Not an attempt: ``attempts`` stays, so the retry waits are not used up;
    the wait goes to ``held``, which the lifetime check adds.
    """
    for recipient in record.waiting:
        found = holds.get(recipient.address)
        if found is not None:
            recipient.state = State.DEFERRED
            recipient.next_attempt = found.until
            recipient.last_error = found.reason
            recipient.held += max(found.until - now, 0.0)


def _hour(now: float) -> float:
    return now - now % HOUR


def _read(path: str) -> dict[str, Counter]:
    """The counters in *path*; none for no file, or a damaged one (logged: the limits start again at day 0)."""
    text = read_text(path)
    if not text:
        return {}
    try:
        return {group: Counter(**fields) for group, fields in json.loads(text).items()}
    except (ValueError, TypeError, AttributeError) as e:
        log.warn("warm-up counters {path} are damaged ({error}); counting starts again", path=path, error=e)
        return {}


def _dump(counters: Mapping[str, Counter]) -> bytes:
    return (json.dumps({group: asdict(c) for group, c in counters.items()}, indent=1) + "\n").encode()

"""Queue operations: look at, flush, delete and bounce messages waiting for remote delivery.

They edit the queue's records (:mod:`mailsrv.delivery.queuedir`) under
the same edit lock the server takes, never waiting for an attempt in
progress.  A running server notices within
:data:`~mailsrv.delivery.runner.POLL_INTERVAL` seconds: every edit
replaces or removes a record, which moves the queue directory's stamp, and
the server then re-reads the records.  So ``retry`` makes the recipients
due now, ``bounce`` marks them failed (the server sends the DSN and drops
the message), ``delete`` removes both files (an attempt in progress finds
the record gone when it writes its results, and sends nothing more).
"""

from __future__ import annotations

import re
from typing import Callable

from mailsrv.config import Config
from mailsrv.delivery.queuedir import QueueDir, Record, State
from mailsrv.message.fields import read_header
from mailsrv.ops.common import OpsError, reported

#: What the admin's ``queue bounce`` puts in the DSN for each recipient.
BOUNCED_BY_ADMIN = "5.0.0 returned to the sender by the mail administrator"
_QUEUE_ID = re.compile(r"[0-9A-Z]{1,64}\Z")


def _queue(config: Config) -> QueueDir:
    return QueueDir(config.queue_dir)


def _missing(config: Config, queue_id: str) -> OpsError:
    return OpsError(f"no message {queue_id} in the queue ({config.queue_dir})")


def _existing(config: Config, queue_id: str) -> Record:
    """The record of *queue_id*, or an error naming it (an id is never a path)."""
    record = _queue(config).read(queue_id) if _QUEUE_ID.match(queue_id) else None
    if record is None:
        raise _missing(config, queue_id)
    return record


def list_queue(config: Config) -> list[Record]:
    """Every queued message, oldest first."""
    with reported():
        return sorted(_queue(config).records(), key=lambda r: (r.queued_at, r.queue_id))


def show(config: Config, queue_id: str) -> tuple[Record, bytes]:
    """The record of *queue_id* and its message's header section (wire form)."""
    with reported():
        record = _existing(config, queue_id)
        return record, read_header(_queue(config).body(record))


def _edit(config: Config, queue_id: str, change: Callable[[Record], None]) -> Record:
    _existing(config, queue_id)
    with reported():
        record = _queue(config).update(queue_id, change)
    if record is None:
        raise _missing(config, queue_id)
    return record


def _due_now(record: Record) -> None:
    for recipient in record.waiting:
        recipient.next_attempt = 0.0


def retry(config: Config, queue_id: str | None = None) -> list[str]:
    """Make every waiting recipient of *queue_id* (or of every message) due now; the ids changed."""
    ids = [queue_id] if queue_id is not None else [r.queue_id for r in list_queue(config) if r.waiting]
    for one in ids:
        _edit(config, one, _due_now)
    return ids


def _bounce_now(record: Record) -> None:
    for recipient in record.waiting:
        recipient.state = State.FAILED
        recipient.last_error = BOUNCED_BY_ADMIN
        recipient.host = recipient.ip = ""


def bounce(config: Config, queue_id: str) -> list[str]:
    """Give up on the waiting recipients of *queue_id*: the server bounces them to the sender; who they are."""
    waiting = [r.address for r in _existing(config, queue_id).waiting]
    _edit(config, queue_id, _bounce_now)
    return waiting


def delete(config: Config, queue_id: str) -> None:
    """Remove *queue_id* from the queue without telling anyone."""
    _existing(config, queue_id)
    with reported():
        if not _queue(config).delete(queue_id):
            raise _missing(config, queue_id)

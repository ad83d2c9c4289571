"""The queue on disk: one message is a pair of files under ``<data_dir>/queue``.

* ``<id>.msg`` -- the message in its disk form (LF line ends), written once
  (``tmp/``, fsync, rename, or a hard link of the spool file) by
  :func:`mailsrv.store.writing.place`;
* ``<id>.json`` -- the envelope and each recipient's state, indented JSON a
  human can read, written *after* the ``.msg`` and only ever replaced
  atomically (:func:`mailsrv.store.files.replace_file`) under its edit lock
  (:func:`mailsrv.store.files.locked`, ``<id>.json.lock``).

The ``.json`` file is the message: a ``.msg`` without one is a crash
between the two writes (or an enqueue still running in another process)
and is removed once it is older than :data:`ORPHAN_AGE`; the SMTP client
never got a 250 for it.  A new message's two names are made durable by one
fsync of the directory, after both renames (:meth:`QueueDir.add`); a file
system that may then keep the second rename and lose the first would leave
a record without its ``.msg``, also unacknowledged, and also removed.

Several processes may share the directory (two servers on one data dir,
the ``mailsrv queue`` command).  Edits of a record hold its lock; an
*attempt* holds the record's lease, a non-blocking ``flock`` on
``<id>.lease`` kept for as long as the message is being sent
(:func:`claim`).  A second server that finds the lease taken skips the
message, and the kernel drops the lease when its holder dies, so a crash
never leaves a message stuck.  The CLI edits records under the edit lock
only, never waiting for a lease: an attempt re-reads the record when it
applies its results (:func:`update`).

Every function here blocks: the server calls them in ``workers.disk``.
"""

from __future__ import annotations

import contextlib
import enum
import fcntl
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Callable

from twisted.logger import Logger

from mailsrv.message.body import Body, BodyType
from mailsrv.store.files import FileStamp, WatchedFile, fsync_dir, locked, read_text, replace_file
from mailsrv.store.writing import place

#: A ``.msg`` (or a temp file) with no record, older than this, is debris of a crash.
ORPHAN_AGE = 3600.0
_RECORD, _MESSAGE, _LEASE, _LOCK = ".json", ".msg", ".lease", ".json.lock"

log = Logger()


class State(str, enum.Enum):
    """Where one recipient stands."""

    PENDING = "pending"  # not tried yet
    DEFERRED = "deferred"  # tried, temporary failure: tried again at next_attempt
    DELIVERED = "delivered"  # a server took it
    FAILED = "failed"  # given up (5xx, expiry, bounced by the admin): the sender is told

    @property
    def waiting(self) -> bool:
        """True while the recipient still gets attempts."""
        return self in (State.PENDING, State.DEFERRED)


@dataclass
class Recipient:
    """One recipient of a queued message and what the attempts made of it."""

    address: str
    state: State = State.PENDING
    attempts: int = 0
    #: When the next attempt is due (seconds since the epoch, the queue's clock).
    next_attempt: float = 0.0
    #: The last reply or error (the bounce quotes it for a failed recipient).
    last_error: str = ""
    #: The host (and address) that gave it, for the bounce's Remote-MTA.
    host: str = ""
    ip: str = ""
    #: True once a failed recipient was reported in a bounce (or needs none).
    reported: bool = False
    #: Seconds IP warm-up kept it back (:mod:`mailsrv.delivery.warmup`); its lifetime is longer by as much.
    held: float = 0.0
    #: RFC 3461 NOTIFY as the client gave it (``""``: none) and ORCPT (``addr-type;address``, decoded).
    notify: str = ""
    orcpt: str = ""
    #: Delivered to a server without DSN while NOTIFY asks for SUCCESS: a "relayed" DSN is owed (RFC 3461 5.2.2).
    relayed: bool = False

    @property
    def owes_report(self) -> bool:
        """The sender is still to be told about it: it failed, or was relayed past DSN (see :attr:`relayed`)."""
        if self.reported:
            return False
        return self.state is State.FAILED or (self.state is State.DELIVERED and self.relayed)

    @property
    def domain(self) -> str:
        """The part after the last ``@``, lower case: recipients are grouped by it."""
        return self.address.rpartition("@")[2].lower()


@dataclass
class Record:
    """A queued message's envelope: the ``.json`` file, as read or to be written.

    Fields added later have defaults, so records written before them still load.
    """

    queue_id: str
    sender: str
    queued_at: float
    size: int
    wire_size: int
    body_type: str = BodyType.SEVEN_BIT.value
    recipients: list[Recipient] = field(default_factory=list)
    #: RFC 3461 RET (``FULL``, ``HDRS``, ``""``) and ENVID (decoded) of MAIL FROM.
    ret: str = ""
    envid: str = ""
    #: RFC 8689: REQUIRETLS was given (verified TLS to servers offering it, every hop) ...
    require_tls: bool = False
    #: ... or the header says ``TLS-Required: No`` (a failed TLS policy does not stop it).
    tls_optional: bool = False
    #: RFC 6531 3.4: the client gave SMTPUTF8 and the sender or the header is not ASCII, so the
    #: next server must offer SMTPUTF8 (non-ASCII recipients need it by themselves).
    smtputf8: bool = False
    #: The one delay warning (RFC 3464 Action: delayed) was sent.
    delay_warned: bool = False

    @property
    def waiting(self) -> list[Recipient]:
        """The recipients that still get attempts."""
        return [r for r in self.recipients if r.state.waiting]

    @property
    def unreported(self) -> list[Recipient]:
        """Recipients the sender has not been told about yet (:attr:`Recipient.owes_report`)."""
        return [r for r in self.recipients if r.owes_report]

    @property
    def finished(self) -> bool:
        """Nothing left to try or report: the message leaves the queue."""
        return not self.waiting and not self.unreported

    def next_due(self) -> float | None:
        """The earliest next attempt among the waiting recipients, ``None`` when none waits."""
        return min((r.next_attempt for r in self.waiting), default=None)

    def to_json(self) -> bytes:
        data = asdict(self)
        for r in data["recipients"]:
            r["state"] = r["state"].value
        return (json.dumps(data, indent=1, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_json(cls, text: str) -> "Record":
        """Parse a record; ValueError (or KeyError, TypeError) for a damaged one."""
        data = json.loads(text)
        recipients = [Recipient(**{**r, "state": State(r["state"])}) for r in data.pop("recipients")]
        return cls(**data, recipients=recipients)


def parse_record(text: str, path: str) -> Record | None:
    """The record in *text* (the file *path*), ``None`` for no text or a damaged record (logged)."""
    if not text:
        return None
    try:
        return Record.from_json(text)
    except (ValueError, KeyError, TypeError) as e:
        log.warn("queue record {path} is damaged ({error}); the message is left alone until it is fixed",
                 path=path, error=e)
        return None


class QueueDir:
    """The files of the queue at *path* (``config.queue_dir``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.tmp = os.path.join(path, "tmp")

    def record_path(self, queue_id: str) -> str:
        return os.path.join(self.path, queue_id + _RECORD)

    def message_path(self, queue_id: str) -> str:
        return os.path.join(self.path, queue_id + _MESSAGE)

    def lease_path(self, queue_id: str) -> str:
        return os.path.join(self.path, queue_id + _LEASE)

    def body(self, record: Record) -> Body:
        """The queued message as a :class:`Body` over its ``.msg`` file (never discard it)."""
        return Body(size=record.size, wire_size=record.wire_size, path=self.message_path(record.queue_id),
                    body_type=BodyType(record.body_type))

    def stamp(self) -> FileStamp | None:
        """The directory's stamp: any create, replace or removal of a record moves it."""
        return FileStamp.of(self.path)

    # -- writing ---------------------------------------------------------------

    def add(self, record: Record, body: Body) -> "Lease":
        """Write a new message durably, the ``.msg`` first, then its record; its lease, held.

        When this returns both files and their directory entries are fsynced,
        so SMTP may answer 250.  A crash before the record's rename leaves
        at most an orphan ``.msg`` (see the module docstring).  The lease is
        taken before the record exists, so the caller may send the message
        at once without :func:`claim`: no other process can have it yet.
        """
        os.makedirs(self.tmp, mode=0o700, exist_ok=True)
        lease = Lease(os.open(self.lease_path(record.queue_id), os.O_RDONLY | os.O_CREAT, 0o644))
        try:
            fcntl.flock(lease.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # Both files fsynced, then one directory fsync for both names: three fsyncs, not four.
            place(body, [(self.path, record.queue_id + _MESSAGE)], sync_dirs=False)
            replace_file(self.record_path(record.queue_id), record.to_json(), sync_dir=False)
            fsync_dir(self.path)
        except BaseException:
            lease.release()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.lease_path(record.queue_id))
            raise
        return lease

    def read(self, queue_id: str) -> Record | None:
        """The record of *queue_id*, ``None`` when it is gone (delivered, deleted) or damaged (logged)."""
        path = self.record_path(queue_id)
        return parse_record(read_text(path), path)

    def watched(self, queue_id: str) -> WatchedFile[Record | None]:
        """The record of *queue_id*, re-read only when its file changed (the server's rescans)."""
        return WatchedFile(self.record_path(queue_id), parse_record)

    def update(self, queue_id: str, change: Callable[[Record], None]) -> Record | None:
        """Apply *change* to the record under its edit lock and write it back; ``None`` if it is gone.

        A record that *change* leaves :attr:`~Record.finished` is removed
        with its message instead (record first: the ``.msg`` alone is an orphan).
        """
        with locked(self.record_path(queue_id)):
            record = self.read(queue_id)
            if record is None:
                self._drop_lock(queue_id)
                return None
            change(record)
            if record.finished:
                self._remove(queue_id)
            else:
                replace_file(self.record_path(queue_id), record.to_json())
        return record

    def delete(self, queue_id: str) -> bool:
        """Remove a message under its edit lock; False when it was not there."""
        with locked(self.record_path(queue_id)):
            if not os.path.exists(self.record_path(queue_id)):
                self._drop_lock(queue_id)
                return False
            self._remove(queue_id)
        return True

    def _remove(self, queue_id: str) -> None:
        for suffix in (_RECORD, _MESSAGE, _LEASE):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.path, queue_id + suffix))
        fsync_dir(self.path)
        self._drop_lock(queue_id)

    def _drop_lock(self, queue_id: str) -> None:
        """Remove the edit lock of a message that is gone (while holding it: a waiter then finds no record)."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.path, queue_id + _LOCK))

    # -- reading the whole queue -------------------------------------------------

    def ids(self) -> list[str]:
        """The ids of every record, oldest name first (``[]`` before the first message)."""
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return []
        return sorted(name[: -len(_RECORD)] for name in names
                      if name.endswith(_RECORD) and not name.startswith("."))

    def records(self) -> list[Record]:
        """Every readable record."""
        return [r for r in map(self.read, self.ids()) if r is not None]

    def remove_debris(self, now: float) -> int:
        """Remove what crashes left (files of no record, temp files) older than :data:`ORPHAN_AGE`; how many.

        A ``.msg`` without its record is a crash between the two writes of
        :meth:`add`, a ``.lease`` or lock without one the rest of a removal;
        young ones may be an enqueue still running in another process.  A
        record without its ``.msg`` was never acknowledged (see the module
        docstring): it goes with its lease and lock.
        """
        records = {i for i in self.ids() if os.path.exists(self.message_path(i))}
        removed = 0
        for directory in (self.path, self.tmp):
            try:
                names = os.listdir(directory)
            except FileNotFoundError:
                continue
            for name in names:
                path = os.path.join(directory, name)
                if path == self.tmp:
                    continue
                debris = directory == self.tmp or name.startswith(".") or name.split(".")[0] not in records
                if debris and _older(path, now):
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(path)
                        removed += 1
        return removed


def _older(path: str, now: float) -> bool:
    try:
        return os.stat(path).st_mtime < now - ORPHAN_AGE
    except FileNotFoundError:
        return False


class Lease:
    """The right to send one message, held until :meth:`release` (or the holder's death)."""

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd

    def release(self) -> None:
        """Give the message back (closing the descriptor drops the ``flock``)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class Busy(Exception):
    """Another process holds the message's lease: it is being sent right now."""


def claim(queue: QueueDir, queue_id: str) -> tuple[Lease, Record] | None:
    """Take the lease of *queue_id* and read its record; ``None`` when it is gone.

    Raises :class:`Busy` when another process holds the lease.

    The record is read *after* the lease is taken, so what another server
    delivered before it let go is seen and not sent again.
    """
    try:
        fd = os.open(queue.lease_path(queue_id), os.O_RDONLY | os.O_CREAT, 0o644)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise Busy(queue_id) from None
    record = queue.read(queue_id)
    if record is None:
        os.close(fd)
        return None
    return Lease(fd), record

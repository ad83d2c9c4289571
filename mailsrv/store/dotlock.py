"""Dovecot's dot-lock: ``<file>.lock`` created with ``O_EXCL`` while one writer changes *file*.

Dovecot guards ``dovecot-uidlist``, ``dovecot-keywords`` and
``subscriptions`` this way (its ``file_dotlock_create``).  mailsrv takes
the same lock around its own writes of those files, so a Dovecot process
and mailsrv working on one Maildir never interleave their changes.  Our
own processes still serialise on an ``flock`` first
(:func:`mailsrv.store.files.locked`): that waits without polling, and
leaves only one of them at a time polling for the dot-lock.

The rules are Dovecot's, so that each side recognises the other's locks:

* the lock file holds ``<pid>:<hostname>``;
* a lock naming a process of this host that no longer exists is stale at
  once; any other lock is stale when neither it nor the guarded file has
  changed for *stale_after* seconds (Dovecot: 120 for the UID list, 30 for
  subscriptions), and is then removed;
* the holder removes the lock when done, only if it is still its own.

Everything here blocks (sleeps between attempts); call it from an executor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from typing import Iterator

from twisted.logger import Logger

from mailsrv.store.errors import LockTimeout

log = Logger()

SUFFIX = ".lock"
#: Seconds between attempts while another writer holds the lock.
POLL_INTERVAL = 0.05
#: A lock this young is not checked for a dead owner (Dovecot does the same:
#: its writer may not have written its pid yet).
PID_CHECK_AFTER = 2.0


def _hostname() -> str:
    return socket.gethostname()


def _owner_is_dead(lock_path: str) -> bool:
    """Whether the lock names a process of this host that is gone."""
    try:
        with open(lock_path, "rb") as f:
            content = f.read(512).decode("utf-8", errors="replace").strip()
    except FileNotFoundError:
        return False
    pid, _, host = content.partition(":")
    if host != _hostname() or not pid.isdigit() or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def _is_stale(path: str, lock_path: str, stale_after: float, now: float) -> bool:
    """Dovecot's test; a holder that works long keeps its lock fresh by touching it."""
    lock_changed = _mtime(lock_path)
    if lock_changed is None:
        return False  # released meanwhile: just try again
    if now - lock_changed >= PID_CHECK_AFTER and _owner_is_dead(lock_path):
        return True
    return now - max(lock_changed, _mtime(path) or 0) > stale_after


def _try_create(lock_path: str) -> tuple[int, int] | None:
    """Create the lock file with our pid; its (device, inode), or None when another holds it."""
    try:
        fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return None
    try:
        os.write(fd, f"{os.getpid()}:{_hostname()}".encode("utf-8"))
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def dotlocked(path: str, stale_after: float, timeout: float | None = None) -> Iterator[None]:
    """Hold Dovecot's dot-lock of *path* (``<path>.lock``) for the ``with`` block.

    Waits for another holder up to *timeout* seconds (default: a little
    over *stale_after*, by which time a dead holder's lock is stale), then
    raises :class:`LockTimeout`.
    """
    lock_path = path + SUFFIX
    deadline = time.monotonic() + (stale_after + 2 if timeout is None else timeout)
    while True:
        mine = _try_create(lock_path)
        if mine is not None:
            break
        if _is_stale(path, lock_path, stale_after, time.time()):
            log.warn("removing stale lock {lock}", lock=lock_path)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
            continue
        if time.monotonic() >= deadline:
            log.warn("gave up waiting for {lock}", lock=lock_path)
            raise LockTimeout("the mailbox is locked by another program; try again later")  # told to clients
        time.sleep(POLL_INTERVAL)
    try:
        yield
    finally:
        _release(lock_path, mine)


def _release(lock_path: str, mine: tuple[int, int]) -> None:
    """Remove the lock if it is still the one we made (a stale-lock override may have replaced it)."""
    try:
        st = os.stat(lock_path)
    except FileNotFoundError:
        log.warn("our lock {lock} was removed by another writer", lock=lock_path)
        return
    if (st.st_dev, st.st_ino) != mine:
        log.warn("our lock {lock} was replaced by another writer", lock=lock_path)
        return
    with contextlib.suppress(FileNotFoundError):
        os.unlink(lock_path)

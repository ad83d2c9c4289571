"""Idle SQLite connections kept for the next job on the same file, a few for the whole process.

Opening a connection is cheap, but its first statement reads the schema
and maps the WAL index: about 0.3 ms, more than the query of a small
FETCH batch itself (``FETCH 1:1000 (ENVELOPE)`` of a cached folder made
five of them).  So a job's connection is handed back here when it ends,
and the next job on that file takes it, whichever pool thread runs it
(``check_same_thread=False``: one job at a time uses a connection, never
two threads at once).

What is kept is bounded for the whole process, not per thread or per
user: at most :data:`MAX_IDLE` connections (three descriptors and a page
cache each), the longest idle closed first.  A kept connection is used
again only while its file is the one at the path, unchanged since
(same :class:`~mailsrv.store.files.FileStamp`: another process may have moved a corrupt
file aside and started a new one, or something wrote over it; a WAL
checkpoint also moves them, and then costs one fresh open), and the
caller's *generation* (its own move-asides) is unchanged.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from typing import Callable

from mailsrv.store.files import FileStamp

#: Idle connections kept process-wide.
MAX_IDLE = 4

_lock = threading.Lock()
#: ``(path, generation, file stamp)`` -> idle connections to it, the least recently returned key first.
_idle: "OrderedDict[tuple, list[sqlite3.Connection]]" = OrderedDict()
_count = 0


def take(path: str, generation: int, open_new: Callable[[], sqlite3.Connection]) -> tuple[sqlite3.Connection, tuple]:
    """A connection to *path*: an idle one of the same file and *generation*, else ``open_new()``.

    Returns it with the token to :func:`give_back` it under.  Blocking
    (a ``stat``, maybe an open): call it in a pool thread.
    """
    global _count
    stamp = FileStamp.of(path)
    if stamp is not None:
        token = (path, generation, stamp)
        with _lock:
            free = _idle.get(token)
            if free:
                db = free.pop()
                _count -= 1
                if not free:
                    del _idle[token]
                return db, token
    db = open_new()
    return db, (path, generation, FileStamp.of(path))


def give_back(db: sqlite3.Connection, token: tuple) -> None:
    """Keep *db* (its job ended cleanly, no transaction open) for the next :func:`take`; close the oldest past the bound."""
    global _count
    if token[2] is None or db.in_transaction:
        db.close()
        return
    surplus = []
    with _lock:
        _idle.setdefault(token, []).append(db)
        _idle.move_to_end(token)
        _count += 1
        while _count > MAX_IDLE:
            oldest = next(iter(_idle))
            free = _idle[oldest]
            surplus.append(free.pop(0))
            _count -= 1
            if not free:
                del _idle[oldest]
    for old in surplus:
        old.close()


def close_all() -> None:
    """Close every idle connection (tests, shutdown)."""
    global _count
    with _lock:
        dbs = [db for free in _idle.values() for db in free]
        _idle.clear()
        _count = 0
    for db in dbs:
        db.close()

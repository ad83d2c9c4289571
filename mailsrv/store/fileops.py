"""One blocking file operation over many message files: the loop the disk pool runs.

Flags live in file names, so a STORE over a whole folder renames every
file; an EXPUNGE unlinks every one; a session claiming ``\\Recent`` moves
``new/`` to ``cur/``.  Tens of thousands of directory operations must not
run on the reactor thread.  The folder takes the paths from its snapshot on
the reactor thread and hands them here; this code touches no shared state
and reports, per message, whether its file was there.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

#: One message's share of the work: its UID and the arguments of the operation (its path first).
Job = tuple[int, tuple[Any, ...]]


def each(op: Callable[..., T], jobs: Sequence[Job]) -> tuple[list[tuple[int, T]], list[int]]:
    """Call ``op(*args)`` for every job: ``(uid, result)`` of those done, UIDs whose file was missing.

    A missing file (``FileNotFoundError``) was renamed or removed by someone
    else meanwhile; the caller decides whether to look for it again.  Any
    other error stops the loop and propagates: what was done before it
    stays done, and the caller's next sync sees it.
    """
    done: list[tuple[int, T]] = []
    missing: list[int] = []
    for uid, args in jobs:
        try:
            done.append((uid, op(*args)))
        except FileNotFoundError:
            missing.append(uid)
    return done, missing

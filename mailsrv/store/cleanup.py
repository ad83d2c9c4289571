"""Removing what a crash left behind in the Maildirs' ``tmp/`` directories.

Every message is written in ``tmp/`` and then renamed into ``new/`` or
``cur/``; a crash or a kill in between leaves the file in ``tmp/`` for good.
maildir(5) says what to do: a file in ``tmp/`` not touched for 36 hours is
garbage, for no delivery takes that long.  A delivery in progress writes
its file, so its modification time is recent and it stays.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from twisted.logger import Logger

from mailsrv.store.names import folder_dir, folder_names

log = Logger()

#: maildir(5): files in tmp/ untouched for this long are removed.
STALE_AFTER = 36 * 3600


def remove_stale_tmp(root: str, now: float, max_age: float = STALE_AFTER) -> int:
    """Remove the files in every ``tmp/`` under *root* (each user, each folder) older than *max_age*.

    Age is the later of the access and the modification time, so a file
    read or written since is kept.  Returns how many were removed; blocking.
    """
    before = now - max_age
    return sum(_clean(os.path.join(maildir, "tmp"), before) for maildir in _maildirs(root))


def _maildirs(root: str) -> Iterator[str]:
    """Every folder of every user: ``<root>/<domain>/<local>/`` and its ``.Name`` folders."""
    for domain in _subdirectories(root):
        for user in _subdirectories(domain):
            for name in folder_names(user):
                yield folder_dir(user, name)


def _subdirectories(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def _clean(tmp: str, before: float) -> int:
    removed = 0
    try:
        with os.scandir(tmp) as entries:
            for entry in entries:
                try:
                    if entry.is_file(follow_symlinks=False) and _untouched(entry.stat(follow_symlinks=False), before):
                        os.unlink(entry.path)
                        removed += 1
                except FileNotFoundError:  # renamed into place meanwhile: its delivery finished
                    continue
    except FileNotFoundError:
        pass
    except OSError as e:
        log.warn("cannot clean {path}: {error}", path=tmp, error=e.strerror)
    return removed


def _untouched(st: os.stat_result, before: float) -> bool:
    return max(st.st_atime, st.st_mtime) < before

"""Durable file updates shared by every module that persists state.

Every small file mailsrv persists (UID lists, keywords, subscriptions, the
user and alias files) is replaced atomically: written to a temp file in the
same directory, fsynced, renamed over the old one, and the directory fsynced.
A crash leaves the old or the new version, never a torn one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile


def fsync_dir(path: str) -> None:
    """Make a directory entry change (create, rename, link, unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: str, data: bytes, default_mode: int = 0o600) -> None:
    """Atomically and durably replace *path* with *data*.

    An existing file keeps its mode and, where we may, its owner; a new file
    takes the owner of its directory. So an admin running the CLI as root
    never leaves a file the server, running as its own user after twistd
    dropped privileges, can no longer read.
    """
    directory = os.path.dirname(path) or "."
    try:
        st = os.stat(path)
        mode = st.st_mode & 0o7777
    except FileNotFoundError:
        st = os.stat(directory)
        mode = default_mode
    owner = (st.st_uid, st.st_gid)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if owner != (os.getuid(), os.getgid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), *owner)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)

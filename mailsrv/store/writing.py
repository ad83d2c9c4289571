"""Putting message files into Maildirs durably: write once, link everywhere else.

Delivery, APPEND and COPY all end here, in the store's executor (every
function blocks).  A message is durable when its data is fsynced and the
directory entry naming it is fsynced; only then may SMTP answer 250 or
IMAP OK.

One file serves every recipient: it is written once (or, for a body that
was spooled while it arrived, is the spool file itself, fsynced) and hard
linked into each further Maildir.  A hard link fails across file systems
(``EXDEV``) or where links are not supported; then the message is copied,
streamed through ``tmp/`` of the target Maildir and renamed into place, so
a crash never leaves half a message under a name a reader would pick up.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

from mailsrv.message.body import Body
from mailsrv.store.files import fsync_dir

#: A place for a message: (Maildir path, ``new/<name>`` or ``cur/<name>``).
Destination = tuple[str, str]


def write_file(path: str, data: bytes | BinaryIO, mtime: float | None = None) -> None:
    """Write *data* (octets or a file to stream) to the new file *path* and fsync it.

    Not its directory: the caller renames or links it and fsyncs that.  On
    failure the partial file is removed.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        if isinstance(data, bytes):
            with memoryview(data) as view:
                written = 0
                while written < len(view):
                    written += os.write(fd, view[written:])
        else:
            with os.fdopen(fd, "wb", closefd=False) as out:
                shutil.copyfileobj(data, out)
        os.fsync(fd)
    except BaseException:
        os.unlink(path)
        raise
    finally:
        os.close(fd)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def link_or_copy(src: str, target: Destination) -> bool:
    """Hard-link *src* into *target*, or copy it there; True when it had to copy.

    ``FileNotFoundError`` (the source is gone) propagates: the caller knows
    whether that means "skip" (COPY) or "fail" (delivery).  A copy keeps
    the source's times, so INTERNALDATE survives it.
    """
    maildir, rel = target
    dst = os.path.join(maildir, rel)
    try:
        os.link(src, dst)
        return False
    except FileNotFoundError:
        raise
    except OSError:  # EXDEV (another file system), EPERM/EOPNOTSUPP (no links), EMLINK
        pass
    tmp = os.path.join(maildir, "tmp", os.path.basename(rel))
    with open(src, "rb") as f:
        write_file(tmp, f)
        st = os.fstat(f.fileno())
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.rename(tmp, dst)
    return True


@dataclass(frozen=True)
class Placed:
    """What :func:`place` did: the file's mtime (INTERNALDATE) and how many targets needed a copy."""

    mtime: float
    copies: int


def place(body: Body, targets: Sequence[Destination], mtime: float | None = None, sync_dirs: bool = True) -> Placed:
    """Make *body* durable at every target; *mtime* sets INTERNALDATE.

    An in-memory body is written to ``tmp/`` of the first target and renamed
    into place; a spooled body is fsynced and linked there, never read.
    The other targets link to the first.  Without *sync_dirs* the file is
    durable but its names are not until the caller fsyncs their directories.
    """
    first = os.path.join(*targets[0])
    copies = 0
    if body.path is None:
        tmp = os.path.join(targets[0][0], "tmp", os.path.basename(targets[0][1]))
        write_file(tmp, body.read(), mtime)
        os.rename(tmp, first)
    else:
        _fsync_file(body.path)
        copies += link_or_copy(body.path, targets[0])
        if mtime is not None:
            os.utime(first, (mtime, mtime))
    for target in targets[1:]:
        copies += link_or_copy(first, target)
    for directory in sorted({os.path.dirname(os.path.join(*t)) for t in targets}) if sync_dirs else ():
        fsync_dir(directory)
    return Placed(os.stat(first).st_mtime, copies)


def link_each(pairs: Sequence[tuple[str, Destination]]) -> list[int]:
    """Link (or copy) each ``(source file, target)`` pair durably: IMAP COPY.

    Returns the indexes of the pairs done; a source that vanished meanwhile
    (expunged by another session) is skipped.
    """
    done = []
    for i, (src, target) in enumerate(pairs):
        try:
            link_or_copy(src, target)
        except FileNotFoundError:
            continue
        done.append(i)
    for directory in sorted({os.path.dirname(os.path.join(*pairs[i][1])) for i in done}):
        fsync_dir(directory)
    return done

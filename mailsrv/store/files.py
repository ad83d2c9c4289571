"""Persisted small files: the edit lock, the change stamp, the durable replace.

Several mailsrv processes, on one host or on several sharing the data
directory, read and write the same files (UID lists, keywords,
subscriptions, the user and alias files).  Three rules keep that safe, and
this module is the one place each of them is written down:

* a read-modify-write holds :func:`locked` (``flock`` on ``<path>.lock``);
* a file is replaced, never edited in place: :func:`replace_file` writes a
  temp file, fsyncs it, renames it over the old one and fsyncs the
  directory, so a crash leaves the old or the new version, never a mix;
* a reader re-reads when the :class:`FileStamp` moved.  The stamp is inode,
  size, mtime *and* ctime: an mtime alone misses a replacement made within
  one timestamp tick, while a replacement always brings a new inode.

Everything here blocks (``flock`` waits, ``fsync``), so the server calls it
through an executor, never on the reactor thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Generic, Iterator, TypeVar

from twisted.logger import Logger

log = Logger()

T = TypeVar("T")


@contextlib.contextmanager
def locked(path: str, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` for a read-modify-write of *path*.

    With *wait* false, a lock another process holds raises :class:`BlockingIOError`
    instead of waiting for it (for work that may take minutes, such as an ACME order).

    A separate lock file, because *path* itself is replaced by rename and a
    lock on the old inode would guard nothing.  It is opened read-only
    (``flock`` needs no more) and created readable by all (it stays empty),
    so a lock that root's ``mailsrv`` command created can still be taken by
    the server after twistd dropped its privileges.
    """
    fd = os.open(path + ".lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


@dataclass(frozen=True)
class FileStamp:
    """What a ``stat`` says about a file's identity and version."""

    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str) -> "FileStamp | None":
        """The stamp of *path* now, ``None`` when it does not exist."""
        try:
            return cls.from_stat(os.stat(path))
        except FileNotFoundError:
            return None

    @classmethod
    def from_stat(cls, st: os.stat_result) -> "FileStamp":
        """The stamp of an existing ``stat`` result."""
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def read_text(path: str) -> str:
    """The file's text, ``""`` when it does not exist.

    Undecodable bytes become U+FFFD so that one bad line is reported and
    skipped by the parser instead of making the whole file unreadable.
    """
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def fsync_dir(path: str) -> None:
    """Make a directory entry change (create, rename, link, unlink) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: str, data: bytes, default_mode: int = 0o600, sync_dir: bool = True) -> None:
    """Atomically and durably replace *path* with *data*.

    Without *sync_dir* the rename is not made durable yet: the caller
    fsyncs the directory itself, once for several files renamed into it.

    An existing file keeps its mode and, where we may, its owner; a new file
    takes the owner of its directory. So an admin running the CLI as root
    never leaves a file the server, running as its own user after twistd
    dropped privileges, can no longer read.  If anything fails before the
    rename, the temp file is removed and *path* is untouched.
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
    if sync_dir:
        fsync_dir(directory)


class WatchedFile(Generic[T]):
    """The parsed content of a file, re-parsed whenever its :class:`FileStamp` moves.

    A missing file parses as empty text (no users yet is a normal state of a
    new server).  The server reads the user and alias files this way on
    every lookup: one ``stat`` when nothing changed.
    """

    def __init__(
        self, path: str, parse: Callable[[str, str], T], recheck_after: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._parse = parse
        self._stamp: object = object()  # matches no stamp: the first get() parses
        self._value: T = parse("", path)
        self._recheck_after = recheck_after
        self._clock = clock
        self._checked = -math.inf

    def reload(self) -> T:
        """Read and parse the file now, changed or not (SIGHUP asks for that)."""
        self._stamp = object()
        return self.get(fresh=True)

    def get(self, fresh: bool = False) -> T:
        """The current content; costs one ``stat`` when nothing changed.

        Within *recheck_after* seconds of the last ``stat`` the content is
        taken as it was, without one, unless *fresh* asks for a new look
        (a caller about to refuse someone because of what the file says).
        """
        now = self._clock()
        if not fresh and now - self._checked < self._recheck_after:
            return self._value
        self._checked = now
        try:
            stamp = FileStamp.of(self.path)
        except OSError as e:
            log.error("cannot stat {path}: {error}; keeping the last version", path=self.path, error=e.strerror)
            return self._value
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._value = self._parse(read_text(self.path), self.path)
            except OSError as e:
                log.error("cannot read {path}: {error}; keeping the last version", path=self.path, error=e.strerror)
        return self._value


def append_durably(path: str, text: str) -> None:
    """Append entries durably; a line torn by an earlier crash is ended first."""
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                text = "\n" + text
        f.write(text.encode("utf-8"))
        f.flush()
        os.fdatasync(f.fileno())

"""Small line-oriented files shared by the server (reader) and the CLI (writer).

The server never locks: the CLI replaces a file atomically (temp file in the
same directory, fsync, rename, fsync the directory), so a reader sees the
old or the new file, never half of one.  Writers serialise on an
``fcntl.flock`` of ``<file>.lock`` so two concurrent ``mailsrv`` runs cannot
lose each other's read-modify-write.  The server notices a change by a
cheap ``stat`` per lookup and re-parses only when the file's identity moved.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from typing import Callable, Generic, Iterator, TypeVar

from twisted.logger import Logger

from mailsrv.durable import replace_file

log = Logger()

T = TypeVar("T")


class EditError(Exception):
    """An edit the admin asked for cannot be made; the message says why."""


def content_lines(text: str) -> Iterator[tuple[int, str]]:
    """``(line number, stripped line)`` for every line not blank or a ``#`` comment."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield number, line


def first_field(line: str) -> str | None:
    """The text before the first ``:`` of an entry line, ``None`` for others."""
    line = line.strip()
    if not line or line.startswith("#"):
        return None
    return line.partition(":")[0].strip()


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


def atomic_write(path: str, text: str, default_mode: int) -> None:
    """Replace *path* with *text* atomically and durably (see :mod:`mailsrv.durable`)."""
    replace_file(path, text.encode("utf-8"), default_mode)


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<path>.lock`` for a read-modify-write."""
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def edit(path: str, change: Callable[[str], str], default_mode: int) -> None:
    """Read *path*, apply *change* to its text and write the result, locked."""
    with locked(path):
        atomic_write(path, change(read_text(path)), default_mode)


def map_lines(
    text: str,
    key_of: Callable[[str], str | None],
    key: str,
    change: Callable[[str], str | None],
) -> tuple[str, int]:
    """Apply *change* to each line whose key is *key*; ``None`` drops it.

    Every other line (comments, blank lines, entries the admin wrote by
    hand) is kept byte for byte.  Returns the new text and the number of
    lines that matched.
    """
    out: list[str] = []
    hits = 0
    for line in text.splitlines(keepends=True):
        if key_of(line) == key:
            hits += 1
            replaced = change(line)
            if replaced is None:
                continue
            line = replaced
        out.append(line)
    return "".join(out), hits


def append_line(text: str, line: str) -> str:
    """*text* with *line* added as a new last line."""
    if text and not text.endswith("\n"):
        text += "\n"
    return text + line + "\n"


class WatchedFile(Generic[T]):
    """The parsed content of a file, re-parsed whenever the file changes.

    A change is any move of inode, size, mtime or ctime: an atomic rename
    gives a new inode, an in-place edit a new mtime.  A missing file parses
    as empty text (no users yet is a normal state of a new server).
    """

    def __init__(self, path: str, parse: Callable[[str, str], T]) -> None:
        self.path = path
        self._parse = parse
        self._identity: object = object()
        self._value: T = parse("", path)

    def get(self) -> T:
        """The current content; costs one ``stat`` when nothing changed."""
        try:
            st = os.stat(self.path)
            identity: object = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        except FileNotFoundError:
            identity = None
        except OSError as e:
            log.error("cannot stat {path}: {error}; keeping the last version",
                      path=self.path, error=e.strerror)
            return self._value
        if identity != self._identity:
            self._identity = identity
            try:
                self._value = self._parse(read_text(self.path), self.path)
            except OSError as e:
                log.error("cannot read {path}: {error}; keeping the last version",
                          path=self.path, error=e.strerror)
        return self._value

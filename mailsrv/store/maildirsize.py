"""Maildir++ quota accounting: the ``maildirsize`` file at the root of a user's Maildir.

The format is Maildir++'s, as Courier and Dovecot's ``maildir`` quota
backend read and write it::

    1048576S,1000C        the limits: bytes (S) and messages (C); 0 or absent = none
    14862 12              the usage found by the last recalculation: bytes, messages
    3011 1                one line per change since: a delivery ...
    -3011 -1              ... an expunge

The usage is the sum of the lines.  Sizes are the message files' sizes on
disk (the ``S=`` of their names, else ``stat``), over ``new/`` and
``cur/`` of every folder.  A change is one ``O_APPEND`` write of one line,
so several writers (mailsrv processes, Dovecot, a Courier delivery agent)
append without a lock; a recalculation replaces the file atomically.  A
change appended to the old file while another writer replaces it is lost,
as Maildir++ accepts: the next recalculation finds it.

The file is recalculated, as Dovecot does, when it is missing or broken,
when it has grown to :data:`RECALCULATE_AT` bytes, when the limits it
holds are not the ones asked for, and when it says the user is over quota
but its figures are not one fresh recalculation (more than one usage line,
or older than :data:`STALE_AFTER`).

Who sets the limits: the first line is kept as it is unless a caller
passes :class:`Limits` (a Maildir++ file is where a Courier or Dovecot
installation without configured limits keeps them).  Only changes mailsrv
makes itself are recorded here; Dovecot records its own, and changes of
other programs (a mutt expunging directly) show at the next recalculation.

Everything here blocks (directory walks, writes); the store calls it in
its executor.  :meth:`mailsrv.store.UserStore.quota_usage` is the entry
point for the IMAP QUOTA extension.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass

from twisted.logger import Logger

from mailsrv.store import maildir
from mailsrv.store.files import read_text, replace_file
from mailsrv.store.names import folder_dir, folder_names

FILENAME = "maildirsize"
#: Maildir++: a file this big is recalculated instead of growing further.
RECALCULATE_AT = 5120
#: Maildir++: over-quota figures older than this (seconds) are recalculated before they are believed.
STALE_AFTER = 15 * 60
log = Logger()


@dataclass(frozen=True)
class Limits:
    """A user's quota limits; 0 means no limit."""

    storage: int = 0
    messages: int = 0

    def line(self) -> str:
        """The first line of the file, written as Dovecot does (``0S`` for no limits at all)."""
        parts = [f"{self.storage}S"] if self.storage or not self.messages else []
        return ",".join(parts + ([f"{self.messages}C"] if self.messages else []))

    @classmethod
    def parse(cls, line: str) -> "Limits":
        """The limits of a first line; parts that do not parse count as no limit."""
        found = {"S": 0, "C": 0}
        for part in line.split(","):
            part = part.strip()
            if part[:-1].isdigit() and part[-1:] in found:
                found[part[-1]] = int(part[:-1])
        return cls(found["S"], found["C"])

    @property
    def unlimited(self) -> bool:
        """No limit at all: nothing to check, nothing to report."""
        return not (self.storage or self.messages)

    def admits(self, storage: int, messages: int = 1) -> bool:
        """Whether *storage* octets in *messages* messages fit in an empty Maildir: a message too big for any state."""
        return Usage(0, 0, self).admits(storage, messages)


@dataclass(frozen=True)
class Usage:
    """What a user's Maildir holds against its limits."""

    storage: int
    messages: int
    limits: Limits

    @property
    def over(self) -> bool:
        """Whether a limit is exceeded."""
        storage, messages = self.limits.storage, self.limits.messages
        return bool((storage and self.storage > storage) or (messages and self.messages > messages))

    def admits(self, storage: int, messages: int = 1) -> bool:
        """Whether adding *storage* octets in *messages* messages keeps every limit."""
        limit, count = self.limits.storage, self.limits.messages
        return not ((limit and self.storage + storage > limit) or (count and self.messages + messages > count))


def _parse(text: str) -> tuple[Usage, int] | None:
    """The usage a file's text adds up to and its number of usage lines; None when it is broken."""
    # A line without its LF is being appended right now: it is not there yet.
    text = text[:-1] if text.endswith("\n") else text.rpartition("\n")[0]
    lines = text.split("\n") if text else []
    if not lines:
        return None
    storage = messages = 0
    for line in lines[1:]:
        fields = line.split()
        try:
            storage, messages = storage + int(fields[0]), messages + int(fields[1])
        except (IndexError, ValueError):
            return None
    if storage < 0 or messages < 0 or len(lines) < 2:
        return None
    return Usage(storage, messages, Limits.parse(lines[0])), len(lines) - 1


def _counted(root: str) -> tuple[int, int]:
    """Bytes and messages in every folder of the Maildir++ at *root*, walked now."""
    storage = messages = 0
    for name in folder_names(root):
        for sub in ("new", "cur"):
            directory = os.path.join(folder_dir(root, name), sub)
            with contextlib.suppress(FileNotFoundError), os.scandir(directory) as entries:
                for entry in entries:
                    if entry.name.startswith("."):
                        continue
                    size = maildir.sizes_from_key(entry.name)[0]
                    if size is None:
                        try:
                            size = entry.stat().st_size
                        except FileNotFoundError:  # expunged meanwhile
                            continue
                    storage, messages = storage + size, messages + 1
    return storage, messages


def recalculate(root: str, limits: Limits | None = None) -> Usage:
    """Walk the Maildir and write the file anew (with *limits*, else the ones it held)."""
    path = os.path.join(root, FILENAME)
    if limits is None:
        limits = Limits.parse(read_text(path).partition("\n")[0])
    maildir.ensure_maildir(root)  # a user no mail reached yet has none
    storage, messages = _counted(root)
    replace_file(path, f"{limits.line()}\n{storage} {messages}\n".encode("ascii"))
    return Usage(storage, messages, limits)


def usage(root: str, limits: Limits | None = None, now: float | None = None) -> Usage:
    """The user's usage, recalculated first where Maildir++ says the file cannot be trusted."""
    path = os.path.join(root, FILENAME)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return recalculate(root, limits)
    parsed = None if st.st_size >= RECALCULATE_AT else _parse(read_text(path))
    if parsed is None or (limits is not None and parsed[0].limits != limits):
        return recalculate(root, limits)
    found, lines = parsed
    if found.over and (lines > 1 or st.st_mtime < (time.time() if now is None else now) - STALE_AFTER):
        return recalculate(root, limits)
    return found


def record(root: str, storage: int, messages: int) -> None:
    """Add a change (negative for an expunge) to the user's file, if the user has one.

    A user without the file gets one at the first :func:`usage`, which
    counts everything anyway; a file grown too big is recalculated now.
    The mail itself is safe whatever happens here, so a failure is logged,
    not raised: the next recalculation corrects the figures.
    """
    if not (storage or messages):
        return
    path = os.path.join(root, FILENAME)
    try:
        if os.stat(path).st_size >= RECALCULATE_AT:
            recalculate(root)
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, f"{storage} {messages}\n".encode("ascii"))
        finally:
            os.close(fd)
    except FileNotFoundError:
        return
    except OSError as e:
        log.warn("cannot update {path}: {error}", path=path, error=e.strerror)


def record_added(root: str, rels: "list[str]") -> None:
    """Record message files mailsrv just put into the user's folders (their names carry ``S=``)."""
    record(root, sum(maildir.sizes_from_key(os.path.basename(rel))[0] or 0 for rel in rels), len(rels))


def recount(root: str) -> None:
    """Recalculate the user's file, if there is one, after a change too big to record (a folder deleted)."""
    if os.path.exists(os.path.join(root, FILENAME)):
        recalculate(root)


def unlink_counted(path: str) -> int:
    """Remove a message file; the size it counted for (the ``S=`` of its name, else its ``stat``)."""
    size = maildir.sizes_from_key(os.path.basename(path))[0]
    if size is None:
        size = os.stat(path).st_size
    os.unlink(path)
    return size

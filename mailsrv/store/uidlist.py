"""Persistent UIDs: the ``mailsrv-uidlist`` file of one folder, written by group commit.

Format (plain lines, like Dovecot's ``dovecot-uidlist``)::

    1 V<uidvalidity> N<uidnext> M<highestmodseq>
    <uid> <maildir key>
    ...

Header fields are letters with a number; readers skip fields they do not
know, so adding one keeps older readers working.  ``M`` is the folder's
highest mod-sequence (RFC 7162), written whenever the header is: new UIDs
are *appended*, so between rewrites the value on disk may lag behind the
one in memory (see :attr:`UIDList.highest_modseq`).

New UIDs are appended and ``fdatasync``ed before anyone is told of them (a
UID once shown to a client is never given to another message, RFC 3501
2.3.1.1); expunges rewrite the file atomically.  An ``flock`` serialises
writers between processes and nodes sharing the store, and the file is
re-read under it whenever its :class:`~mailsrv.store.files.FileStamp` shows
that someone else wrote it.

That work blocks, so it runs in the store's executor, and it is a *group
commit*: one job at a time, taking every key queued since the last one
started.  Under SMTP load with IMAP sessions watching the folder, the
deliveries that arrive while one ``fdatasync`` runs share the next.  The
job only reads the reactor's state (which nothing changes while a job
runs) and returns what it did; :meth:`UIDList._apply` updates the state on
the reactor thread.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.store.coalesce import Coalescing
from mailsrv.store.files import FileStamp, locked, read_text, replace_file
from mailsrv.workers import Executor

#: Seconds a delivery's UID commit waits for more deliveries to share it.
#: Short against IDLE's announcement; long against one ``fdatasync``.
BATCH_DELAY = 0.02

FILENAME = "mailsrv-uidlist"
log = Logger()
_last_validity = 0


def _new_uidvalidity() -> int:
    """A UIDVALIDITY greater than any handed out before by this process."""
    global _last_validity
    _last_validity = max(int(time.time()), _last_validity + 1)
    return _last_validity


@dataclass(frozen=True)
class Header:
    """The first line of the file."""

    uidvalidity: int = 0
    uidnext: int = 1
    highest_modseq: int = 0

    def line(self) -> str:
        return f"1 V{self.uidvalidity} N{self.uidnext} M{self.highest_modseq}\n"


def parse(text: str, path: str) -> tuple[Header, dict[str, int]]:
    """The header and the key -> UID map of a uidlist file's text."""
    lines = text.splitlines()
    fields = {f[:1]: int(f[1:]) for f in (lines[0].split()[1:] if lines else ()) if f[1:].isdigit()}
    by_key: dict[str, int] = {}
    uidnext = fields.get("N", 1)
    for number, line in enumerate(lines[1:], 2):
        uid, _, key = line.partition(" ")
        if not uid.isdigit() or not key:
            log.warn("{path}:{line}: unreadable UID entry skipped", path=path, line=number)
            continue
        by_key[key] = int(uid)
        uidnext = max(uidnext, int(uid) + 1)
    return Header(fields.get("V", 0), uidnext, fields.get("M", 0)), by_key


@dataclass(frozen=True)
class Commit:
    """What one job found and wrote, for the reactor to apply."""

    header: Header
    #: The whole map (before *assigned*), when the job re-read or rewrote the file; else None.
    by_key: dict[str, int] | None
    #: Keys given a UID by this job.
    assigned: dict[str, int]
    stamp: FileStamp | None


def commit(
    path: str, known: FileStamp | None, header: Header, by_key: Mapping[str, int],
    adds: list[str], forgets: frozenset[str],
) -> Commit:
    """Under the lock: catch up with other writers, assign UIDs to *adds*, drop *forgets* (blocking).

    *header*/*by_key* are what the caller knows, valid while the file still
    has stamp *known*.  A file that vanished is written again from them
    (same UIDVALIDITY, so no client's UIDs break); a new folder gets a new
    UIDVALIDITY.
    """
    with locked(path):
        stamp = FileStamp.of(path)
        replaced = None
        if stamp is not None and stamp != known:
            theirs, replaced = parse(read_text(path), path)
            header = Header(theirs.uidvalidity, theirs.uidnext, max(theirs.highest_modseq, header.highest_modseq))
            by_key = replaced
        assigned: dict[str, int] = {}
        uidnext = header.uidnext
        for key in adds:
            if key not in by_key and key not in assigned:
                assigned[key] = uidnext
                uidnext += 1
        gone = forgets.intersection(by_key)
        rewrite = stamp is None or not header.uidvalidity or bool(gone)
        header = Header(header.uidvalidity or _new_uidvalidity(), uidnext, header.highest_modseq)
        if rewrite:
            replaced = {k: u for k, u in by_key.items() if k not in gone}
            replaced.update(assigned)
            entries = sorted(replaced.items(), key=lambda kv: kv[1])
            replace_file(path, (header.line() + "".join(f"{u} {k}\n" for k, u in entries)).encode("utf-8"))
        elif assigned:
            _append(path, "".join(f"{u} {k}\n" for k, u in assigned.items()))
        return Commit(header, replaced, assigned, FileStamp.of(path))


def _append(path: str, text: str) -> None:
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


class UIDList:
    """UID <-> key map of one folder, kept in step with its file.

    Every attribute is read and written on the reactor thread only.
    """

    def __init__(self, folder_path: str, executor: Executor, clock: IReactorTime | None = None) -> None:
        self.path = os.path.join(folder_path, FILENAME)
        self._executor = executor
        self.header = Header()
        self.by_key: dict[str, int] = {}
        self.stamp: FileStamp | None = None
        self._adds: dict[str, None] = {}  # ordered: UIDs follow arrival order
        self._forgets: set[str] = set()
        self._jobs = Coalescing(self._run, clock, BATCH_DELAY)

    @property
    def uidvalidity(self) -> int:
        return self.header.uidvalidity

    @property
    def uidnext(self) -> int:
        return self.header.uidnext

    @property
    def highest_modseq(self) -> int:
        """The folder's MODSEQ counter (RFC 7162 3.1.1); a lower bound after a restart.

        CONDSTORE must make every step durable before a client sees it; today
        nothing shows it, and it is written with the header.
        """
        return self.header.highest_modseq

    def next_modseq(self) -> int:
        """Step the counter for one change (an add, a flag change, an expunge) and return it."""
        h = self.header
        self.header = Header(h.uidvalidity, h.uidnext, h.highest_modseq + 1)
        return self.header.highest_modseq

    def refresh(self) -> "Deferred[None]":
        """Load the file (creating it for a new folder) or pick up other writers' changes."""
        return self._jobs.run()

    def assign(self, keys: Iterable[str], soon: bool = False) -> "Deferred[None]":
        """Give UIDs to *keys* durably; afterwards :attr:`by_key` has them all.

        With *soon* the commit may wait :data:`BATCH_DELAY` for more keys.
        """
        self._adds.update(dict.fromkeys(keys))
        return self._jobs.run(soon)

    def forget(self, keys: Iterable[str]) -> "Deferred[None]":
        """Drop expunged keys; UIDNEXT stays, so their UIDs are never reused."""
        self._forgets.update(keys)
        return self._jobs.run()

    def _run(self) -> "Deferred[None]":
        adds, self._adds = list(self._adds), {}
        forgets, self._forgets = frozenset(self._forgets), set()

        def failed(failure: Failure) -> Failure:
            # Back in the queue: the next commit, whoever asks for it, retries them.
            self._adds = dict.fromkeys(adds) | self._adds
            self._forgets |= forgets
            return failure

        d = self._executor.run(commit, self.path, self.stamp, self.header, self.by_key, adds, forgets)
        return d.addCallbacks(self._apply, failed)

    def _apply(self, done: Commit) -> None:
        if done.by_key is not None:
            self.by_key = done.by_key
        self.by_key.update(done.assigned)
        modseq = max(done.header.highest_modseq, self.header.highest_modseq)  # steps taken meanwhile
        self.header = Header(done.header.uidvalidity, done.header.uidnext, modseq)
        self.stamp = done.stamp

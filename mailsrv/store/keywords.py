"""IMAP keywords of one folder, stored as Dovecot's ``dovecot-keywords``.

Maildir has 26 lowercase info letters for keywords; the file maps each
letter's index to the keyword (``0 $Junk`` means ``a`` is ``$Junk``), so
Dovecot reading our store sees the same keywords.  A letter, once given,
keeps its keyword: message file names carry the letters.  A writer holds
our ``flock`` and then Dovecot's dot-lock ``dovecot-keywords.lock``
(:mod:`.dotlock`), so Dovecot never gives a letter away at the same time.

:func:`read` and :func:`add` touch the disk and run in the store's
executor; :class:`Keywords` is a folder's table on the reactor thread, fed
only with what those return, one job at a time (so a table read earlier can
never overwrite one read later).
"""

from __future__ import annotations

import os
import string
from dataclasses import dataclass, field
from typing import Iterable

from twisted.internet.defer import Deferred, DeferredLock, succeed

from mailsrv.store.dotlock import dotlocked
from mailsrv.store.errors import KeywordLimit
from mailsrv.store.files import FileStamp, locked, read_text, replace_file
from mailsrv.workers import Executor

FILENAME = "dovecot-keywords"
#: Our own lock name: Dovecot takes ``dovecot-keywords.lock`` as a dot-lock,
#: and an flock file of that name left in place would look like a held one.
LOCK_NAME = "mailsrv-keywords"
LETTERS = string.ascii_lowercase
#: Dovecot's stale timeout for the dot-lock of this file (seconds).
STALE_AFTER = 120


@dataclass(frozen=True)
class Table:
    """The keyword -> letter map as read from the file, with the file's stamp."""

    letter_of: dict[str, str] = field(default_factory=dict)
    stamp: FileStamp | None = None


def _parse(text: str) -> dict[str, str]:
    letter_of: dict[str, str] = {}
    for line in text.splitlines():
        index, _, keyword = line.partition(" ")
        if index.isdigit() and int(index) < len(LETTERS) and keyword:
            letter_of[keyword] = LETTERS[int(index)]
    return letter_of


def read(folder_path: str, known: FileStamp | None) -> Table | None:
    """The folder's table, or ``None`` when the file still has stamp *known* (blocking)."""
    path = os.path.join(folder_path, FILENAME)
    stamp = FileStamp.of(path)
    if stamp is not None and stamp == known:
        return None
    return Table(_parse(read_text(path)), stamp)


def add(folder_path: str, keywords: Iterable[str]) -> Table:
    """Give every keyword a letter, persisting new ones under the lock (blocking).

    Raises :class:`KeywordLimit`, and writes nothing, rather than silently
    dropping a keyword the client would be told was stored (RFC 5530 LIMIT).
    """
    path = os.path.join(folder_path, FILENAME)
    with locked(os.path.join(folder_path, LOCK_NAME)), dotlocked(path, STALE_AFTER):
        letter_of = _parse(read_text(path))
        missing = sorted(k for k in set(keywords) if k not in letter_of)
        if missing:
            used = set(letter_of.values())
            free = [c for c in LETTERS if c not in used]
            if len(missing) > len(free):
                raise KeywordLimit(f"at most {len(LETTERS)} keywords per folder")
            letter_of.update(zip(missing, free))
            lines = sorted((LETTERS.index(letter), kw) for kw, letter in letter_of.items())
            replace_file(path, "".join(f"{i} {kw}\n" for i, kw in lines).encode("utf-8"))
        return Table(letter_of, FileStamp.of(path))


class Keywords:
    """A folder's keyword table, as the reactor thread knows it."""

    def __init__(self, folder_path: str, executor: Executor) -> None:
        self._folder_path = folder_path
        self._executor = executor
        self._jobs = DeferredLock()
        self.letter_of: dict[str, str] = {}
        self.keyword_of: dict[str, str] = {}
        self.stamp: FileStamp | None = None

    def refresh(self) -> "Deferred[None]":
        """Re-read the file if another session or node changed it."""
        return self._jobs.run(lambda: self._executor.run(read, self._folder_path, self.stamp).addCallback(self._apply))

    def ensure(self, keywords: Iterable[str]) -> "Deferred[None]":
        """Letters for *keywords*; fails with :class:`KeywordLimit` when they do not all fit."""
        missing = [k for k in keywords if k not in self.letter_of]
        if not missing:
            return succeed(None)
        return self._jobs.run(lambda: self._executor.run(add, self._folder_path, missing).addCallback(self._apply))

    def _apply(self, table: Table | None) -> None:
        if table is not None:
            self.letter_of = table.letter_of
            self.keyword_of = {v: k for k, v in table.letter_of.items()}
            self.stamp = table.stamp

    def knows_letters(self, info: str) -> bool:
        """Whether every keyword letter in Maildir *info* is in the table."""
        return all(c in self.keyword_of for c in info if c in LETTERS)

    def can_add(self) -> bool:
        """Whether a new keyword still gets a letter (PERMANENTFLAGS ``\\*``)."""
        return len(self.letter_of) < len(LETTERS)

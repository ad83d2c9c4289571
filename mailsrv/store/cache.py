"""The per-user cache of what is derived from message content: ``mailsrv-cache.sqlite``.

A Maildir file's content never changes under its unique key, and COPY's
hard links keep the key, so one row per key serves every folder of the
user.  The store does not know what the columns mean (the IMAP layer fills
and reads them: :mod:`mailsrv.imap.msgcache`); it keeps them safe to share:

* It is a cache.  Deleting the file loses nothing; one SQLite cannot read
  (``database disk image is malformed``) is moved aside as
  ``mailsrv-cache.sqlite.corrupt-<time>`` and a new one is started.  UIDs
  and flags never come from here: ``dovecot-uidlist`` and the file names
  stay their source of truth.
* Several processes may share it: WAL journal, a busy timeout, short
  transactions, ``INSERT OR IGNORE`` for rows another process may have
  written meanwhile (their content is the same, since the key's is).
* Every method blocks: call it from a pool thread, never the reactor.  A
  call takes an idle connection to the file or opens one, and hands it back
  when it ends (:mod:`.idledb`: a few for the whole process, since
  connections kept per thread and per user would hold three descriptors
  each for every user ever served).
* What a process remembers of the rows (:meth:`MessageCache.lacking`:
  which keys have their header fields, so a header SEARCH reads no row to
  learn it) holds while the file's ``meta.epoch`` does: only :meth:`prune`
  removes rows, and it gives the file a new epoch, as a new file has.
* Any other SQLite failure (a full disk, a read-only directory, a lock held
  past the timeout) is logged and answered as "not cached": callers fall
  back to reading the message, so the cache can slow IMAP down but never
  break it.

Rows of keys no folder holds any more are pruned lazily (:meth:`prune`,
given every key the user's folders hold), not at expunge: COPY's hard links
let a key live on in another folder, and only a walk of every folder can
tell, which is too much work for each EXPUNGE.

The full-text table ``texts`` is FTS5 with the trigram tokenizer
(case-sensitive, over text the caller already case-folded), so a needle of
three characters or more narrows the search to the rows holding all of
its trigrams (:func:`trigrams`); the stored text lets the caller confirm
the substring, and serves shorter needles by a scan that never opens a
message file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from operator import itemgetter
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from twisted.logger import Logger

from mailsrv.store import idledb
from mailsrv.store.bulk import collector_paused

log = Logger()
T = TypeVar("T")

FILENAME = "mailsrv-cache.sqlite"
#: A schema change bumps this; a file with another version is started anew (it is a cache).
VERSION = 2
#: Columns a row may have, each NULL until someone needs it and computes it.
#: ``h_present`` has bit *n* set when the message has the header field of
#: ``h_*`` column *n* (its own column is then its decoded text).
HEADER_FIELD_COLUMNS = ("h_from", "h_to", "h_cc", "h_bcc", "h_subject")
#: The keys SORT compares, a column each, so that a SORT reads one small value per message.
SORT_KEY_COLUMNS = ("s_from", "s_to", "s_cc", "s_subject", "s_sent")
COLUMNS = ("envelope", "fields", "h_present") + HEADER_FIELD_COLUMNS + ("bodystructure", "body") + SORT_KEY_COLUMNS
#: How long a statement waits for another process's write lock.
BUSY_TIMEOUT_MS = 5000
#: Page cache per connection (one per pool thread), KiB: the OS's file cache does the rest.
PAGE_CACHE_KIB = 512
#: Rows per transaction when writing, so other processes are never held up for long.
BATCH = 200
#: Keys per ``IN (...)`` list (SQLite allows 999 parameters in old builds).
_IN_CHUNK = 500
#: Above this many keys asked for, one scan of the table beats index lookups.
_SCAN_ABOVE = 5000

#: A value no other file or prune has had: what :meth:`MessageCache.lacking` remembers is only as good as it.
_NEW_EPOCH = "lower(hex(randomblob(16)))"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    {", ".join(f"{name} BLOB" for name in COLUMNS)}
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS texts USING fts5(head, body, tokenize = 'trigram case_sensitive 1', detail = column);
CREATE TABLE IF NOT EXISTS meta (epoch TEXT NOT NULL);
INSERT INTO meta SELECT {_NEW_EPOCH} WHERE NOT EXISTS (SELECT 1 FROM meta);
PRAGMA user_version = {VERSION};
"""


def _add_columns(db: sqlite3.Connection) -> None:
    """Add the columns a file made by an earlier release lacks (NULL in every row: not made yet).

    Columns are only ever added, and each is NULL until made, so a file
    stays shared with a process of that release: it ignores them.
    """
    have = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
    for name in COLUMNS:
        if name not in have:
            try:
                db.execute(f"ALTER TABLE entries ADD COLUMN {name} BLOB")
            except sqlite3.OperationalError as e:
                if "duplicate column" not in str(e):  # not another process adding it first
                    raise


def _aligned(keys: Sequence[str], rows: list[tuple], width: int) -> list[list]:
    """The *width* value columns of *rows* (``(key, values...)``), reordered to *keys*; None for a key without a row."""
    if not keys:
        return [[] for _ in range(width)]
    if not rows:
        return [[None] * len(keys) for _ in range(width)]
    found = list(zip(*rows))
    where = dict(zip(found[0], range(len(rows))))
    absent = len(rows)  # the None appended to each column
    pick = itemgetter(*[where.get(key, absent) for key in keys])
    if len(keys) == 1:
        return [[pick(column + (None,))] for column in found[1:]]
    return [list(pick(column + (None,))) for column in found[1:]]


def _select(db: sqlite3.Connection, keys: Sequence[str], wanted: str) -> Iterable[tuple]:
    """Rows ``(key, <wanted columns>)`` of *keys*; past :data:`_SCAN_ABOVE` keys, one scan of every row."""
    if len(keys) > _SCAN_ABOVE:
        return db.execute(f"SELECT key{wanted} FROM entries")
    return (row for chunk in _chunks(keys)
            for row in db.execute(f"SELECT key{wanted} FROM entries WHERE key IN ({_marks(len(chunk))})", chunk))


def _chunks(items: Sequence[str], size: int = _IN_CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _marks(count: int) -> str:
    return ",".join("?" * count)


def trigrams(needle: str) -> str:
    """An FTS5 query for the rows holding every trigram of *needle* (3 characters or more).

    Each trigram is a quoted string (FTS5 quotes ``"`` by doubling it).  With
    ``detail = column`` FTS5 keeps no positions (half the size and the
    time to fill), so the rows found may hold the trigrams apart: a
    superset, which the caller's confirmation narrows.
    """
    grams = dict.fromkeys(needle[i : i + 3] for i in range(len(needle) - 2))
    return "(" + " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams) + ")"


class MessageCache:
    """The cache of one user's Maildir (the file in its root, made by the first call)."""

    def __init__(self, root: str) -> None:
        self.path = os.path.join(root, FILENAME)
        self._lock = threading.Lock()
        self._generation = 0  # bumped when a corrupt file is moved aside
        # Column -> keys whose rows have it, as of the file's epoch (see :meth:`lacking`).
        self._epoch: str | None = None
        self._known: dict[str, set[str]] = {}

    # -- connections ---------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
        try:
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # a cache: losing the last commits on power loss is fine
            db.execute(f"PRAGMA cache_size = -{PAGE_CACHE_KIB}")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version != VERSION:
                if version:  # another schema: it is a cache, start it anew
                    db.executescript("DROP TABLE IF EXISTS entries; DROP TABLE IF EXISTS docs; DROP TABLE IF EXISTS texts;"
                                     " DROP TABLE IF EXISTS meta;")
                db.executescript(_SCHEMA)
            _add_columns(db)
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, generation: int) -> None:
        """The file cannot be read: keep it for a look, start a new one (once, whichever thread saw it)."""
        with self._lock:
            if generation != self._generation:
                return  # another thread did it already
            aside = f"{self.path}.corrupt-{int(time.time())}"
            for suffix in ("", "-wal", "-shm"):
                try:
                    os.replace(self.path + suffix, aside + suffix)
                except FileNotFoundError:
                    pass
            self._generation += 1
            self._epoch, self._known = None, {}
        log.warn("{path}: unreadable message cache moved aside to {aside}; it is rebuilt", path=self.path, aside=aside)

    def _run(self, job: Callable[[sqlite3.Connection], T], default: T) -> T:
        """``job(connection)``; a corrupt file is moved aside and the job tried once more; *default* on failure."""
        for attempt in (1, 2):
            generation = self._generation
            try:
                db, token = idledb.take(self.path, generation, self._open)
                try:
                    result = job(db)
                except BaseException:
                    db.close()
                    raise
                idledb.give_back(db, token)
                return result
            except sqlite3.OperationalError as e:  # locked past the timeout, disk full, read-only...
                log.warn("{path}: message cache not used: {error}", path=self.path, error=str(e))
                return default
            except sqlite3.DatabaseError as e:  # not a database, malformed
                if attempt == 2:
                    log.warn("{path}: message cache not used: {error}", path=self.path, error=str(e))
                    return default
                self._move_aside(generation)
        return default

    # -- entries -------------------------------------------------------------

    def get(self, keys: Sequence[str], columns: Sequence[str] = ()) -> dict[str, tuple]:
        """``key -> (column values...)`` for the *keys* that have a row; values may be None."""
        wanted = "".join(", " + c for c in columns)
        assert all(c in COLUMNS for c in columns)

        def job(db: sqlite3.Connection) -> dict[str, tuple]:
            keep = set(keys)
            return {row[0]: row[1:] for row in _select(db, keys, wanted) if row[0] in keep}

        return self._run(job, {})

    def columns(self, keys: Sequence[str], columns: Sequence[str]) -> list[list] | None:
        """Per column, its value for each of *keys* in order (None where a key has no row); None on failure.

        SORT compares a column or two of every message of a folder: a list per
        column, made in C from the rows, costs a fraction of a tuple per key in
        a dict (:meth:`get`), which took a third of a 100,000-message SORT.
        """
        wanted = "".join(", " + c for c in columns)
        assert all(c in COLUMNS for c in columns)

        def job(db: sqlite3.Connection) -> list[list]:
            with collector_paused():  # a tuple per row, and none holds a cycle (:mod:`.bulk`)
                return _aligned(keys, list(_select(db, keys, wanted)), len(columns))

        return self._run(job, None)

    def put(self, rows: dict[str, dict[str, object]]) -> bool:
        """Store column values per key; values already stored (by anyone) are kept.  Whether all were stored."""

        def job(db: sqlite3.Connection) -> bool:
            items = list(rows.items())
            for start in range(0, len(items), BATCH):
                batch = items[start : start + BATCH]
                with _transaction(db):
                    for key, values in batch:
                        names = [c for c in values if c in COLUMNS]
                        db.execute("INSERT OR IGNORE INTO entries (key) VALUES (?)", (key,))
                        if not names:
                            continue
                        sets = ", ".join(f"{c} = coalesce({c}, ?)" for c in names)
                        db.execute(f"UPDATE entries SET {sets} WHERE key = ?", [values[c] for c in names] + [key])
                    epoch = _epoch(db)  # read under the write lock: no prune between the rows and it
                self._note(epoch, batch)
            return True

        return self._run(job, False)

    def _note(self, epoch: str, rows: Sequence[tuple[str, dict[str, object]]]) -> None:
        """Remember the columns just stored, for the columns :meth:`lacking` is asked about."""
        with self._lock:
            if epoch != self._epoch:
                return  # pruned since we last looked: lacking() starts over
            for column, known in self._known.items():
                known.update(key for key, values in rows if values.get(column) is not None)

    def lacking(self, column: str, keys: Sequence[str]) -> list[int] | None:
        """The indexes in *keys* of those whose row lacks *column* (or that have none); None if the cache failed.

        What was found is remembered, so a header SEARCH of 100,000
        messages reads no row to learn it next time.  It stays true as long
        as the file's epoch does: rows are removed only by :meth:`prune`,
        which gives the file a new epoch (in any process), and a new file
        has a new one.
        """
        assert column in COLUMNS

        def job(db: sqlite3.Connection) -> list[int]:
            epoch = _epoch(db)
            with self._lock:
                if epoch != self._epoch:
                    self._epoch, self._known = epoch, {}
                known = self._known.setdefault(column, set())
                unknown = [key for key in keys if key not in known]
            have: set[str] = set()
            if len(unknown) > _SCAN_ABOVE:
                rows = db.execute(f"SELECT key FROM entries WHERE {column} IS NOT NULL")
                have.update(row[0] for row in rows)
            else:
                for chunk in _chunks(unknown):
                    rows = db.execute(
                        f"SELECT key FROM entries WHERE {column} IS NOT NULL AND key IN ({_marks(len(chunk))})", chunk)
                    have.update(row[0] for row in rows)
            with self._lock:
                if epoch == self._epoch:
                    known.update(key for key in unknown if key in have)
            return [index for index, key in enumerate(keys) if key not in known and key not in have]

        return self._run(job, None)

    def matching(self, column: str, needle: bytes) -> set[str] | None:
        """Keys whose header field *column* (of :data:`HEADER_FIELD_COLUMNS`) is present and holds *needle*.

        None if the cache failed.
        """
        bit = 1 << HEADER_FIELD_COLUMNS.index(column)

        def job(db: sqlite3.Connection) -> set[str]:
            query = f"SELECT key FROM entries WHERE h_present & {bit} AND instr({column}, ?) > 0"
            return {row[0] for row in db.execute(query, (needle,))}

        return self._run(job, None)

    # -- full text -----------------------------------------------------------

    def unindexed(self, keys: Sequence[str]) -> list[str] | None:
        """The *keys* whose texts are not in the full-text table yet, in order; None if the cache failed."""

        def job(db: sqlite3.Connection) -> list[str]:
            if len(keys) > _SCAN_ABOVE:
                done = {row[0] for row in db.execute("SELECT key FROM docs")}
            else:
                done = set()
                for chunk in _chunks(keys):
                    done.update(row[0] for row in db.execute(
                        f"SELECT key FROM docs WHERE key IN ({_marks(len(chunk))})", chunk))
            return [key for key in keys if key not in done]

        return self._run(job, None)

    def index(self, batches: Iterable[Sequence[tuple[str, str, str]]]) -> set[str]:
        """Add batches of ``(key, head, body)`` texts (already case-folded) to the full-text table.

        A transaction per batch, all over one connection: a connection per
        batch, with the checkpoint its close makes, took a fifth of the time
        of indexing a folder.  *batches* may be a generator doing slow work:
        no transaction is open while it runs.  Returns the keys stored (those
        of the batches before a failure).
        """
        stored: set[str] = set()

        def job(db: sqlite3.Connection) -> set[str]:
            stored.clear()  # a second try starts a new file: what the first stored is gone
            for texts in batches:
                with _transaction(db):
                    for key, head, body in texts:
                        cursor = db.execute("INSERT OR IGNORE INTO docs (key) VALUES (?)", (key,))
                        if cursor.rowcount:
                            db.execute("INSERT INTO texts (rowid, head, body) VALUES (?, ?, ?)",
                                       (cursor.lastrowid, head, body))
                stored.update(key for key, _, _ in texts)
            return stored

        self._run(job, stored)
        return stored

    def texts_matching(self, columns: str, needle: str, confirm: Callable[[str, str], bool]) -> set[str] | None:
        """Keys of the indexed messages whose ``(head, body)`` texts *confirm* accepts.

        Only rows that may hold *needle* in *columns* (``"body"`` or ``"head
        body"``) are read: three characters or more go through the trigram
        index (:func:`trigrams`); a shorter needle reads every row, a row at
        a time.  None if the cache failed.
        """
        assert columns in ("body", "head body")

        def job(db: sqlite3.Connection) -> set[str]:
            select = "SELECT d.key, t.head, t.body FROM texts t JOIN docs d ON d.id = t.rowid"
            if len(needle) < 3:
                rows = db.execute(select)
            else:
                rows = db.execute(select + " WHERE texts MATCH ?", ("{%s} : %s" % (columns, trigrams(needle)),))
            return {key for key, head, body in rows if confirm(head, body)}

        return self._run(job, None)

    # -- pruning -------------------------------------------------------------

    def prune(self, live: set[str]) -> int:
        """Forget every key not in *live* (all keys the user's folders hold); how many went."""

        def job(db: sqlite3.Connection) -> int:
            dead = [row[0] for row in db.execute("SELECT key FROM entries") if row[0] not in live]
            dead_docs = [row for row in db.execute("SELECT id, key FROM docs") if row[1] not in live]
            for start in range(0, max(len(dead), len(dead_docs)), BATCH):
                with _transaction(db):
                    # First, so that no process trusts what it remembers of the rows going.
                    db.execute(f"UPDATE meta SET epoch = {_NEW_EPOCH}")
                    for key in dead[start : start + BATCH]:
                        db.execute("DELETE FROM entries WHERE key = ?", (key,))
                    for doc, _ in dead_docs[start : start + BATCH]:
                        db.execute("DELETE FROM texts WHERE rowid = ?", (doc,))
                        db.execute("DELETE FROM docs WHERE id = ?", (doc,))
            return len(set(dead) | {key for _, key in dead_docs})

        return self._run(job, 0)


def _epoch(db: sqlite3.Connection) -> str:
    return db.execute("SELECT epoch FROM meta").fetchone()[0]


class _transaction:
    """``BEGIN IMMEDIATE`` .. ``COMMIT`` (rolled back on error): the write lock taken up front, held briefly."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")

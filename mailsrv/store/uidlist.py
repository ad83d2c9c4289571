"""Persistent UIDs: Dovecot's ``dovecot-uidlist`` of one folder, written by group commit.

The file is Dovecot's (version 3), so Dovecot and mailsrv agree on every
UID and on UIDVALIDITY and either can take over a Maildir the other kept::

    3 V<uidvalidity> N<uidnext> G<mailbox guid> M<highest modseq>
    <uid> [<field> ...] :<maildir key>
    ...

Header and entry fields are a letter and a value; fields we do not use
(an entry's ``G`` GUID, ``W`` and ``S`` sizes, POP3 ``P``/``O``, or header
fields of other writers) are kept as they were whenever the file is
rewritten.  ``M`` is ours: a lower bound of the folder's highest
mod-sequence (RFC 7162), written whenever the file is rewritten; the
per-message mod-sequences, and the exact highest, are in
``mailsrv-modseq`` (:mod:`.modseqs`), numbered under this file's locks by
the same commit job.  Dovecot keeps its own mod-sequences in its index,
never in this file, and keeps a header field it does not know when it
rewrites the file, so ``M`` survives Dovecot's writes.  Dovecot writes the key (the file name up
to its ``:2,`` info) after the ``:``, as we do.

New UIDs are appended and ``fdatasync``ed before anyone is told of them (a
UID once shown to a client is never given to another message, RFC 3501
2.3.1.1), in UID order (Dovecot discards a file whose UIDs go down); expunges
rewrite the file atomically.  A writer holds two locks: our ``flock``
(``mailsrv-uidlist.lock``, which serialises mailsrv processes and nodes
without polling) and then Dovecot's dot-lock ``dovecot-uidlist.lock``
(:mod:`.dotlock`), so a Dovecot process never writes at the same time.
The file is re-read under them whenever its
:class:`~mailsrv.store.files.FileStamp` shows that someone else wrote it.
A job that only numbers flag changes (a STORE) writes nothing here and
takes only our ``flock`` (:func:`number_only`).

Folders that mailsrv kept before it wrote Dovecot's file have a
``mailsrv-uidlist`` (``1 V<uidvalidity> N<uidnext> M<modseq>``, then
``<uid> <key>`` lines).  The first commit migrates it: the same UIDs,
UIDVALIDITY and mod-sequence go into ``dovecot-uidlist`` (which replaces
any older one Dovecot left, since clients saw mailsrv's UIDs since), and
the old file is removed, so no older mailsrv can later give out UIDs from
a stale copy.

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
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from typing import TYPE_CHECKING

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.store import modseqs
from mailsrv.store.coalesce import Coalescing
from mailsrv.store.dotlock import dotlocked
from mailsrv.store.files import FileStamp, append_durably, fsync_dir, locked, read_text, replace_file
from mailsrv.store.maildir import split_name
from mailsrv.workers import Executor

if TYPE_CHECKING:
    from mailsrv.store.snapfile import Sources

#: Seconds a delivery's UID commit waits for more deliveries to share it.
#: Short against IDLE's announcement; long against one ``fdatasync``.
BATCH_DELAY = 0.02

FILENAME = "dovecot-uidlist"
#: What mailsrv kept before it wrote Dovecot's file; migrated and removed.
OLD_FILENAME = "mailsrv-uidlist"
#: Our flock is ``mailsrv-uidlist.lock``: the lock older mailsrv versions took too.
LOCK_NAME = OLD_FILENAME
#: Dovecot's stale timeout for the dot-lock of this file (seconds).
STALE_AFTER = 120
VERSION = "3"
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
    #: The mailbox GUID (128 bits in hex) Dovecot requires; made when missing.
    guid: str = ""
    #: Header fields of other writers, kept as they were.
    others: tuple[str, ...] = ()

    def line(self) -> str:
        fields = [f"V{self.uidvalidity}", f"N{self.uidnext}", f"G{self.guid}", f"M{self.highest_modseq}"]
        return " ".join([VERSION, *fields, *self.others]) + "\n"


@dataclass
class Entries:
    """The key -> UID map, and the fields of entries that had any (kept on rewrite)."""

    by_key: dict[str, int] = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)


#: An entry without fields whose name has no info part: ``<uid> :<key>``.
_PLAIN_ENTRY = re.compile(r"\n([1-9][0-9]*) :([^:/\n\r]+)(?=\n)")
_KNOWN = {"V": "uidvalidity", "N": "uidnext", "M": "highest_modseq"}


def _header(line: str, path: str) -> Header:
    """Version 3 (``3 V.. N.. G..``), Courier's version 1 (``1 <validity> <next>``), or ours of old."""
    version, _, rest = line.partition(" ")
    tokens = rest.split()
    if version == "1" and len(tokens) >= 2 and all(t.isdigit() for t in tokens[:2]):
        return Header(int(tokens[0]), int(tokens[1]))
    if version not in ("1", VERSION):
        log.warn("{path}: uidlist version {version} not known; reading its header fields", path=path, version=version)
    values: dict[str, int] = {}
    guid, others = "", []
    for token in tokens:
        key, value = token[:1], token[1:]
        if key in _KNOWN and value.isdigit():
            values[_KNOWN[key]] = int(value)
        elif key == "G" and len(value) == 32:
            guid = value
        else:
            others.append(token)
    return Header(guid=guid, others=tuple(others), **values)


def _entry(line: str) -> tuple[int, str, str] | None:
    """``(uid, fields, key)`` of an entry line; both ``<uid> [fields] :<name>`` and ``<uid> <name>``."""
    uid, _, rest = line.partition(" ")
    if not uid.isdigit() or int(uid) == 0:
        return None
    fields = []
    while rest and not rest.startswith(":") and " " in rest and rest[:1].isupper():
        token, _, rest = rest.partition(" ")
        fields.append(token)
        rest = rest.lstrip(" ")
    name = rest[1:] if rest.startswith(":") else rest
    if not name or "/" in name:
        return None
    return int(uid), " ".join(fields), split_name(name)[0]


def parse(text: str, path: str) -> tuple[Header, Entries]:
    """The header and the entries of a uidlist file's text."""
    first, _, body = text.partition("\n")
    header = _header(first, path) if text else Header()
    body = body if body.endswith("\n") or not body else body + "\n"
    plain = _PLAIN_ENTRY.findall("\n" + body)
    if len(plain) == body.count("\n"):
        # Every entry a plain "<uid> :<key>" (what we write): parsed in one pass, no line loop.
        by_key = {key: int(uid) for uid, key in plain}
        uidnext = max(header.uidnext, max(by_key.values(), default=0) + 1)
        return replace(header, uidnext=uidnext), Entries(by_key)
    lines = text.splitlines()
    entries = Entries()
    uidnext = header.uidnext
    for number, line in enumerate(lines[1:], 2):
        parsed = _entry(line)
        if parsed is None:
            log.warn("{path}:{line}: unreadable UID entry skipped", path=path, line=number)
            continue
        uid, fields, key = parsed
        entries.by_key[key] = uid
        if fields:
            entries.fields[key] = fields
        uidnext = max(uidnext, uid + 1)
    return replace(header, uidnext=uidnext), entries


def _line(uid: int, key: str, fields: str | None) -> str:
    return f"{uid} {fields} :{key}\n" if fields else f"{uid} :{key}\n"


@dataclass(frozen=True)
class Commit:
    """What one job found and wrote, for the reactor to apply."""

    header: Header
    #: All entries (before *assigned*), when the job re-read or rewrote the file; else None.
    entries: Entries | None
    #: Keys given a UID by this job.
    assigned: dict[str, int]
    stamp: FileStamp | None
    #: What the job wrote to ``mailsrv-modseq``.
    modseqs: modseqs.Done


def _migrated(path: str) -> tuple[Header, Entries] | None:
    """The UIDs of the folder's ``mailsrv-uidlist``, if it still has one (blocking)."""
    old = os.path.join(os.path.dirname(path), OLD_FILENAME)
    if not os.path.exists(old):
        return None
    header, entries = parse(read_text(old), old)
    current = _header(read_text(path).partition("\n")[0], path)
    log.info("{path}: UIDs migrated from {old} (UIDVALIDITY {uidvalidity})",
             path=path, old=OLD_FILENAME, uidvalidity=header.uidvalidity)
    return replace(header, guid=current.guid), entries


def _remove_old(path: str) -> None:
    """Once ``dovecot-uidlist`` holds them, the old file's UIDs must not be read again."""
    folder = os.path.dirname(path)
    os.unlink(os.path.join(folder, OLD_FILENAME))
    fsync_dir(folder)


def commit(
    path: str, known: FileStamp | None, header: Header, entries: Entries,
    adds: Mapping[str, str], forgets: frozenset[str], numbering: Numbering,
) -> Commit:
    """Under the locks: catch up with other writers, assign UIDs to *adds*, drop *forgets* (blocking).

    *header*/*entries* are what the caller knows, valid while the file still
    has stamp *known*.  A file that vanished is written again from them
    (same UIDVALIDITY, so no client's UIDs break); a new folder gets a new
    UIDVALIDITY.  Then, under the same locks, the messages given UIDs (with
    their info letters from *adds*) and *numbering*'s requests get their
    mod-sequences (:func:`.modseqs.commit`).
    """
    with locked(os.path.join(os.path.dirname(path), LOCK_NAME)), dotlocked(path, STALE_AFTER):
        stamp = FileStamp.of(path)
        replaced = None
        migrated = _migrated(path)
        if migrated is not None:
            header, replaced = migrated
            stamp = None  # written anew below
        elif stamp is not None and stamp != known:
            theirs, replaced = parse(read_text(path), path)
            header = replace(theirs, highest_modseq=max(theirs.highest_modseq, header.highest_modseq))
            if replaced.by_key == entries.by_key:  # read for the first time after a restart: as recorded
                replaced = Entries(entries.by_key, replaced.fields)  # whose keys and UIDs the snapshot holds
        by_key = entries.by_key if replaced is None else replaced.by_key
        assigned: dict[str, int] = {}
        uidnext = header.uidnext
        for key in adds:
            if key not in by_key and key not in assigned:
                assigned[key] = uidnext
                uidnext += 1
        gone = forgets.intersection(by_key)
        # M: a lower bound of the highest modseq, for readers of this file alone (mailsrv-modseq has them all).
        header = replace(header, highest_modseq=max(header.highest_modseq, numbering.table.highest))
        rewrite = stamp is None or not header.uidvalidity or not header.guid or bool(gone)
        header = replace(header, uidvalidity=header.uidvalidity or _new_uidvalidity(), uidnext=uidnext,
                         guid=header.guid or uuid.uuid4().hex)
        if rewrite:
            old = entries if replaced is None else replaced
            replaced = Entries({k: u for k, u in old.by_key.items() if k not in gone},
                               {k: f for k, f in old.fields.items() if k not in gone})
            replaced.by_key.update(assigned)
            ordered = sorted(replaced.by_key.items(), key=lambda kv: kv[1])
            lines = "".join(_line(u, k, replaced.fields.get(k)) for k, u in ordered)
            replace_file(path, (header.line() + lines).encode("utf-8"))
            if migrated is not None:
                _remove_old(path)
        elif assigned:
            append_durably(path, "".join(_line(u, k, None) for k, u in assigned.items()))
        stamp = FileStamp.of(path)
        known_uids = by_key if replaced is None else replaced.by_key
        requests = ([modseqs.Request({k: adds[k] for k in assigned})] if assigned else []) + numbering.requests
        wanted = {key for r in requests for key in r.sets if key not in gone}
        uid_of = {key: assigned.get(key) or known_uids[key] for key in wanted if key in assigned or key in known_uids}
        numbered = modseqs.commit(os.path.dirname(path), numbering.stamp, numbering.table, header.uidvalidity,
                                  header.highest_modseq, requests, uid_of)
        return Commit(header, replaced, assigned, stamp, numbered)


def number_only(path: str, header: Header, known: FileStamp | None, numbering: Numbering,
                uid_of: Mapping[str, int]) -> Commit:
    """Number flag changes alone, under our ``flock`` only (blocking).

    A flags-only STORE renames files within ``cur/``, and Dovecot's file
    records the key, not the name: it needs no line of ``dovecot-uidlist``
    and no read of it, so neither Dovecot's dot-lock nor a ``stat`` of it.
    Our ``flock`` still serialises the modseq counter between mailsrv
    processes (Dovecot never writes ``mailsrv-modseq``).  *header* and
    *uid_of* are what the reactor knows; should another writer have changed
    the UID list meanwhile, the next listing sees its stamp move and
    re-reads it, and a UID it expunged is dropped from the log by the
    expunge that follows.
    """
    with locked(os.path.join(os.path.dirname(path), LOCK_NAME)):
        numbered = modseqs.commit(os.path.dirname(path), numbering.stamp, numbering.table, header.uidvalidity,
                                  header.highest_modseq, numbering.requests, uid_of)
    return Commit(header, None, {}, known, numbered)


@dataclass(frozen=True)
class Numbering:
    """The modseq side of a job: what the reactor knows of ``mailsrv-modseq``, and what to number."""

    stamp: FileStamp | None
    table: modseqs.Table
    requests: list[modseqs.Request]


class UIDList:
    """UID <-> key map of one folder, kept in step with its file.

    Every attribute is read and written on the reactor thread only.
    """

    def __init__(self, folder_path: str, executor: Executor, clock: IReactorTime | None = None) -> None:
        self.path = os.path.join(folder_path, FILENAME)
        self._executor = executor
        self.header = Header()
        self.entries = Entries()
        self.stamp: FileStamp | None = None
        #: Every message's mod-sequence, and the expunges remembered (``mailsrv-modseq``).
        self.modseqs = modseqs.Table()
        self._modseq_stamp: FileStamp | None = None
        self._adds: dict[str, str] = {}  # key -> info letters; ordered: UIDs follow arrival order
        self._forgets: set[str] = set()
        self._requests: list[modseqs.Request] = []
        self._jobs = Coalescing(self._run, clock, BATCH_DELAY)
        #: Set by :meth:`adopt`: the files are as a persisted snapshot recorded, not parsed yet.
        self._unread: Mapping[str, int] | None = None

    @property
    def by_key(self) -> dict[str, int]:
        """Maildir key -> UID of every message the file lists."""
        return self.entries.by_key

    @property
    def uidvalidity(self) -> int:
        return self.header.uidvalidity

    @property
    def uidnext(self) -> int:
        return self.header.uidnext

    @property
    def highest_modseq(self) -> int:
        """The folder's highest mod-sequence (RFC 7162 3.1.1): every one shown to a client is durable."""
        return max(self.header.highest_modseq, self.modseqs.highest, 1)

    @property
    def modseq_stamp(self) -> FileStamp | None:
        """The stamp of ``mailsrv-modseq`` as last read or written here."""
        return self._modseq_stamp

    @property
    def read(self) -> bool:
        """Whether both files were parsed: :attr:`by_key` and :attr:`modseqs` hold every entry."""
        return self._unread is None

    def adopt(self, recorded: "Sources", keys: Mapping[str, int]) -> None:
        """Take what a persisted snapshot recorded of both files, whose stamps still match; parse them later.

        A restart then parses neither before the folder opens (a quarter of
        a second at 100,000 messages).  Until the first commit, which parses
        both as it does after another writer's change, :attr:`by_key` and
        the modseq table are empty (every reader of them waits for a commit
        first) and :meth:`expunged_since` knows nothing.  *keys* (the
        snapshot's key -> UID map) is what that commit writes should the
        file have vanished meanwhile.
        """
        self.header = Header(recorded.uidvalidity, recorded.uidnext, recorded.highest_modseq)
        self.stamp, self._modseq_stamp = recorded.uidlist, recorded.modseqs
        self.modseqs = modseqs.Table(recorded.uidvalidity, recorded.highest_modseq)
        self._unread = keys

    def expunged_since(self, modseq: int) -> list[int] | None:
        """UIDs expunged after *modseq*, or None when they may be forgotten or are not read yet.

        Not read yet: the files are parsed in the background, so the next
        caller gets the list (None makes QRESYNC fall back on what is
        missing, RFC 7162 3.2.5.2).
        """
        if not self.read:
            self._jobs.run().addErrback(lambda f: log.failure("reading the UID list", f))
            return None
        return self.modseqs.expunged_since(modseq)

    def refresh(self) -> "Deferred[None]":
        """Load the file (creating it for a new folder) or pick up other writers' changes."""
        return self._jobs.run()

    def assign(self, infos: Mapping[str, str], soon: bool = False) -> "Deferred[None]":
        """Give UIDs (and one new mod-sequence) to the keys of *infos* durably; then :attr:`by_key` has them.

        *infos* maps each key to its Maildir info letters, recorded with the
        mod-sequence.  With *soon* the commit may wait :data:`BATCH_DELAY`
        for more keys.
        """
        self._adds.update(infos)
        return self._jobs.run(soon)

    def forget(self, keys: Iterable[str], uids: Iterable[int]) -> "Deferred[int]":
        """Drop expunged keys, remembering their *uids* with a new mod-sequence; fires with it.

        UIDNEXT stays, so their UIDs are never reused.
        """
        self._forgets.update(keys)
        return self._number(modseqs.Request(expunged=tuple(uids)))

    def record(self, infos: Mapping[str, str]) -> "Deferred[int]":
        """New flags (key -> info letters) of messages: one new mod-sequence, durable; fires with it."""
        return self._number(modseqs.Request(sets=dict(infos)))

    def _number(self, request: modseqs.Request) -> "Deferred[int]":
        self._requests.append(request)
        return self._jobs.run().addCallback(lambda _: request.modseq)

    def _run(self) -> "Deferred[None]":
        adds, self._adds = self._adds, {}
        forgets, self._forgets = frozenset(self._forgets), set()
        requests, self._requests = self._requests, []

        def failed(failure: Failure) -> Failure:
            # Back in the queue: the next commit, whoever asks for it, retries them.
            self._adds = adds | self._adds
            self._forgets |= forgets
            self._requests = requests + self._requests
            return failure

        if self._unread is None:
            known, entries, modseq_known = self.stamp, self.entries, self._modseq_stamp
        else:  # no stamp known: the commit parses both files
            known, entries, modseq_known = None, Entries(dict(self._unread)), None
        numbering = Numbering(modseq_known, self.modseqs, requests)
        if self._flags_only(adds, forgets, requests):
            by_key = self.entries.by_key
            uid_of = {key: by_key[key] for r in requests for key in r.sets if key in by_key}
            d = self._executor.run(number_only, self.path, self.header, known, numbering, uid_of)
        else:
            d = self._executor.run(commit, self.path, known, self.header, entries, adds, forgets, numbering)
        return d.addCallbacks(self._apply, failed).addCallback(self._numbered, requests)

    def _flags_only(self, adds: Mapping[str, str], forgets: frozenset[str], requests: list[modseqs.Request]) -> bool:
        """Whether a job only numbers flag changes of messages whose UIDs are read (:func:`number_only`)."""
        return (bool(requests) and not adds and not forgets and self.read and self.stamp is not None
                and bool(self.header.uidvalidity) and not any(r.expunged for r in requests))

    def _numbered(self, done: Commit, requests: list[modseqs.Request]) -> None:
        numbered = done.modseqs
        if numbered.table is not None:
            self.modseqs = numbered.table
        else:
            self.modseqs.apply(numbered.sets, numbered.gone)
        self._modseq_stamp = numbered.stamp
        for request, modseq in zip(requests, numbered.modseqs[len(numbered.modseqs) - len(requests):]):
            request.modseq = modseq

    def _apply(self, done: Commit) -> Commit:
        if done.entries is not None:
            self.entries = done.entries
        self._unread = None
        self.entries.by_key.update(done.assigned)
        modseq = max(done.header.highest_modseq, self.header.highest_modseq)  # steps taken meanwhile
        self.header = replace(done.header, highest_modseq=modseq)
        self.stamp = done.stamp
        return done

"""Per-message mod-sequences (RFC 7162) of one folder, in ``mailsrv-modseq``.

Maildir has no place for them and Dovecot keeps its own in its index, so
they live in a file of ours beside ``dovecot-uidlist`` (Dovecot ignores
files it does not know).  One file per folder, never one per message::

    1 V<uidvalidity> H<highest modseq> F<forgotten>
    <uid> <modseq> <flags>          the message's flags as of that modseq
    X <modseq> <uid> [<uid> ...]    these messages were expunged then

``<flags>`` are the message's Maildir info letters (``-`` for none).  They
let a sync tell a flag change made by another mailsrv process (the file
already has the new letters with its modseq) from one made by a program
that keeps no modseqs (mutt, procmail, Dovecot, or anything while we were
stopped), which gets a new modseq here.

The file is a log: every commit *appends* its lines and ``fdatasync``s
them, and a later line for a UID replaces an earlier one.  It is written
only inside :func:`mailsrv.store.uidlist.commit`, under the same two locks
as the UID list, so processes sharing the Maildir take their modseqs from
one counter: a commit re-reads what others appended, then numbers its own
changes above the highest it found.  When the log holds more than twice
the live lines, or twice :data:`KEEP_EXPUNGED` expunges, it is rewritten
compactly (atomically), keeping the newest :data:`KEEP_EXPUNGED` of them;
``F`` is then the highest modseq of an expunge no longer listed, which
QRESYNC must treat as unknown (RFC 7162 3.2.5.2).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from twisted.logger import Logger

from mailsrv.store.files import FileStamp, append_durably, read_text, replace_file

FILENAME = "mailsrv-modseq"
VERSION = "1"
#: Expunged UIDs remembered with their modseq, for QRESYNC's VANISHED (EARLIER).
KEEP_EXPUNGED = 10_000
log = Logger()


@dataclass
class Table:
    """What the file says: each message's modseq and flags, and the expunges remembered."""

    uidvalidity: int = 0
    highest: int = 0
    #: Expunges with a modseq at or below this one may be forgotten.
    forgotten: int = 0
    #: UID -> (modseq, Maildir info letters at that modseq); equal pairs are one tuple (:func:`_shared`).
    by_uid: dict[int, tuple[int, str]] = field(default_factory=dict)
    #: ``(modseq, uid)`` of remembered expunges, oldest first.
    expunged: list[tuple[int, int]] = field(default_factory=list)
    #: Lines in the file (compaction is due when far more than are live).
    lines: int = 0

    def apply(self, sets: list[tuple[int, int, str]], gone: list[tuple[int, list[int]]]) -> None:
        """Take in a commit's new lines: ``(uid, modseq, info)`` sets and ``(modseq, uids)`` expunges."""
        pairs: dict[tuple[int, str], tuple[int, str]] = {}
        for uid, modseq, info in sets:
            self.by_uid[uid] = _shared(pairs, (modseq, info))
            self.highest = max(self.highest, modseq)
        for modseq, uids in gone:
            for uid in uids:
                self.by_uid.pop(uid, None)
                self.expunged.append((modseq, uid))
            self.highest = max(self.highest, modseq)
        self.lines += len(sets) + len(gone)

    def expunged_since(self, modseq: int) -> list[int] | None:
        """UIDs expunged after *modseq*, or None when some of those may be forgotten."""
        if modseq < self.forgotten:
            return None
        return sorted(uid for m, uid in self.expunged if m > modseq)


def _shared(pairs: dict[tuple[int, str], tuple[int, str]], pair: tuple[int, str]) -> tuple[int, str]:
    """*pair*, or the equal one already in *pairs*.

    Messages numbered together (a first sync gives 100,000 of them one
    modseq) then hold one tuple and one int between them, not one each:
    a tenth of a folder's memory at that size.
    """
    return pairs.setdefault(pair, pair)


#: The lines we write, for :func:`_parse_written`: ``<uid> <modseq> <flags>`` and ``X <modseq> <uid>...``.
_SET_LINE = re.compile(r"\n([0-9]+) ([0-9]+) ([^\s]+)(?=\n)")
_GONE_LINE = re.compile(r"\nX ([0-9]+)((?: [0-9]+)*)(?=\n)")


def _parse_written(body: str, table: Table) -> bool:
    """Fill *table* from the lines after the header in one pass each, if every line is as we write it.

    A UID is never set again after its expunge, so the sets can be taken
    first and the expunges after them; a file where one is (not ours) is
    left to the line-by-line parser, as is any line of another shape.
    """
    body = "\n" + (body if body.endswith("\n") or not body else body + "\n")
    sets, gone = _SET_LINE.findall(body), _GONE_LINE.findall(body)
    if len(sets) + len(gone) != body.count("\n") - 1:
        return False
    pairs: dict[tuple[int, str], tuple[int, str]] = {}
    by_uid = {int(uid): _shared(pairs, (int(modseq), "" if info == "-" else info)) for uid, modseq, info in sets}
    highest = max((modseq for modseq, _ in by_uid.values()), default=0)
    for modseq_text, uids in gone:
        modseq = int(modseq_text)
        for uid in map(int, uids.split()):
            if by_uid.get(uid, (0,))[0] > modseq:
                return False
            by_uid.pop(uid, None)
            table.expunged.append((modseq, uid))
        highest = max(highest, modseq)
    table.by_uid, table.highest = by_uid, max(table.highest, highest)
    return True


def parse(text: str, path: str) -> Table:
    """The table of a ``mailsrv-modseq`` file's text; unreadable lines are skipped with a warning."""
    table = Table()
    lines = text.splitlines()
    if lines:
        for token in lines[0].split()[1:]:
            if token[1:].isdigit():
                if token[0] == "V":
                    table.uidvalidity = int(token[1:])
                elif token[0] == "H":
                    table.highest = int(token[1:])
                elif token[0] == "F":
                    table.forgotten = int(token[1:])
    if lines and _parse_written(text.partition("\n")[2], table):
        table.lines = len(lines)
        return table
    table.by_uid, table.expunged = {}, []
    for number, line in enumerate(lines[1:], 2):
        words = line.split()
        if len(words) >= 2 and words[0] == "X" and all(w.isdigit() for w in words[1:]):
            table.apply([], [(int(words[1]), [int(w) for w in words[2:]])])
        elif len(words) == 3 and words[0].isdigit() and words[1].isdigit():
            table.apply([(int(words[0]), int(words[1]), "" if words[2] == "-" else words[2])], [])
        else:
            log.warn("{path}:{line}: unreadable modseq line skipped", path=path, line=number)
    table.lines = len(lines)
    return table


@dataclass
class Request:
    """One change to number: new flags of messages (by key), or expunged UIDs."""

    #: Maildir key -> info letters now.
    sets: Mapping[str, str] = field(default_factory=dict)
    expunged: tuple[int, ...] = ()
    #: Set by the commit that numbered it.
    modseq: int = 0


@dataclass(frozen=True)
class Done:
    """What one commit wrote, for the reactor to apply."""

    #: The whole table, when the commit re-read or rewrote the file; else None.
    table: Table | None
    sets: list[tuple[int, int, str]]
    gone: list[tuple[int, list[int]]]
    #: The modseq given to each request, in order.
    modseqs: list[int]
    stamp: FileStamp | None


def commit(
    folder_path: str, known: FileStamp | None, table: Table, uidvalidity: int, floor: int,
    requests: list[Request], uid_of: Mapping[str, int],
) -> Done:
    """Number *requests* above every modseq already used, and append them durably (blocking).

    The caller holds the UID list's locks.  *table* is what the caller
    knows, valid while the file has stamp *known*; *floor* is a modseq the
    new ones must exceed as well (``M`` of ``dovecot-uidlist``).  Keys
    without a UID (expunged meanwhile) are left out.
    """
    path = os.path.join(folder_path, FILENAME)
    stamp = FileStamp.of(path)
    fresh = None
    if stamp != known:
        fresh = parse(read_text(path), path) if stamp is not None else Table()
        table = fresh
    if table.uidvalidity != uidvalidity:  # a new UIDVALIDITY: the old UIDs mean nothing
        fresh = Table(uidvalidity, table.highest)
        table = fresh
    highest = max(table.highest, floor, 1)  # 1 is an empty folder's HIGHESTMODSEQ (RFC 7162 7: nonzero)
    sets, gone, modseqs = [], [], []
    for request in requests:
        highest += 1
        modseqs.append(highest)
        sets += [(uid_of[key], highest, info) for key, info in request.sets.items() if key in uid_of]
        if request.expunged:
            gone.append((highest, list(request.expunged)))
    if not requests:
        return Done(fresh, [], [], [], stamp)
    live = len(table.by_uid) + len(table.expunged)
    remembered = len(table.expunged) + sum(len(uids) for _, uids in gone)
    if (stamp is None or table.lines == 0 or table.lines + len(sets) + len(gone) > 2 * live + 1000
            or remembered > 2 * KEEP_EXPUNGED):
        new = Table(table.uidvalidity, table.highest, table.forgotten, dict(table.by_uid), list(table.expunged))
        new.apply(sets, gone)
        _rewrite(path, new)
        return Done(new, [], [], modseqs, FileStamp.of(path))
    text = "".join(f"{uid} {modseq} {info or '-'}\n" for uid, modseq, info in sets)
    text += "".join(f"X {modseq} {' '.join(map(str, uids))}\n" for modseq, uids in gone)
    append_durably(path, text)
    if fresh is not None:
        fresh.apply(sets, gone)
        return Done(fresh, [], [], modseqs, FileStamp.of(path))
    return Done(None, sets, gone, modseqs, FileStamp.of(path))


def _rewrite(path: str, table: Table) -> None:
    """Write the table compactly (atomic replace), forgetting the oldest expunges past the bound."""
    drop = len(table.expunged) - KEEP_EXPUNGED
    if drop > 0:
        table.forgotten = max(table.forgotten, table.expunged[drop - 1][0])
        del table.expunged[:drop]
    lines = [f"{VERSION} V{table.uidvalidity} H{table.highest} F{table.forgotten}\n"]
    lines += [f"{uid} {modseq} {info or '-'}\n" for uid, (modseq, info) in sorted(table.by_uid.items())]
    lines += [f"X {modseq} {uid}\n" for modseq, uid in table.expunged]
    table.lines = len(lines)
    replace_file(path, "".join(lines).encode("ascii"))

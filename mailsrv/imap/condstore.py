"""CONDSTORE and QRESYNC (RFC 7162): the session's modes, and what they add to commands.

Mod-sequences come from the store (:mod:`mailsrv.store.modseqs`): every
message has one, durable before a client sees it, so ``[NOMODSEQ]`` is
never sent.  This module parses the command parameters the RFC adds
(SELECT's ``(CONDSTORE)`` and ``(QRESYNC (...))``, FETCH's ``(CHANGEDSINCE
n [VANISHED])``, STORE's ``(UNCHANGEDSINCE n)``) and sends the responses a
QRESYNC SELECT owes; the commands themselves (:mod:`.folders`,
:mod:`.selected`) call it.

The store remembers the newest :data:`mailsrv.store.modseqs.KEEP_EXPUNGED`
expunges with their modseq; when a client asks for expunges older than
that, ``VANISHED (EARLIER)`` lists every UID of its known set (or of
``1:UIDNEXT-1``) that is not in the folder, which RFC 7162 3.2.5.2 allows.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from twisted.mail import imap4

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.flags import flags_data
from mailsrv.imap.modes import CONDSTORE, QRESYNC, Modes
from mailsrv.imap.responses import bad, syntax
from mailsrv.imap.sequences import parse_sequence_set, range_set

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection
    from mailsrv.imap.selection import Selection

CAPABILITIES = [CONDSTORE, QRESYNC]
_SET = re.compile(rb"[0-9:*,]+")


def enabled_by(server: "Connection") -> None:
    """A command of the selected state used CONDSTORE: turn it on, and say the HIGHESTMODSEQ of the mailbox.

    The client could not learn it from SELECT, which ran before (RFC 7162
    3.1.8; Dovecot answers the same way).
    """
    if server.modes.use_condstore() and server.selection is not None:
        server.untagged(b"OK [HIGHESTMODSEQ %d] Highest" % server.selection.folder.highest_modseq)


@dataclass(frozen=True)
class Resync:
    """SELECT's ``QRESYNC (uidvalidity modseq [known-uids ...])`` (RFC 7162 3.2.5)."""

    uidvalidity: int
    modseq: int
    known: imap4.MessageSet | None


def _uid_set(args: Arguments) -> imap4.MessageSet:
    token = args.token(_SET)
    if token is None:
        raise syntax(b"UID set expected")
    return parse_sequence_set(token)


def select_params(args: Arguments, modes: Modes) -> Resync | None:
    """The parenthesized SELECT/EXAMINE parameters (RFC 4466 select-param) after the name."""
    args.space()
    if not args.expect(b"("):
        raise syntax(b"SELECT parameters expected")
    resync = None
    while True:
        name = args.atom().upper()
        if name == CONDSTORE:  # RFC 7162 3.1.7
            modes.use_condstore()
        elif name == QRESYNC:
            if not modes.qresync:
                raise bad(b"QRESYNC is not enabled")  # RFC 7162 3.2.5
            resync = _qresync(args)
        else:
            raise syntax(b"Unknown SELECT parameter")
        if args.expect(b")"):
            return resync
        args.space()


def _qresync(args: Arguments) -> Resync:
    """``(uidvalidity modseq [known-uids [(seq-match)]])``; the sequence match data is checked, not used."""
    args.space()
    if not args.expect(b"("):
        raise syntax(b"QRESYNC parameters expected")
    uidvalidity = args.number()
    if uidvalidity == 0:
        raise syntax(b"UIDVALIDITY is never 0")
    args.space()
    modseq = args.mod_sequence()
    known = None
    if not args.expect(b")"):
        args.space()
        if args.peek() != b"(":
            known = _uid_set(args)
            if args.expect(b")"):
                return Resync(uidvalidity, modseq, known)
            args.space()
        if not args.expect(b"("):
            raise syntax(b"Sequence match data expected")
        _uid_set(args)
        args.space()
        _uid_set(args)
        if not (args.expect(b")") and args.expect(b")")):
            raise syntax(b"Malformed QRESYNC parameters")
    return Resync(uidvalidity, modseq, known)


@dataclass(frozen=True)
class FetchModifiers:
    """FETCH's ``(CHANGEDSINCE n [VANISHED])`` (RFC 7162 3.1.4, 3.2.6)."""

    changedsince: int | None = None
    vanished: bool = False


def fetch_modifiers(args: Arguments, uid: bool, server: "Connection") -> FetchModifiers:
    """The modifiers after FETCH's items, if any."""
    if not args.more():
        return FetchModifiers()
    args.space()
    if not args.expect(b"("):
        raise syntax(b"FETCH modifiers expected")
    changedsince, vanished = None, False
    while True:
        name = args.atom().upper()
        if name == b"CHANGEDSINCE" and changedsince is None:
            args.space()
            changedsince = args.mod_sequence()
        elif name == b"VANISHED" and not vanished:
            vanished = True
        else:
            raise syntax(b"Unknown FETCH modifier")
        if args.expect(b")"):
            break
        args.space()
    # RFC 7162 3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE, once QRESYNC is on.
    if vanished and not (uid and server.modes.qresync and changedsince is not None):
        raise bad(b"VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC")
    if changedsince is not None:
        enabled_by(server)
    return FetchModifiers(changedsince, vanished)


def unchanged_since(args: Arguments, server: "Connection") -> int | None:
    """STORE's ``(UNCHANGEDSINCE n)`` before the item, if given (RFC 7162 3.1.3)."""
    if not args.expect(b"("):
        return None
    if args.atom().upper() != b"UNCHANGEDSINCE":
        raise syntax(b"Unknown STORE modifier")
    args.space()
    value = args.mod_sequence()
    if not args.expect(b")"):
        raise syntax(b"Malformed STORE modifier")
    args.space()
    enabled_by(server)
    return value


def _missing(existing: list[int], low: int, high: int) -> list[tuple[int, int]]:
    """The runs of UIDs from *low* to *high* that *existing* (sorted) lacks."""
    runs, start = [], low
    for uid in existing[bisect.bisect_left(existing, low) : bisect.bisect_right(existing, high)]:
        if uid > start:
            runs.append((start, uid - 1))
        start = uid + 1
    if start <= high:
        runs.append((start, high))
    return runs


def _ranges(uids: imap4.MessageSet | None, top: int) -> list[tuple[int, int]]:
    """A client's UID set as ``(low, high)`` ranges, ``*`` being *top* (the highest UID there can be)."""
    if uids is None:
        return [(1, top)]
    pairs = [(top if low is None else low, top if high is None else high) for low, high in uids.ranges]
    return [(min(a, b), max(a, b)) for a, b in pairs]


def _within(ranges: list[tuple[int, int]], uid: int) -> bool:
    return any(low <= uid <= high for low, high in ranges)


def vanished_since(selection: "Selection", modseq: int, within: imap4.MessageSet | None) -> bytes:
    """The uid-set of ``VANISHED (EARLIER)`` for expunges after *modseq*, inside *within*; b"" if none."""
    folder = selection.folder
    ranges = _ranges(within, folder.uidnext - 1)
    gone = folder.expunged_since(modseq)
    if gone is not None:
        return _runs([(u, u) for u in gone if _within(ranges, u)])
    existing = folder.uids()  # forgotten: RFC 7162 3.2.5.2's fallback
    return _runs([run for low, high in ranges for run in _missing(existing, low, high)])


def _runs(ranges: list[tuple[int, int]]) -> bytes:
    """Ranges of UIDs, merged where they touch, as one ascending uid-set."""
    merged: list[list[int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        elif low <= high:
            merged.append([low, high])
    return range_set([(low, high) for low, high in merged])


def resync(server: "Connection", selection: "Selection", params: Resync) -> None:
    """What a QRESYNC SELECT owes (RFC 7162 3.2.5): VANISHED (EARLIER), then each changed message's flags.

    Nothing when the client's UIDVALIDITY is not the folder's: it must
    start afresh, and the normal SELECT responses say so.
    """
    if params.uidvalidity != selection.folder.uidvalidity:
        return
    gone = vanished_since(selection, params.modseq, params.known)
    if gone:
        server.untagged(b"VANISHED (EARLIER) " + gone)
    known = _ranges(params.known, selection.folder.uidnext - 1)
    for seq, view in selection.all_views():
        if view.modseq > params.modseq and _within(known, view.uid):
            server.untagged(b"%d FETCH (UID %d FLAGS %s MODSEQ (%d))" % (seq, view.uid, flags_data(view.flags),
                                                                        view.modseq))

"""Sequence sets (RFC 3501 9): parsing them, and resolving them against a mailbox.

``imap4.parseIdList`` re-sorts all ranges after each one it adds, which is
quadratic in the 10,000-range UID sets some clients send; both functions
here are linear in the set and logarithmic in the mailbox.
"""

from __future__ import annotations

import bisect
from typing import Sequence

from twisted.mail import imap4

from mailsrv.imap.responses import syntax

_MAX_NUMBER = 2**32 - 1  # RFC 3501 9: nz-number fits 32 bits


def _set_number(token: bytes) -> int | None:
    """One end of a range: ``*`` (None) or a number in range."""
    if token == b"*":
        return None
    if not token.isdigit() or not 0 < int(token) <= _MAX_NUMBER:
        raise syntax(b"bad message number")  # no client bytes in replies
    return int(token)


def parse_sequence_set(token: bytes) -> imap4.MessageSet:
    """A ``sequence-set`` as a MessageSet, built in one pass."""
    ranges = []
    for part in token.split(b","):
        low, colon, high = part.partition(b":")
        pair = (_set_number(low), _set_number(high) if colon else _set_number(low))
        if pair[0] is None or (pair[1] is not None and pair[1] < pair[0]):
            pair = (pair[1], pair[0])  # "*:4" and "9:2" are the same as "4:*", "2:9"
        ranges.append(pair)
    return imap4.MessageSet(ranges)


def resolve_set(ids: Sequence[int], wanted: imap4.MessageSet) -> list[int]:
    """Positions in the sorted *ids* that *wanted* names (``*`` = the last).

    Works range by range with bisection, so a client's 10,000-range UID set
    against a large mailbox stays cheap.
    """
    wanted.last = ids[-1] if ids else 0
    spans = sorted((bisect.bisect_left(ids, low), bisect.bisect_right(ids, high)) for low, high in wanted.ranges)
    positions: list[int] = []
    end = 0  # positions below it are taken: overlapping ranges name a message once
    for start, stop in spans:
        positions.extend(range(max(start, end), stop))
        end = max(end, stop)
    return positions


def uid_set(uids: Sequence[int]) -> bytes:
    """A ``uid-set`` (RFC 4315 4) in the order given, runs of +1 as ``a:b``.

    COPYUID pairs its source and destination sets by position, so the
    order must survive; only consecutive ascending UIDs are merged.
    """
    return range_set(runs(uids))


def range_set(ranges: Sequence[tuple[int, int]]) -> bytes:
    """``(low, high)`` ranges as a sequence set: ``a`` or ``a:b``, comma-separated, in the order given."""
    return b",".join(b"%d" % low if low == high else b"%d:%d" % (low, high) for low, high in ranges)


def runs(uids: Sequence[int]) -> list[tuple[int, int]]:
    """*uids* as ``(low, high)`` runs, in the order given, merging only consecutive ascending ones."""
    found: list[list[int]] = []
    for uid in uids:
        if found and uid == found[-1][1] + 1:
            found[-1][1] = uid
        else:
            found.append([uid, uid])
    return [(low, high) for low, high in found]

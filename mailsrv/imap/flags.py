"""Flags as IMAP shows them: canonical case, the order they are listed in, their encoding."""

from __future__ import annotations

from mailsrv.imap.structure import Atom, encode
from mailsrv.store import SYSTEM_FLAGS
from mailsrv.store.memo import Memo

#: The order system flags are listed in (RFC 3501 2.3.2 names them in this order).
_ORDER = ("\\Recent", "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
#: Canonical spelling of the system flags, whatever case the client sent.
_CANONICAL = {f.lower(): f for f in _ORDER}

RECENT = frozenset({"\\Recent"})


def normalize_flag(flag: str) -> str:
    """A client flag as stored: system flags in canonical case (RFC 3501 2.3.2)."""
    return _CANONICAL.get(flag.lower(), flag)


def sort_flags(flags: "frozenset[str] | set[str]") -> list[str]:
    """System flags first in a fixed order, then keywords alphabetically."""
    return [f for f in _ORDER if f in flags] + sorted(f for f in flags if not f.startswith("\\"))


def _encoded(flags: "frozenset[str] | set[str]", _: None = None) -> bytes:
    return encode([Atom(f.encode()) for f in sort_flags(flags)])


_ENCODED: "Memo[frozenset[str], None, bytes]" = Memo(_encoded)


def flags_data(flags: "frozenset[str] | set[str]") -> bytes:
    """``(\\Seen $Label)``: a flag list as sent.

    Remembered per set: the store shares one set among the messages with
    the same flags, so a FETCH FLAGS of a big folder encodes a handful.
    """
    return _ENCODED(flags, None) if isinstance(flags, frozenset) else _encoded(flags)


#: The FLAGS response of SELECT (RFC 3501 7.2.6): the system flags a client may set.
SELECTABLE = flags_data(SYSTEM_FLAGS)

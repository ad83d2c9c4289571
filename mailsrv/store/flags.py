"""Which flags the store keeps: the IMAP system flags and keyword atoms.

``\\Recent`` is per session (RFC 3501 2.3.2) and never stored; every other
system flag maps to a Maildir info letter (:mod:`.maildir`), every keyword
to one of a folder's 26 keyword letters (:mod:`.keywords`).
"""

from __future__ import annotations

from collections.abc import Iterable

from mailsrv.store import maildir
from mailsrv.store.errors import InvalidFlag

#: Flags a client may set; ``\Recent`` is per session and never stored.
SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})
RECENT = "\\Recent"
#: RFC 3501 9: atom-specials may not appear in a keyword (nor may 8-bit octets).
_ATOM_SPECIALS = frozenset('(){ %*"\\]') | {chr(c) for c in range(0x20)} | {"\x7f"}
MAX_KEYWORD_LENGTH = 128


def stored(flags: Iterable[str]) -> frozenset[str]:
    """*flags* as the store keeps them: without ``\\Recent``."""
    return frozenset(flags) - {RECENT}


def keywords_of(flags: Iterable[str]) -> set[str]:
    """The keywords among *flags*; raises :class:`InvalidFlag` for anything unstorable."""
    keywords = set()
    for flag in flags:
        if flag in SYSTEM_FLAGS or flag in maildir.FLAG_LETTERS:
            continue
        if flag.startswith("\\"):
            raise InvalidFlag(f"unknown system flag {flag}")  # RFC 3501 2.3.2
        if not flag or len(flag) > MAX_KEYWORD_LENGTH or not flag.isascii() or _ATOM_SPECIALS.intersection(flag):
            raise InvalidFlag("a keyword must be a short atom")
        keywords.add(flag)
    return keywords

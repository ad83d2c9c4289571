"""Subjects as SORT and THREAD compare them (RFC 5256 2.1) and the i;ascii-casemap collation.

Two messages of one conversation rarely carry the same Subject octets:
``Re:``, ``Fwd:``, ``[list-tag]`` prefixes and ``(fwd)`` trailers come and
go, and RFC 2047 encodes the rest in different ways.  RFC 5256 2.1 strips
them all to a *base subject*; SORT SUBJECT orders by it and THREAD groups
by it.  Whether anything of a reply or forward was stripped is reported
too: THREAD=REFERENCES prefers the original of a conversation as the
parent (RFC 5256 4, step 5).
"""

from __future__ import annotations

import email.header
import re

# RFC 5256 5: subj-blob = "[" *BLOBCHAR "]" *WSP; BLOBCHAR is any CHAR but "[" and "]".
_BLOB = r"\[[^\[\]]*\][ \t]*"
# subj-leader = (*subj-blob subj-refwd) / WSP; subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
_REFWD_LEADER = re.compile(rf"(?:{_BLOB})*(?:re|fwd?)[ \t]*(?:{_BLOB})?:", re.IGNORECASE)
_BLOB_LEADER = re.compile(_BLOB)
_TRAILER = "(fwd)"  # subj-trailer = "(fwd)" / WSP
_FWD_HEADER, _FWD_TRAILER = "[fwd:", "]"  # subj-fwd-hdr, subj-fwd-trl
_SPACES = re.compile(r"[ \t\r\n]+")


def decode_words(value: str) -> str:
    """*value* with its RFC 2047 encoded words decoded; as it was when they are malformed."""
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except (ValueError, LookupError, UnicodeError):
        return value


def casemap(text: str) -> bytes:
    """The i;ascii-casemap key of *text* (RFC 4790 9.2): UTF-8 octets, ASCII letters upper-cased.

    RFC 5256 3 has SORT compare strings with it; ``bytes.upper`` maps
    exactly ``a``..``z`` and leaves every other octet alone.
    """
    return text.encode("utf-8", "surrogateescape").upper()


def base_subject(subject: str | None) -> tuple[str, bool]:
    """``(base subject, whether it was a reply or forward)`` of a raw Subject value (RFC 5256 2.1)."""
    # (1) decode, turn folding and tabs into spaces, collapse runs of them
    text = _SPACES.sub(" ", decode_words(subject or ""))
    refwd = False
    while True:
        # (2) remove every trailing subj-trailer
        while True:
            stripped = text.rstrip(" \t")
            if stripped.lower().endswith(_TRAILER):
                stripped, refwd = stripped[: -len(_TRAILER)], True
            if stripped == text:
                break
            text = stripped
        # (5) repeat (3) and (4) until neither changes the text
        while True:
            before = text
            # (3) remove every leading subj-leader
            while True:
                match = _REFWD_LEADER.match(text)
                if match:
                    text, refwd = text[match.end() :], True
                elif text[:1] in (" ", "\t") and text:
                    text = text[1:]
                else:
                    break
            # (4) a leading subj-blob goes unless nothing would be left
            match = _BLOB_LEADER.match(text)
            if match and text[match.end() :]:
                text = text[match.end() :]
            if text == before:
                break
        # (6) "[fwd: ... ]" around the whole subject: unwrap and start again at (2)
        if text.lower().startswith(_FWD_HEADER) and text.endswith(_FWD_TRAILER):
            text = text[len(_FWD_HEADER) : -len(_FWD_TRAILER)]
            continue
        return text, refwd

"""Lexical rules of the IMAP4rev1 grammar (RFC 3501 9).

Twisted's argument parsers take ``{-1}`` and ``{+5}`` as literal sizes, end
a quoted string at the first ``"`` even when escaped, never unescape
``\\\\``, and decode command names from whatever bytes arrive
(docs/twisted-notes.rst, "IMAP: parsing").  Every error here is a
:class:`~mailsrv.imap.responses.CommandError`, answered ``BAD`` (or, for a
mailbox name, ``NO [CANNOT]``), with a text that never echoes the client's
octets.
"""

from __future__ import annotations

import re

import twisted.mail.imap4  # noqa: F401  (registers the imap4-utf-7 codec)

from mailsrv.imap.responses import CANNOT_NAME, no, syntax

# RFC 3501 9: ATOM-CHAR is any CHAR (7-bit, no CTL) except atom-specials:
# "(" ")" "{" SP "%" "*" DQUOTE "\" "]".
_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+\Z")
# tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR / "]".
_TAG = re.compile(rb"[!#$&',\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~]+\Z")
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR is any TEXT-CHAR but
# quoted-specials, or "\" quoted-specials.  8-bit octets are let through
# for UTF-8 SEARCH strings (RFC 6855 / 9051 allow them).
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_ESCAPE = re.compile(rb'\\(["\\])')
# RFC 9051 5.1: a UTF-8 name holds no control character (C0, DEL, C1), nor U+2028 or U+2029.
_UTF8_NAME = re.compile("[^\x00-\x1f\x7f-\x9f\u2028\u2029]*\\Z")


def is_atom(token: bytes) -> bool:
    """Whether *token* is an RFC 3501 ``atom`` (command names are atoms)."""
    return _ATOM.match(token) is not None


def is_tag(token: bytes) -> bool:
    """Whether *token* is an RFC 3501 ``tag``."""
    return _TAG.match(token) is not None


def read_quoted(line: bytes, pos: int = 0) -> tuple[bytes, int]:
    """``(value, end)`` for the quoted string starting at ``line[pos]``.

    RFC 3501 9: ``\\"`` and ``\\\\`` stand for ``"`` and ``\\``; any other
    backslash, or a missing closing quote, is a syntax error.  *end* is the
    index just past the closing quote.
    """
    match = _QUOTED.match(line, pos)
    if match is None:
        raise syntax(b"Invalid quoted string")
    return _ESCAPE.sub(rb"\1", match.group(1)), match.end()


def mailbox_name(raw: bytes, utf8: bool = False) -> str:
    """The folder name *raw* stands for: canonical modified UTF-7 (RFC 3501 5.1.3), or UTF-8 if *utf8*.

    A UTF8=ACCEPT or IMAP4rev2 session names folders in UTF-8 (RFC 6855 3, RFC 9051 5.1), so its
    ``&`` is an ampersand; a name that is not valid UTF-8, or holds what
    RFC 9051 5.1 keeps out of names, is refused.
    Otherwise raw 8-bit octets, broken ``&...-`` sequences and non-canonical
    spellings (``&AGE-`` for ``a``, which would name one folder two ways)
    are ``NO [CANNOT]``.  The store makes ``INBOX`` case-insensitive.
    """
    try:
        name = raw.decode("utf-8" if utf8 else "imap4-utf-7")
        canonical = _UTF8_NAME.match(name) is not None if utf8 else name.encode("imap4-utf-7") == raw
    except UnicodeError:
        canonical = False
    if not canonical:
        raise no(CANNOT_NAME)
    return name


def encode_mailbox_name(name: str, utf8: bool = False) -> bytes:
    """A folder name as sent: modified UTF-7 (RFC 3501 5.1.3), or UTF-8 if *utf8* (RFC 9051 5.1)."""
    return name.encode("utf-8" if utf8 else "imap4-utf-7")

"""Lexical rules of the IMAP4rev1 grammar (RFC 3501 9) that Twisted gets wrong.

Twisted's argument parsers take ``{-1}`` and ``{+5}`` as literal sizes
(``int()``), end a quoted string at the first ``"`` even when escaped,
never unescape ``\\\\``, and look commands up by decoding whatever bytes
arrive.  The server's own parsers use these functions instead.  Every
error is an ``imap4.IllegalClientResponse`` (answered ``BAD``) or, for a
mailbox name, ``imap4.IllegalMailboxEncoding`` (answered ``NO [CANNOT]``),
with texts that never echo the client's bytes.
"""

from __future__ import annotations

import re

from twisted.mail import imap4

# RFC 3501 9: ATOM-CHAR is any CHAR (7-bit, no CTL) except atom-specials:
# "(" ")" "{" SP "%" "*" DQUOTE "\" "]".
_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+\Z")
# tag = 1*<any ASTRING-CHAR except "+">; ASTRING-CHAR = ATOM-CHAR / "]".
_TAG = re.compile(rb"[!#$&',\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~]+\Z")
# literal = "{" number "}" CRLF, number = 1*DIGIT.  More than 20 digits is
# no size anyone means (and int() refuses very long digit strings).
_LITERAL = re.compile(rb"\{([0-9]{1,20})\}\Z")
# quoted = DQUOTE *QUOTED-CHAR DQUOTE; QUOTED-CHAR is any TEXT-CHAR but
# quoted-specials, or "\" quoted-specials.  8-bit octets are let through
# for UTF-8 SEARCH strings (RFC 6855 / 9051 allow them).
_QUOTED = re.compile(rb'"((?:[^"\\\r\n]|\\["\\])*)"')
_ESCAPE = re.compile(rb'\\(["\\])')


def is_atom(token: bytes) -> bool:
    """Whether *token* is an RFC 3501 ``atom`` (command names are atoms)."""
    return _ATOM.match(token) is not None


def is_tag(token: bytes) -> bool:
    """Whether *token* is an RFC 3501 ``tag``."""
    return _TAG.match(token) is not None


def literal_size(token: bytes) -> int:
    """The octet count of a ``{number}`` literal announcement.

    RFC 3501 9: ``number = 1*DIGIT``, so a sign (``{-1}``, ``{+5}``: the
    latter is LITERAL+, which is not advertised) or spaces are a BAD.
    """
    match = _LITERAL.match(token)
    if match is None:
        raise imap4.IllegalClientResponse("Invalid literal")
    return int(match.group(1))


def read_quoted(line: bytes, pos: int = 0) -> tuple[bytes, int]:
    """``(value, end)`` for the quoted string starting at ``line[pos]``.

    RFC 3501 9: ``\\"`` and ``\\\\`` stand for ``"`` and ``\\``; any other
    backslash, or a missing closing quote, is a syntax error.  *end* is the
    index just past the closing quote.
    """
    match = _QUOTED.match(line, pos)
    if match is None:
        raise imap4.IllegalClientResponse("Invalid quoted string")
    return _ESCAPE.sub(rb"\1", match.group(1)), match.end()


def mailbox_name(raw: bytes) -> bytes:
    """*raw* if it is a mailbox name in canonical modified UTF-7 (RFC 3501 5.1.3).

    Raw 8-bit octets, broken ``&...-`` sequences and non-canonical spellings
    (``&AGE-`` for ``a``, which would name one folder two ways) raise
    ``IllegalMailboxEncoding``, checked here so that Twisted's
    ``_parseMbox`` never sees (and logs a traceback for) such a name.
    """
    try:
        canonical = raw.decode("imap4-utf-7").encode("imap4-utf-7") == raw
    except UnicodeError:
        canonical = False
    if not canonical:
        raise imap4.IllegalMailboxEncoding("invalid mailbox name")
    return raw

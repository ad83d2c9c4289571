"""Undoing a Content-Transfer-Encoding (RFC 2045 6), for IMAP BINARY (RFC 3516).

BINARY sends a part's content as it was before the sender encoded it:
base64 and quoted-printable are decoded, the identity encodings (``7bit``,
``8bit``, ``binary``, or none given) are sent as stored.  Any other
encoding (``x-uuencode``, a typo) is :class:`UnknownEncoding`, which IMAP
answers ``NO [UNKNOWN-CTE]``.

Decoding is done on a body already in memory: part sections are read from
a message loaded whole (bounded by ``limits.imap_max_literal_size`` and
the SMTP message size limit), and the decoded octets are never more than
the encoded ones, so a part costs at most twice the stored message.
Both decoders are the C ones of :mod:`binascii`.
"""

from __future__ import annotations

import binascii
import re

from mailsrv.message.mime import Entity

#: RFC 2045 6.2: no decoding to do.
IDENTITY = frozenset({"7bit", "8bit", "binary"})
_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/]+")


class UnknownEncoding(Exception):
    """A Content-Transfer-Encoding we cannot undo (RFC 3516 4.3: UNKNOWN-CTE)."""


def decode(body: bytes, encoding: str | None) -> bytes:
    """*body* with the transfer *encoding* (a header value, any case) undone."""
    name = (encoding or "7bit").strip().lower()
    if name in IDENTITY:
        return body
    if name == "base64":
        return _base64(body)
    if name == "quoted-printable":
        return binascii.a2b_qp(body)
    raise UnknownEncoding(name)


def _base64(body: bytes) -> bytes:
    """Lenient base64 (RFC 2045 6.8): characters outside the alphabet and padding are ignored.

    A last group of one character carries no whole octet and is dropped,
    so a truncated attachment decodes as far as it goes instead of failing.
    """
    letters = _NOT_BASE64.sub(b"", body)
    if len(letters) % 4 == 1:
        letters = letters[:-1]
    return binascii.a2b_base64(letters + b"=" * (-len(letters) % 4))


def binary_content(entity: Entity, whole_message: bool) -> bytes:
    """The octets of ``BINARY[section]`` for *entity* (RFC 3516 4.2).

    A multipart or ``message/rfc822`` entity is not a leaf: RFC 2045 6.4
    allows it only an identity encoding, so its octets are those of
    ``BODY[section]``.  A leaf's body is decoded.  *whole_message* is the
    empty section, ``BINARY[]``: the header is included, as stored.
    """
    if entity.is_multipart or entity.is_message:
        return entity.raw if whole_message else entity.body
    decoded = decode(entity.body, entity.get("Content-Transfer-Encoding"))
    return entity.header + decoded if whole_message else decoded

"""The header section of a message (RFC 5322 2.2, 3.6), found on the raw octets.

A message's header ends at its first empty line; every field is a name, a
colon and a value that may be folded over several lines.  IMAP sends
headers *as stored* (BODY[HEADER] keeps the empty line, HEADER.FIELDS keeps
each field's folding), so these functions cut the raw bytes instead of
parsing and re-serialising them.
"""

from __future__ import annotations

import re
from typing import BinaryIO

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


def split_header(data: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line; the header keeps that empty line.

    RFC 3501 6.4.5: BODY[HEADER] includes the blank line that ends it.  A
    part that starts with an empty line has an empty header.
    """
    if data.startswith(b"\r\n"):
        return data[:2], data[2:]
    if data.startswith(b"\n"):
        return data[:1], data[1:]
    m = _BLANK_LINE.search(data)
    if m is None:
        return data, b""
    return data[: m.end()], data[m.end() :]


def header_lines(header: bytes) -> list[tuple[str, bytes]]:
    """The header fields as ``(lower-case name, raw bytes incl. folding)``."""
    fields: list[tuple[str, bytes]] = []
    for line in header.splitlines(keepends=True):
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
        else:
            name = line.split(b":", 1)[0].strip().decode("ascii", "replace").lower()
            fields.append((name, line))
    return fields


#: The trace field final delivery puts on top (RFC 5321 4.4); every message we take begins with ours.
RETURN_PATH = b"return-path:"


def return_path_line(sender: str, end: bytes = b"\n") -> bytes:
    """The ``Return-Path`` line for the reverse-path *sender* (``""``: ``<>``), ending in *end* (disk form: LF).

    *sender* is UTF-8 after SMTPUTF8 (RFC 6531 4.3, RFC 6532 3.7)."""
    return b"Return-Path: <" + sender.encode() + b">" + end


def past_return_path(stored: BinaryIO) -> BinaryIO:
    """*stored* (a disk-form message file) positioned after a leading ``Return-Path`` line, if any.

    RFC 5321 4.4: the Return-Path is added at final delivery, and a message
    sent on SHOULD NOT carry one.  Ours is the first line of every message
    we took (our own trace, not the client's), so relaying skips it there
    and nowhere else.  The line is short: one ``readline`` of a bounded
    length finds it.
    """
    first = stored.readline(1024)
    if not first.lower().startswith(RETURN_PATH) or not first.endswith(b"\n"):
        stored.seek(0)
    return stored

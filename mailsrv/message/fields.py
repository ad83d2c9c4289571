"""Header fields as a receiving client reads them: what submission checks and completes.

:mod:`.headers` cuts stored messages for IMAP, taking any line end; a
check that decides who a message claims to be from must read it the way
RFC 5322 2.2 defines it instead: lines end in CRLF only, a field may be
folded, and its value is unfolded before it is parsed (2.2.3).  A bare CR
therefore stays inside the field it is in, where it makes the value
unparseable (a reader that took it as a line end would see another
field).  Everything here blocks on a spooled body; run it in the disk pool.
"""

from __future__ import annotations

import re
from email import errors, policy

from mailsrv.message import wire
from mailsrv.message.body import Body

_FOLD = re.compile(rb"\r\n(?=[ \t])")
_ATEXT = rb"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"  # RFC 5322 3.2.3
_ADDR_SPEC = rb"(%s(?:\.%s)*@%s(?:\.%s)*)" % ((_ATEXT,) * 4)  # dot-atom "@" dot-atom
#: ``addr``, ``<addr>``, ``Words <addr>`` or ``"Quoted" <addr>``: the From: of most mail, read
#: without the stdlib's parser (0.3 ms a value).  Anything else (comments, groups,
#: quoted local parts, encoded or 8-bit names) takes the parser.
_SIMPLE_MAILBOX = re.compile(
    rb"%s\Z|(?:(?:%s(?: %s)*|\"[ !#-\[\]-~]+\") ?)?<%s>\Z" % (_ADDR_SPEC, _ATEXT, _ATEXT, _ADDR_SPEC)
)


def read_header(body: Body) -> bytes:
    """The header section of *body* in wire form, each field CRLF-ended, without the empty line.

    Reads no further than the empty line that ends it (the whole body when
    there is none).  In the disk form the writer makes, that line is the
    first ``\\n\\n``.
    """
    return wire.to_wire(disk_header(body))


def field_spans(body: Body) -> list[tuple[int, int, bytes]]:
    """``(offset, length, field)`` in disk octets of every header field of *body*, folded lines included.

    *field* is its disk-form text (LF-ended lines), for a check that
    removes a field by its value (:class:`mailsrv.policy.Verdict` ``drop``).
    """
    spans: list[tuple[int, int, bytes]] = []
    offset = 0
    for line in _lf_lines(disk_header(body)):
        if line[:1] in (b" ", b"\t") and spans:
            start, length, field = spans[-1]
            spans[-1] = (start, length + len(line), field + line)
        else:
            spans.append((offset, len(line), line))
        offset += len(line)
    return spans


def _lf_lines(data: bytes) -> list[bytes]:
    """*data* cut after each LF (a bare CR stays inside its line, as RFC 5322 2.2 wants)."""
    lines = data.split(b"\n")
    return [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def disk_header(body: Body) -> bytes:
    """The header section of *body* in its disk form, each field LF-ended, without the empty line."""
    data = bytearray()
    with body.open() as f:
        while chunk := f.read(wire.CHUNK):
            searched = max(len(data) - 1, 0)
            data += chunk
            end = data.find(b"\n\n", searched)
            if end >= 0:
                del data[end + 1 :]
                break
    if data[:1] == b"\n":  # an empty header
        return b""
    return bytes(data)


def field_values(header: bytes, name: bytes) -> list[bytes]:
    """The unfolded values of every field *name* (lower case) of the wire-form *header*, in order.

    RFC 5322 3.6 obsolete syntax allows space before the colon; leading and
    trailing space of a value is not part of it.
    """
    values = []
    for line in _FOLD.sub(b"", header).split(b"\r\n"):
        field, colon, value = line.partition(b":")
        if colon and field.rstrip(b" \t").lower() == name:
            values.append(value.strip(b" \t"))
    return values


def mailbox_list(value: bytes) -> list[str] | None:
    """The ``local@domain`` of every mailbox in a ``From:`` value (RFC 5322 3.6.2), or ``None``.

    ``None`` unless the value parses cleanly: a parser that has to guess
    may guess otherwise than the recipient's mail client, and the address
    the recipient sees is the one that must be checked.  Obsolete but
    unambiguous syntax (a period in a display name, a route) is accepted;
    an encoded word is only a display name.  Groups are flattened.
    """
    simple = _SIMPLE_MAILBOX.match(value)
    if simple is not None:
        return [(simple.group(1) or simple.group(2)).decode("ascii")]
    return parsed_mailbox_list(value)


def parsed_mailbox_list(value: bytes) -> list[str] | None:
    """:func:`mailbox_list` by the stdlib's parser alone (what its fast path must agree with)."""
    try:
        text = value.decode("utf-8")  # display names in raw UTF-8 are common; other 8-bit is not text
    except UnicodeDecodeError:
        return None
    try:
        parsed = policy.default.header_factory("from", text)
        addresses = parsed.addresses
    except Exception:  # the stdlib parser raises IndexError, ValueError... on some garbage
        return None
    if any(not isinstance(defect, errors.ObsoleteHeaderDefect) for defect in parsed.defects):
        return None
    if not addresses or any(not a.username or not a.domain for a in addresses):
        return None
    return [f"{a.username}@{a.domain}" for a in addresses]

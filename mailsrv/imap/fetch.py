"""Render one message's FETCH response (RFC 3501 6.4.5, 7.4.2).

Replaces Twisted's ``spew_*`` methods, which answer a partial
``BODY[]<o.n>`` with ``BODY[]<o.n>`` and the whole section (twisted #5613),
rebuild headers from a dict, and never tell the mailbox about ``.PEEK``.
Every section here is a slice of the stored bytes.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from mailsrv.imap.message import Message
from mailsrv.imap.mime import Entity, header_lines
from mailsrv.imap.structure import Atom, body_structure, encode, envelope

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()


def needs_seen(query: Sequence[Any]) -> bool:
    """Whether the query fetches body text without .PEEK (RFC 3501 6.4.5)."""
    return any(
        item.type in ("rfc822", "rfc822text") or (item.type == "body" and not item.peek and _has_section(item))
        for item in query
    )


class _Flags:
    """A FLAGS fetch item the client did not ask for."""

    type = "flags"


def with_flags(query: Sequence[Any]) -> list[Any]:
    """*query* plus FLAGS: a FETCH that sets \\Seen reports the new flags."""
    items = list(query)
    if not any(item.type == "flags" for item in items):
        items.append(_Flags())
    return items


def _has_section(item: Any) -> bool:
    """``BODY[...]`` as opposed to ``BODY`` (the non-extended structure)."""
    return bool(item.empty or item.header or item.text or item.mime)


def internaldate(epoch: float) -> bytes:
    """``"17-Jul-1996 02:44:25 +0000"`` (RFC 3501 9 date-time), in UTC."""
    t = time.gmtime(epoch)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, _MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
    )


def _header_subset(entity: Entity, fields: Sequence[bytes], negate: bool) -> bytes:
    """HEADER.FIELDS[.NOT]: matching raw lines plus the closing empty line."""
    wanted = {f.decode("ascii", "replace").lower() for f in fields}
    kept = [raw for name, raw in header_lines(entity.header) if (name in wanted) != negate]
    return b"".join(kept) + b"\r\n"


def _section(message: Message, item: Any) -> tuple[bytes, bytes]:
    """``(section spec, octets)`` for a ``BODY[...]`` item."""
    path = tuple(item.part or ())
    spec = b".".join(b"%d" % (p + 1) for p in path)
    entity = message.entity.resolve(path)
    if item.mime:
        return spec + b".MIME", entity.header
    if path and (item.header or item.text) and entity.is_message:
        entity = entity.embedded  # 1.HEADER / 1.TEXT of a message/rfc822 part
    dot = b"." if spec else b""
    if item.text:
        return spec + dot + b"TEXT", entity.body
    if item.header:
        h = item.header
        if h.negate and not h.fields:
            return spec + dot + b"HEADER", entity.header
        name = b"HEADER.FIELDS.NOT" if h.negate else b"HEADER.FIELDS"
        spec += dot + name + b" " + encode([Atom(f) for f in h.fields])
        return spec, _header_subset(entity, h.fields, h.negate)
    return spec, (entity.body if path else entity.raw)


def _body(message: Message, item: Any) -> bytes:
    """``BODY[section]<origin>`` and its literal, slicing partial fetches."""
    try:
        spec, data = _section(message, item)
    except IndexError:
        # No such part: NIL, as Dovecot and Cyrus answer (RFC 3501 is silent).
        return b"BODY[" + b".".join(b"%d" % (p + 1) for p in item.part) + b"] NIL"
    label = b"BODY[" + spec + b"]"
    if item.partialBegin is not None:
        # RFC 3501 6.4.5: "BODY[]<0.2048>" is answered as "BODY[]<0>"
        # with at most the requested octets from that origin.
        start = item.partialBegin
        data = data[start : start + item.partialLength]
        label += b"<%d>" % start
    return label + b" " + encode_literal(data)


def render(seq: int, message: Message, query: Sequence[Any], with_uid: bool) -> bytes:
    """The whole ``* seq FETCH (...)`` response line for *message*.

    *with_uid* adds UID when the client did not ask (UID FETCH, 6.4.8).
    """
    items: list[bytes] = []
    for item in query:
        kind = item.type
        if kind == "uid":
            items.append(b"UID %d" % message.uid)
        elif kind == "flags":
            items.append(b"FLAGS " + encode([Atom(f.encode()) for f in message.getFlags()]))
        elif kind == "internaldate":
            items.append(b"INTERNALDATE " + internaldate(message.internaldate))
        elif kind == "rfc822size":
            items.append(b"RFC822.SIZE %d" % message.size)
        elif kind == "envelope":
            items.append(b"ENVELOPE " + encode(envelope(message.entity)))
        elif kind == "bodystructure":
            items.append(b"BODYSTRUCTURE " + encode(body_structure(message.entity, True)))
        elif kind == "rfc822":
            items.append(b"RFC822 " + encode_literal(message.entity.raw))
        elif kind == "rfc822header":
            items.append(b"RFC822.HEADER " + encode_literal(message.entity.header))
        elif kind == "rfc822text":
            items.append(b"RFC822.TEXT " + encode_literal(message.entity.body))
        elif _has_section(item):
            items.append(_body(message, item))
        else:
            items.append(b"BODY " + encode(body_structure(message.entity, False)))
    if with_uid and not any(item.type == "uid" for item in query):
        items.insert(0, b"UID %d" % message.uid)
    return b"* %d FETCH (" % seq + b" ".join(items) + b")\r\n"


def encode_literal(data: bytes) -> bytes:
    """Octets as an IMAP literal ``{n}CRLF...`` (RFC 3501 4.3)."""
    return b"{%d}\r\n" % len(data) + data

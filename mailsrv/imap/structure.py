"""ENVELOPE and BODYSTRUCTURE (RFC 3501 7.4.2) and the IMAP data encoder.

Written here rather than taken from ``twisted.mail.imap4`` because Twisted's
helpers report the whole message size as the body size, lower-case
parameter values (boundaries, file names), break on parameters without
``=``, and encode with ASCII only (an 8-bit header raises).  Values here are
the raw header bytes, as RFC 3501 wants them (no RFC 2047 decoding).
"""

from __future__ import annotations

import email.utils
import re
from typing import Any, Sequence

from mailsrv.message.mime import Entity

#: Strings that can go out as an IMAP quoted string (RFC 3501 9: QUOTED-CHAR).
_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]{0,1000}\Z")


class Atom(bytes):
    """Bytes sent verbatim, unquoted (NIL-free atoms such as flag names)."""


class Bodies(list):  # type: ignore[type-arg]
    """Items with no space between (RFC 3501 9): a multipart's ``1*body``,
    and inside parentheses an envelope address list's ``1*address``."""


def _raw(value: str | None) -> bytes | None:
    """A header value back to the octets it was parsed from.

    Undecodable octets come back from their surrogates; a character the
    parser made of them (8-bit header text) goes as UTF-8, as :func:`encode`
    sends any string, rather than failing the whole FETCH.
    """
    if value is None:
        return None
    return value.encode("utf-8", "surrogateescape")


def encode(item: Any) -> bytes:
    """Encode nested lists, ints, None and strings as IMAP data (RFC 3501 4).

    Strings become quoted strings when they may, literals otherwise
    (8-bit, CR/LF, or long), so any header survives the trip.
    """
    if item is None:
        return b"NIL"
    if isinstance(item, Atom):
        return bytes(item)
    if isinstance(item, Bodies):
        return b"".join(encode(i) for i in item)
    if isinstance(item, bool):
        raise TypeError("booleans have no IMAP encoding")
    if isinstance(item, int):
        return b"%d" % item
    if isinstance(item, str):
        item = item.encode("utf-8", "surrogateescape")
    if isinstance(item, bytes):
        return quoted(item) if _QUOTABLE.match(item) else literal(item)
    return b"(" + b" ".join(encode(i) for i in item) + b")"


def quoted(data: bytes) -> bytes:
    """*data* as a quoted string (RFC 3501 9), which the caller checked it may be."""
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def literal(data: bytes) -> bytes:
    """Octets as an IMAP literal ``{n}CRLF...`` (RFC 3501 4.3), NUL sent as 0x80.

    A literal's CHAR8 excludes NUL (RFC 3501 9), yet a message stored from
    a literal8 (RFC 3516) or a binary delivery holds NULs; clients reading
    ``BODY[]`` get 0x80 in their place, as Dovecot sends, so the length and
    every other octet stay as stored.  Only ``BINARY[]`` sends them, in a literal8.
    """
    return b"{%d}\r\n" % len(data) + without_nul(data)


def without_nul(data: bytes) -> bytes:
    """*data* with each NUL octet replaced by 0x80 (the same object when it has none)."""
    return data.replace(b"\0", b"\x80")


def _groups(value: str) -> list[tuple[str | None, str]]:
    """Split an address list into runs of plain addresses and groups.

    RFC 5322 3.4: ``group = display-name ":" [group-list] ";"``.  The stdlib
    ``getaddresses`` silently drops the group syntax, so the header is cut
    here first: ``(group name or None, the addresses' text)`` in order.  A
    ``:``, ``;`` or ``,`` counts only outside quoted strings, comments and
    ``<...>`` (where ``:`` ends a source route).  An unterminated group runs
    to the end of the header.
    """
    segments: list[tuple[str | None, str]] = []
    group: str | None = None
    start = name_start = 0
    quoted = angle = False
    comment = 0
    i = 0
    while i < len(value):
        c = value[i]
        if quoted or comment:
            if c == "\\":
                i += 1  # quoted-pair
            elif quoted and c == '"':
                quoted = False
            elif comment and c in "()":
                comment += 1 if c == "(" else -1
        elif c == '"':
            quoted = True
        elif c == "(":
            comment = 1
        elif c in "<>":
            angle = c == "<"
        elif angle:
            pass
        elif c == "," and group is None:
            name_start = i + 1
        elif c == ":" and group is None:
            segments.append((None, value[start:name_start]))
            group, start = value[name_start:i], i + 1
        elif c == ";" and group is not None:
            segments.append((group, value[start:i]))
            group, start = None, i + 1
            name_start = start
        i += 1
    segments.append((group, value[start:]))
    return segments


def _phrase(text: str) -> str:
    """A group's display-name without its quoting (as Dovecot reports it)."""
    return re.sub(r'"((?:[^"\\]|\\.)*)"', lambda m: re.sub(r"\\(.)", r"\1", m.group(1)), text.strip())


def _addresses(entity: Entity, name: str) -> list[Bodies] | None:
    """An envelope address list: ``(name adl mailbox host)`` per address.

    RFC 3501 7.4.2: a group is announced by an address with NIL host and
    the group name as mailbox, and closed by one with NIL mailbox and NIL
    host, so ``undisclosed-recipients:;`` survives as two markers.
    """
    value = entity.get(name)
    if not value:
        return None
    result: list[list[Any]] = []
    for group, text in _groups(value):
        if group is not None:
            result.append([None, None, _raw(_phrase(group)), None])
        for display, addr in email.utils.getaddresses([text]):
            if not addr and not display:
                continue
            local, _, host = addr.rpartition("@") if "@" in addr else (addr, "", "")
            result.append([_raw(display) or None, None, _raw(local) or None, _raw(host) or None])
        if group is not None:
            result.append([None, None, None, None])
    return [Bodies(result)] if result else None


def envelope(entity: Entity) -> list[Any]:
    """The ENVELOPE fields of a message, in RFC 3501 7.4.2 order."""
    from_ = _addresses(entity, "from")
    return [
        _raw(entity.get("date")),
        _raw(entity.get("subject")),
        from_,
        _addresses(entity, "sender") or from_,  # defaults to From (7.4.2)
        _addresses(entity, "reply-to") or from_,
        _addresses(entity, "to"),
        _addresses(entity, "cc"),
        _addresses(entity, "bcc"),
        _raw(entity.get("in-reply-to")),
        _raw(entity.get("message-id")),
    ]


def _params(pairs: Sequence[tuple[str, Any]] | None) -> list[bytes] | None:
    """A body parameter list ``("NAME" "value" ...)`` or NIL."""
    flat: list[bytes] = []
    for key, value in pairs or ():
        if isinstance(value, tuple):  # RFC 2231 (charset, language, value)
            value = value[2]
        flat += [_raw(key.upper()) or b"", _raw(str(value)) or b""]
    return flat or None


def _disposition(entity: Entity) -> list[Any] | None:
    """``("ATTACHMENT" ("FILENAME" "x"))`` from Content-Disposition, or NIL."""
    if entity.get("content-disposition") is None:
        return None
    params = entity.fields.get_params(header="content-disposition") or []
    kind, _ = params[0]
    return [_raw(kind.upper()), _params(params[1:])]


def _extension(entity: Entity) -> list[Any]:
    """Disposition, language and location: the tail every body type shares."""
    return [
        _disposition(entity),
        _raw(entity.get("content-language")),
        _raw(entity.get("content-location")),
    ]


def body_structure(entity: Entity, extended: bool) -> list[Any]:
    """BODYSTRUCTURE (*extended*) or BODY of *entity* (RFC 3501 7.4.2)."""
    main, sub = entity.content_type
    if entity.is_multipart:
        result: list[Any] = [Bodies(body_structure(p, extended) for p in entity.parts), _raw(sub.upper())]
        if extended:
            result.append(_params(entity.fields.get_params()[1:]))
            result += _extension(entity)
        return result
    params = entity.fields.get_params()
    type_params = _params(params[1:]) if entity.get("content-type") else None
    if main == "text" and type_params is None:
        type_params = [b"CHARSET", b"US-ASCII"]  # RFC 2045 5.2 default
    result = [
        _raw(main.upper()),
        _raw(sub.upper()),
        type_params,
        _raw(entity.get("content-id")),
        _raw(entity.get("content-description")),
        _raw((entity.get("content-transfer-encoding") or "7BIT").upper()),
        len(entity.body),
    ]
    if entity.is_message:
        inner = entity.embedded
        result += [envelope(inner), body_structure(inner, extended), entity.line_count()]
    elif main == "text":
        result.append(entity.line_count())
    if extended:
        result.append(_raw(entity.get("content-md5")))
        result += _extension(entity)
    return result

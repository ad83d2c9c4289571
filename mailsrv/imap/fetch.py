"""Render one message's FETCH response (RFC 3501 6.4.5, 7.4.2), as pieces to stream.

Replaces Twisted's ``spew_*`` methods, which answer a partial
``BODY[]<o.n>`` with the whole section (twisted #5613), rebuild headers from
a dict, never tell the mailbox about ``.PEEK``, and hold every message they
send in memory (docs/twisted-notes.rst, "IMAP: FETCH").

Each message is read only as far as its items need (:func:`needs`):
nothing for FLAGS/UID/INTERNALDATE/RFC822.SIZE; the header alone for
ENVELOPE and header sections; the whole message for BODYSTRUCTURE and part
sections and BINARY (RFC 3516, decoded by :mod:`mailsrv.message.transfer`,
which says what bounds its memory).  ``BODY[]``, ``RFC822``, ``BODY[TEXT]`` and their partials are
never loaded: :func:`render` gives a :class:`Span` of the stored file and the
server streams it with back-pressure.  Every section is a slice of the
stored octets.  ENVELOPE, BODYSTRUCTURE and BODY (:data:`CACHED_ITEMS`)
come ready-made from the user's message cache when the caller has them
(``needs(items, cached=True)``), so FETCH ENVELOPE opens no file.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Sequence, Union

from mailsrv.imap.fetchatt import FetchItem, Section
from mailsrv.imap.flags import flags_data
from mailsrv.imap.responses import no
from mailsrv.imap.structure import body_structure, encode, envelope, literal, without_nul
from mailsrv.message.headers import header_lines
from mailsrv.message.mime import Entity
from mailsrv.message.transfer import UnknownEncoding, binary_content
from mailsrv.message.wire import wire_chunks
from mailsrv.store.message import MessageInfo

_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
#: A header section longer than this is not a header anyone means; reading stops there.
MAX_HEADER = 1024 * 1024


class Need(enum.IntEnum):
    """How much of the stored message a FETCH needs."""

    NOTHING = 0
    #: Spans of the file only (BODY[], RFC822 and their partials).
    FILE = 1
    HEADER = 2
    WHOLE = 3


#: A message as one session sees it: its flags include the session's ``\\Recent``.
#: The store's own :class:`MessageInfo` (uid, key, flags, size, internaldate,
#: modseq), copied only for a message the session holds as recent: SEARCH and
#: FETCH take one per message per command, and making 100,000 tuples cost
#: more than the rest of ``UID FETCH 1:* (FLAGS)``.
View = MessageInfo


@dataclass(frozen=True)
class Span:
    """*length* octets of the message's wire form from *offset*, streamed from its file."""

    offset: int
    length: int


Piece = Union[bytes, Span]
#: Items the message cache answers (:mod:`.msgcache`) -> the cache column holding their response.
CACHED_ITEMS = {"ENVELOPE": "envelope", "BODYSTRUCTURE": "bodystructure", "BODY": "body"}


def needs(items: Sequence[FetchItem], cached: bool = False) -> Need:
    """What :func:`render` needs loaded for *items*; *cached*: :data:`CACHED_ITEMS` come from the cache."""
    need = Need.NOTHING
    for item in items:
        if cached and item.name in CACHED_ITEMS:
            continue
        if item.name in ("BODYSTRUCTURE", "BODY", "BINARY[]", "BINARY.SIZE") or (
            item.section is not None and item.section.part
        ):
            return Need.WHOLE
        if item.name in ("ENVELOPE", "RFC822.HEADER", "RFC822.TEXT") or (
            item.section is not None and item.section.text
        ):
            need = Need.HEADER
        elif item.name == "RFC822" or item.section is not None:
            need = max(need, Need.FILE)
    return need


def with_item(items: Sequence[FetchItem], name: str) -> list[FetchItem]:
    """*items* plus *name*: FLAGS when a FETCH sets \\Seen (RFC 3501 6.4.5), MODSEQ with CHANGEDSINCE (RFC 7162 3.1.4)."""
    out = list(items)
    if not any(item.name == name for item in out):
        out.append(FetchItem(name))
    return out


def read_header(stored: BinaryIO) -> bytes:
    """The wire-form header section (with its empty line) of a stored message."""
    stored.seek(0)
    data = b""
    for chunk in wire_chunks(stored, 16 * 1024):
        data += chunk
        if data.startswith(b"\r\n") or b"\r\n\r\n" in data or len(data) > MAX_HEADER:
            break
    return Entity(data).header


def read_whole(stored: BinaryIO) -> bytes:
    """The whole message in wire form (for BODYSTRUCTURE and part sections)."""
    stored.seek(0)
    return b"".join(wire_chunks(stored))


def internaldate(epoch: float) -> bytes:
    """``"17-Jul-1996 02:44:25 +0000"`` (RFC 3501 9 date-time), in UTC."""
    t = time.gmtime(epoch)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, _MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
    )


def _header_subset(header: bytes, fields: Sequence[bytes], negate: bool) -> bytes:
    """HEADER.FIELDS[.NOT]: the matching raw lines plus the closing empty line."""
    wanted = {f.decode("ascii", "replace").lower() for f in fields}
    kept = [raw for name, raw in header_lines(header) if (name in wanted) != negate]
    return b"".join(kept) + b"\r\n"


def _clip(length: int, partial: tuple[int, int] | None) -> tuple[int, int]:
    """``(offset, length)`` within a section of *length* octets after a partial ``<o.n>``."""
    if partial is None:
        return 0, length
    start, count = partial
    return start, max(0, min(count, length - start))


class _Message:
    """What :func:`render` knows of one message: its view, what was loaded, what the cache gave."""

    def __init__(self, view: View, header: bytes | None, whole: bytes | None, cached: dict[str, bytes]) -> None:
        self.view = view
        self.cached = cached
        self.entity = Entity(whole) if whole is not None else None
        self.header = self.entity.header if self.entity is not None else header

    def header_entity(self) -> Entity:
        """An entity with the header only (ENVELOPE needs no body)."""
        return self.entity if self.entity is not None else Entity(self.header or b"")


def _section_data(message: _Message, section: Section) -> bytes | Span | None:
    """The octets of ``BODY[section]``: bytes, a span of the file, or ``None`` (no such part)."""
    text, size = section.text, message.view.size
    if not section.part:
        if text == "":
            return Span(0, size)
        assert message.header is not None
        if text == "TEXT":
            return Span(len(message.header), size - len(message.header))
        if text == "HEADER":
            return message.header
        return _header_subset(message.header, section.fields, text.endswith(".NOT"))
    assert message.entity is not None
    try:
        entity = message.entity.resolve(tuple(p - 1 for p in section.part))
    except IndexError:
        return None
    if text == "MIME":
        return entity.header
    if text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT") and entity.is_message:
        entity = entity.embedded  # 1.HEADER / 1.TEXT of a message/rfc822 part
    if text == "TEXT":
        return entity.body
    if text == "HEADER":
        return entity.header
    if text:
        return _header_subset(entity.header, section.fields, text.endswith(".NOT"))
    return entity.body


def _body(message: _Message, item: FetchItem) -> Iterator[Piece]:
    """``BODY[section]<origin>`` and its literal."""
    assert item.section is not None
    yield from _sliced(b"BODY[" + item.section.spec() + b"]", item, _section_data(message, item.section))


def _sliced(label: bytes, item: FetchItem, data: bytes | Span | None, binary: bool = False) -> Iterator[Piece]:
    """*label* and *data* cut to the item's partial, as a literal; a *binary* one with NUL as a literal8."""
    if data is None:
        # No such part: NIL, as Dovecot and Cyrus answer (RFC 3501 is silent).
        yield label + b" NIL"
        return
    if item.partial is not None:
        # RFC 3501 6.4.5: "BODY[]<0.2048>" is answered as "BODY[]<0>" with
        # at most the requested octets from that origin.
        label += b"<%d>" % item.partial[0]
    if isinstance(data, Span):
        start, length = _clip(data.length, item.partial)
        yield label + b" {%d}\r\n" % length
        if length:
            yield Span(data.offset + start, length)
        return
    start, length = _clip(len(data), item.partial)
    piece = data[start : start + length]
    if binary and b"\0" in piece:
        yield label + b" ~{%d}\r\n" % len(piece) + piece
    else:
        yield label + b" " + literal(piece)


def _binary_data(message: _Message, section: Section) -> bytes | None:
    """The decoded octets of ``BINARY[section]``, or ``None`` (no such part).

    An encoding we cannot undo fails the whole FETCH with ``NO
    [UNKNOWN-CTE]`` (RFC 3516 4.3), before anything of this message is sent.
    """
    assert message.entity is not None
    try:
        entity = message.entity.resolve(tuple(p - 1 for p in section.part))
        return binary_content(entity, whole_message=not section.part)
    except IndexError:
        return None
    except UnknownEncoding:
        raise no(b"[UNKNOWN-CTE] Cannot decode the part's Content-Transfer-Encoding") from None


def _binary(message: _Message, item: FetchItem) -> Iterator[Piece]:
    """``BINARY[section]<origin>`` (RFC 3516 4.3): the origin counts decoded octets; ``~{n}`` only with a NUL."""
    assert item.section is not None
    label = b"BINARY[" + item.section.spec() + b"]"
    yield from _sliced(label, item, _binary_data(message, item.section), binary=True)


def _binary_size(message: _Message, item: FetchItem) -> bytes:
    """``BINARY.SIZE[section] n``: what ``BINARY[section]`` would send; 0 for no such part."""
    assert item.section is not None
    data = _binary_data(message, item.section)
    return b"BINARY.SIZE[" + item.section.spec() + b"] %d" % len(data or b"")


#: The items answered from the view alone, each by how it is answered.
_FROM_VIEW: dict[str, Callable[[View], bytes]] = {
    "UID": lambda view: b"UID %d" % view.uid,
    "FLAGS": lambda view: b"FLAGS " + flags_data(view.flags),
    "MODSEQ": lambda view: b"MODSEQ (%d)" % view.modseq,
    "INTERNALDATE": lambda view: b"INTERNALDATE " + internaldate(view.internaldate),
    "RFC822.SIZE": lambda view: b"RFC822.SIZE %d" % view.size,
}


def _item(message: _Message, item: FetchItem) -> Iterator[Piece]:
    view, name = message.view, item.name
    column = CACHED_ITEMS.get(name)
    from_view = _FROM_VIEW.get(name)
    if column is not None and column in message.cached:
        yield name.encode() + b" " + message.cached[column]
    elif from_view is not None:
        yield from_view(view)
    elif name == "ENVELOPE":
        yield b"ENVELOPE " + encode(envelope(message.header_entity()))
    elif name in ("BODYSTRUCTURE", "BODY"):
        assert message.entity is not None
        yield name.encode() + b" " + encode(body_structure(message.entity, name == "BODYSTRUCTURE"))
    elif name == "RFC822":
        yield b"RFC822 {%d}\r\n" % view.size
        if view.size:
            yield Span(0, view.size)
    elif name == "RFC822.HEADER":
        assert message.header is not None
        yield b"RFC822.HEADER " + literal(message.header)
    elif name == "RFC822.TEXT":
        assert message.header is not None
        length = view.size - len(message.header)
        yield b"RFC822.TEXT {%d}\r\n" % length
        if length:
            yield Span(len(message.header), length)
    elif name == "BINARY[]":
        yield from _binary(message, item)
    elif name == "BINARY.SIZE":
        yield _binary_size(message, item)
    else:
        yield from _body(message, item)


def render(
    seq: int, view: View, items: Sequence[FetchItem], with_uid: bool, header: bytes | None = None,
    whole: bytes | None = None, cached: dict[str, bytes] | None = None,
) -> list[Piece]:
    """The ``* seq FETCH (...)`` response for one message, as bytes and spans.

    *header* or *whole* (wire form) must be given as :func:`needs` says;
    *cached* holds the cached responses of :data:`CACHED_ITEMS` by column.
    *with_uid* adds UID when the client did not ask for it (UID FETCH, RFC
    3501 6.4.8).
    """
    return _merge(_pieces(seq, _Message(view, header, whole, cached or {}), items, with_uid))


def render_known(seq: int, view: View, items: Sequence[FetchItem], with_uid: bool,
                 cached: dict[str, bytes] | None = None) -> bytes:
    """:func:`render` for items that need no file (:func:`needs` says ``NOTHING``): the response as one string.

    Without the generators of the general case: ``UID FETCH 1:* (FLAGS)``
    of 100,000 messages makes one of these per message.
    """
    words = [b"UID %d" % view.uid] if with_uid and not any(item.name == "UID" for item in items) else []
    for item in items:
        column = CACHED_ITEMS.get(item.name)
        if cached is not None and column in cached:
            words.append(item.name.encode() + b" " + cached[column])
        else:
            words.append(_FROM_VIEW[item.name](view))
    return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(words))


def _pieces(seq: int, message: _Message, items: Sequence[FetchItem], with_uid: bool) -> list[Piece]:
    pieces: list[Piece] = [b"* %d FETCH (" % seq]
    if with_uid and not any(item.name == "UID" for item in items):
        pieces.append(b"UID %d " % message.view.uid)
    for n, item in enumerate(items):
        if n:
            pieces.append(b" ")
        pieces.extend(_item(message, item))
    pieces.append(b")\r\n")
    return pieces


def _merge(pieces: list[Piece]) -> list[Piece]:
    """Join neighbouring bytes so a response goes out in as few writes as it can."""
    out: list[Piece] = []
    for piece in pieces:
        if isinstance(piece, bytes) and out and isinstance(out[-1], bytes):
            out[-1] += piece
        else:
            out.append(piece)
    return out


def span_chunks(stored: BinaryIO, span: Span) -> Iterator[bytes]:
    """The octets of *span* from the stored file, exactly ``span.length`` of them.

    A file shorter than its recorded size (edited behind our back) is padded
    with spaces, so the literal the client was promised stays in step.  A
    span is always a plain literal's content, so NUL goes out as 0x80
    (:func:`~mailsrv.imap.structure.literal`).
    """
    stored.seek(0)
    skip, left = span.offset, span.length
    for chunk in wire_chunks(stored):
        if skip >= len(chunk):
            skip -= len(chunk)
            continue
        piece = chunk[skip : skip + left]
        skip = 0
        left -= len(piece)
        yield without_nul(piece)
        if not left:
            return
    if left:
        yield b" " * left

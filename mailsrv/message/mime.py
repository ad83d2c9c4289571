"""Byte-exact MIME entities: where each header, body and part starts and ends.

IMAP returns sections of a message *as stored* (RFC 3501 6.4.5: BODY[1.2],
BODY[HEADER], BODY[1.MIME] ...), and clients check them against
RFC822.SIZE and BODYSTRUCTURE sizes.  The stdlib ``email`` package
re-serialises what it parses, so it is used here only to read header
*values*; where each header, body and part starts and ends is found on the
raw bytes, so every section we send is a slice of the stored file.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from email.message import Message as EmailMessage
from functools import cached_property

from mailsrv.message.headers import split_header

_HEADER_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def split_multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The raw body parts between the delimiter lines (RFC 2046 5.1.1).

    The CRLF before each delimiter belongs to the delimiter, not the part.
    """
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary) + rb"(--)?[ \t]*(?=\r?\n|\Z)\r?\n?"
    )
    parts: list[bytes] = []
    start = None
    for m in delimiter.finditer(body):
        if start is not None:
            parts.append(body[start : m.start()])
        if m.group(1):
            return parts
        start = m.end()
    if start is not None:
        parts.append(body[start:])  # no close delimiter: keep what we have
    return parts


class Entity:
    """One MIME entity: a whole message, a body part, or an embedded message.

    *default_type* is what RFC 2045/2046 imply when Content-Type is absent:
    ``text/plain``, or ``message/rfc822`` inside ``multipart/digest``.
    """

    def __init__(self, raw: bytes, default_type: str = "text/plain") -> None:
        self.raw = raw
        self.header, self.body = split_header(raw)
        self._default_type = default_type

    @cached_property
    def fields(self) -> EmailMessage:
        """Header values, decoded by the stdlib parser (compat32, lazily)."""
        msg = _HEADER_PARSER.parsebytes(self.header)
        msg.set_default_type(self._default_type)
        return msg

    def get(self, name: str) -> str | None:
        """One header value, unfolded, raw (8-bit kept as surrogates).

        The raw item, not ``fields.get``: compat32 hands an 8-bit value
        (RFC 6532 UTF-8) back as a ``Header`` whose text has U+FFFD for
        every such octet.
        """
        wanted = name.lower()
        value = next((v for k, v in self.fields.raw_items() if k.lower() == wanted), None)
        if value is None:
            return None
        return re.sub(r"\r?\n(?=[ \t])", "", value).strip()

    @property
    def content_type(self) -> tuple[str, str]:
        """``(main, sub)`` in lower case, defaulted as RFC 2045 5.2 says."""
        main, _, sub = self.fields.get_content_type().partition("/")
        return main, sub

    @property
    def is_multipart(self) -> bool:
        """Whether this entity holds body parts (and a usable boundary)."""
        return self.content_type[0] == "multipart" and self._boundary is not None

    @property
    def is_message(self) -> bool:
        """Whether the body is itself a message (``message/rfc822``)."""
        return self.content_type == ("message", "rfc822")

    @property
    def _boundary(self) -> bytes | None:
        boundary = self.fields.get_boundary()
        if not boundary:
            return None
        return boundary.encode("ascii", "surrogateescape")

    @cached_property
    def parts(self) -> list[Entity]:
        """Sub-parts of a multipart entity (empty for anything else)."""
        if not self.is_multipart:
            return []
        assert self._boundary is not None
        inner = "message/rfc822" if self.content_type[1] == "digest" else "text/plain"
        return [Entity(p, inner) for p in split_multipart(self.body, self._boundary)]

    @cached_property
    def embedded(self) -> Entity:
        """The message inside a ``message/rfc822`` body."""
        return Entity(self.body)

    def child(self, index: int) -> Entity:
        """Part *index* (0-based) in IMAP numbering (RFC 3501 6.4.5).

        A multipart's parts are numbered; a ``message/rfc822`` part is
        numbered as the message inside it; a non-multipart entity has only
        part 1, itself.  Raises ``IndexError`` for any other number.
        """
        if self.is_multipart:
            return self.parts[index]
        if index == 0:
            return self
        raise IndexError(index)

    def resolve(self, path: tuple[int, ...]) -> Entity:
        """The entity a section part number such as ``1.2`` designates."""
        entity = self
        for depth, index in enumerate(path):
            if depth and entity.is_message:
                entity = entity.embedded
            entity = entity.child(index)
        return entity

    def line_count(self) -> int:
        """body-fld-lines (RFC 3501 7.4.2): the line ends in the body.

        Counted as Dovecot and Cyrus do: a part's last line usually has no
        CRLF of its own, because that CRLF belongs to the next delimiter
        (RFC 2046 5.1.1) and ``split_multipart`` left it out.
        """
        return self.body.count(b"\n")

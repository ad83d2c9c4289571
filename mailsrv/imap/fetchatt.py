"""The FETCH data items a client asks for (RFC 3501 6.4.5, grammar in 9).

Replaces Twisted's private FETCH parser, which takes ``<-1.5>`` as a
partial, ``HEADER.FIELDS ()`` as a header list, and raises bare exceptions
that quote the client's octets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import syntax

_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PART = re.compile(rb"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")
_PARTIAL = re.compile(rb"<([0-9]{1,10})\.([1-9][0-9]{0,9})>")
_SIMPLE = frozenset({
    "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE", "RFC822.TEXT",
    "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",  # RFC 7162 3.1.4
})
#: RFC 3501 6.4.5 macros.
_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


@dataclass(frozen=True)
class Section:
    """``[part.TEXT]``: the part number (1-based, ``()`` for the whole message) and what of it."""

    part: tuple[int, ...] = ()
    #: "" (the whole part), "HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME".
    text: str = ""
    fields: tuple[bytes, ...] = ()

    def spec(self) -> bytes:
        """The section as the response names it (RFC 3501 7.4.2)."""
        out = b".".join(b"%d" % p for p in self.part)
        if self.text:
            out += (b"." if out else b"") + self.text.encode("ascii")
        if self.fields:
            out += b" (" + b" ".join(self.fields) + b")"
        return out


@dataclass(frozen=True)
class FetchItem:
    """One data item: a simple name (``FLAGS``, ``BODY``: the structure), ``BODY[...]``,
    ``BINARY[...]`` or ``BINARY.SIZE[...]`` (RFC 3516 4.2)."""

    name: str
    section: Section | None = None
    peek: bool = False
    partial: tuple[int, int] | None = None

    @property
    def sets_seen(self) -> bool:
        """Fetching it sets ``\\Seen`` (RFC 3501 6.4.5, RFC 3516 4.2): body text without PEEK."""
        if self.name == "BINARY.SIZE":
            return False
        return (self.section is not None and not self.peek) or self.name in ("RFC822", "RFC822.TEXT")


def parse_fetch_items(args: Arguments) -> list[FetchItem]:
    """A macro, one item, or a parenthesized list of items (RFC 3501 6.4.5)."""
    if args.expect(b"("):
        items = [_item(args, _name(args))]
        while not args.expect(b")"):
            args.space()
            items.append(_item(args, _name(args)))
        return items
    name = _name(args)
    if name in _MACROS:
        return [FetchItem(n) for n in _MACROS[name]]
    return [_item(args, name)]


def _name(args: Arguments) -> str:
    token = args.token(_NAME)
    if token is None:
        raise syntax(b"Invalid FETCH attribute")
    return token.decode("ascii").upper()


def _item(args: Arguments, name: str) -> FetchItem:
    if name in ("BODY", "BODY.PEEK") and args.peek() == b"[":
        section = _section(args)
        return FetchItem("BODY[]", section, peek=name == "BODY.PEEK", partial=_partial(args))
    if name in ("BINARY", "BINARY.PEEK", "BINARY.SIZE"):
        section = _binary_section(args)
        if name == "BINARY.SIZE":
            return FetchItem(name, section)
        return FetchItem("BINARY[]", section, peek=name == "BINARY.PEEK", partial=_partial(args))
    if name not in _SIMPLE:
        raise syntax(b"Invalid FETCH attribute")
    return FetchItem(name)


def _partial(args: Arguments) -> tuple[int, int] | None:
    """An optional ``<origin.count>`` after a section."""
    partial = args.token(_PARTIAL)
    if partial is None:
        if args.peek() == b"<":
            raise syntax(b"Invalid partial")  # "<" number "." nz-number ">"
        return None
    match = _PARTIAL.match(partial)
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def _binary_section(args: Arguments) -> Section:
    """RFC 3516 4.2: section-binary = "[" [section-part] "]", part numbers only."""
    if not args.expect(b"["):
        raise syntax(b"Invalid section")
    part = _part_number(args)
    if not args.expect(b"]"):
        raise syntax(b"Invalid section")
    return Section(part)


def _part_number(args: Arguments) -> tuple[int, ...]:
    """section-part (``1.2.3``), or ``()`` when there is none."""
    token = args.token(_PART)
    return tuple(int(p) for p in token.split(b".")) if token else ()


def _section(args: Arguments) -> Section:
    args.expect(b"[")
    if args.expect(b"]"):
        return Section()
    part = _part_number(args)
    text = ""
    if not part or args.expect(b"."):
        word = args.token(_NAME)
        text = word.decode("ascii").upper() if word else ""
        allowed = ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT") + (("MIME",) if part else ())
        if text not in allowed:
            raise syntax(b"Invalid section")
    fields: tuple[bytes, ...] = ()
    if text.startswith("HEADER.FIELDS"):
        fields = _header_list(args)
    if not args.expect(b"]"):
        raise syntax(b"Invalid section")
    return Section(part, text, fields)


def _header_list(args: Arguments) -> tuple[bytes, ...]:
    """header-list = "(" header-fld-name *(SP header-fld-name) ")": never empty."""
    args.space()
    if not args.expect(b"("):
        raise syntax(b"Header list expected")
    if args.peek() == b")":
        raise syntax(b"Empty header list")
    names = [args.astring()]
    while not args.expect(b")"):
        args.space()
        names.append(args.astring())
    return tuple(n.upper() for n in names)

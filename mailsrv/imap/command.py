"""One IMAP command as read: its tag, its name, and its arguments as text and literals.

:mod:`.reading` fills it from the connection (literals read, limits
applied); :mod:`.arguments` parses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from mailsrv.imap.responses import bad
from mailsrv.imap.syntax import is_atom, is_tag
from mailsrv.message.body import Body


@dataclass
class Literal:
    """The octets of one literal: in memory, or a message body for APPEND.

    *binary* marks APPEND's literal8 ``~{n}`` (RFC 3516 4.4), the only
    literal that may hold NUL octets.
    """

    data: bytes | None = None
    body: Body | None = None
    binary: bool = False


Part = Union[bytes, Literal]


@dataclass
class Command:
    """One command: tag, name (upper case) and its arguments as text and literals in order."""

    tag: bytes
    name: bytes
    parts: list[Part]

    def discard(self) -> None:
        """Remove any spooled literal (the command failed before using it)."""
        for part in self.parts:
            if isinstance(part, Literal) and part.body is not None:
                part.body.discard()


class BadTag(Exception):
    """The line has no valid tag, so nothing may be echoed as one (untagged BAD)."""


def split_head(line: bytes) -> tuple[bytes, bytes, bytes]:
    """``(tag, NAME, rest)`` of a command's first line; BAD for a bad name (RFC 3501 9).

    Tag and command name are both 7-bit: a command name is an atom.
    """
    tag, _, rest = line.partition(b" ")
    if not is_tag(tag):
        raise BadTag()
    name, _, rest = rest.partition(b" ")
    if not name or not is_atom(name):
        raise bad(b"Invalid command name")
    return tag, name.upper(), rest

"""One stored message as Twisted's IMAP message interfaces see it.

The raw bytes are read from the store only for the commands that need
them: reading is asynchronous, so a command asks for ``entity``, gets
:class:`NotLoaded` the first time, has the mailbox load the message
(:meth:`~mailsrv.imap.mailbox.Mailbox.load`) and asks again.  They are
parsed lazily (:mod:`mailsrv.imap.mime`), so FETCH FLAGS over a large
mailbox never opens a file.  ``IMessageFile.open()`` returns the stored octets unchanged:
BODY[] and RFC822 must equal RFC822.SIZE (Twisted would otherwise rebuild
the message from a header dict).
"""

from __future__ import annotations

import email.utils
import io
from typing import Iterable

from twisted.mail import imap4
from zope.interface import implementer

from mailsrv.imap.mime import Entity, header_lines

#: The system flags in the order we report them (RFC 3501 2.3.2).
SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")


def sort_flags(flags: Iterable[str]) -> list[str]:
    """System flags first in a fixed order, then keywords alphabetically."""
    flags = set(flags)
    ordered = [f for f in ("\\Recent",) + SYSTEM_FLAGS if f in flags]
    return ordered + sorted(f for f in flags if not f.startswith("\\"))


class NotLoaded(Exception):
    """The message's octets were not read from the store yet: load it and try again."""


@implementer(imap4.IMessagePart)
class Part:
    """A MIME part for Twisted's ``IMessagePart`` consumers."""

    def __init__(self, entity: Entity) -> None:
        self.entity = entity

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        """Header values by lower-case name; *negate* selects the others."""
        wanted = {n.lower() if isinstance(n, str) else n.decode().lower() for n in names}
        return {
            name: self.entity.get(name) or ""
            for name, _ in header_lines(self.entity.header)
            if (name in wanted) != negate
        }

    def getBodyFile(self) -> io.BytesIO:
        """The body octets, after the header's empty line."""
        return io.BytesIO(self.entity.body)

    def getSize(self) -> int:
        """Octets in the whole entity (header and body)."""
        return len(self.entity.raw)

    def isMultipart(self) -> bool:
        """Whether :meth:`getSubPart` has parts to give."""
        return self.entity.is_multipart

    def getSubPart(self, part: int) -> Part:
        """Sub-part *part* (0-based); ``IndexError`` past the last."""
        return Part(self.entity.parts[part])


@implementer(imap4.IMessage, imap4.IMessageFile)
class Message(Part):
    """A stored message seen by one session: its UID, flags and date.

    *flags* are what this session reports, so ``\\Recent`` is included only
    for the session that claimed the message.
    """

    def __init__(self, uid: int, flags: Iterable[str], internaldate: float, size: int) -> None:
        self.uid = uid
        # A set: SEARCH and STORE test membership for every message; the
        # RFC 3501 order is imposed only when flags are written out.
        self.flags = frozenset(flags)
        self.internaldate = internaldate
        self.size = size
        self._entity: Entity | None = None

    @property  # type: ignore[override]
    def entity(self) -> Entity:
        """The parsed message; :class:`NotLoaded` until :meth:`loaded` gave it."""
        if self._entity is None:
            raise NotLoaded(self.uid)
        return self._entity

    def loaded(self, raw: bytes | None) -> None:
        """The message's wire-form octets, or None to let go of them again."""
        self._entity = None if raw is None else Entity(raw)

    def getUID(self) -> int:
        """The message UID (RFC 3501 2.3.1.1)."""
        return self.uid

    def getFlags(self) -> list[str]:
        """Flags as this session sees them, ``\\Recent`` included."""
        return sort_flags(self.flags)

    def getInternalDate(self) -> str:
        """INTERNALDATE as an RFC 2822 date string (Twisted's format)."""
        return email.utils.formatdate(self.internaldate, localtime=False)

    def getSize(self) -> int:
        """RFC822.SIZE: the stored octets, known without reading the file."""
        return self.size

    def open(self) -> io.BytesIO:
        """The stored message, byte for byte (``IMessageFile``)."""
        return io.BytesIO(self.entity.raw)

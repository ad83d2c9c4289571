"""One POP3 session's view of a user's INBOX: the RFC 1939 maildrop.

POP3 numbers messages 1..n for a whole session and deletes them only at
QUIT, so this takes a snapshot of the INBOX at login and keeps DELE marks
to itself until :meth:`Maildrop.update` (the UPDATE state).  A session that
ends any other way removes nothing.  The count and the octets of the
messages not marked are kept as running totals, so STAT and RSET cost the
same for 30,000 messages as for one.  All storage work is the store's.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from mailsrv.store import Folder, MessageInfo, StoredMessage, UserStore

#: RFC 1939 7 (UIDL): a unique-id is 1 to 70 octets in 0x21..0x7E.
_UIDL_MAX = 70


class NoSuchMessage(LookupError):
    """The message number names no message of the maildrop (RFC 1939 5)."""


class MessageDeleted(LookupError):
    """The message number names a message marked deleted in this session (RFC 1939 5)."""


def unique_id(key: str) -> bytes:
    """The UIDL for a Maildir key: the key itself when RFC 1939 allows it.

    A key that is too long or has octets outside 0x21..0x7E (long host
    names, foreign writers) is replaced by its SHA-1, which depends on the
    key alone and so is just as stable across sessions and flag renames.
    """
    raw = key.encode("utf-8", "surrogateescape")
    if 0 < len(raw) <= _UIDL_MAX and all(0x21 <= b <= 0x7E for b in raw):
        return raw
    return hashlib.sha1(raw).hexdigest().encode("ascii")


class Maildrop:
    """The INBOX of one user as one POP3 session sees it (message numbers are 1-based)."""

    def __init__(self, folder: "Folder") -> None:
        self._folder = folder
        # An empty file has no POP3 listing (a size of 0 means "deleted" to
        # some clients), so such messages are left out.
        self._messages: list[MessageInfo] = [m for m in folder.messages() if m.size > 0]
        self._deleted: set[int] = set()
        self._total = sum(m.size for m in self._messages)
        self._count = len(self._messages)
        self._octets = self._total

    @classmethod
    async def open(cls, user: "UserStore") -> "Maildrop":
        """The maildrop of *user*, as the INBOX is now.

        Mail a POP3 client has seen is no longer new: it moves from new/ to
        cur/ as Dovecot does, so IMAP clients do not show it as \\Recent.
        """
        folder = await user.open("INBOX")
        folder.claim_recent()
        return cls(folder)

    @property
    def count(self) -> int:
        """Messages not marked deleted."""
        return self._count

    @property
    def octets(self) -> int:
        """Wire octets of the messages not marked deleted."""
        return self._octets

    def info(self, number: int) -> "MessageInfo":
        """The message numbered *number*; :class:`NoSuchMessage` or :class:`MessageDeleted`."""
        if not 0 < number <= len(self._messages):
            raise NoSuchMessage(number)
        if number in self._deleted:
            raise MessageDeleted(number)
        return self._messages[number - 1]

    def listing(self) -> Iterator[tuple[int, "MessageInfo"]]:
        """``(number, info)`` of every message not marked deleted, in order."""
        for number, info in enumerate(self._messages, 1):
            if number not in self._deleted:
                yield number, info

    def delete(self, number: int) -> None:
        """Mark message *number*; nothing is removed before :meth:`update`."""
        info = self.info(number)
        self._deleted.add(number)
        self._count -= 1
        self._octets -= info.size

    def reset(self) -> None:
        """RSET: forget every deletion mark."""
        self._deleted.clear()
        self._count = len(self._messages)
        self._octets = self._total

    def open_message(self, number: int) -> "Deferred[StoredMessage]":
        """The stored message, open for streaming; fails with ``MessageGone`` if another session removed it."""
        return self._folder.open_message(self.info(number).uid)

    async def update(self) -> None:
        """The UPDATE state (RFC 1939 6): remove the marked messages, once, at QUIT.

        Messages another session removed meanwhile are simply already gone;
        a disk error propagates to the caller.
        """
        marked = [self._messages[number - 1].uid for number in sorted(self._deleted)]
        if marked:
            await self._folder.expunge(marked)

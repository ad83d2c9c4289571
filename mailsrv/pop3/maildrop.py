"""The POP3 avatar: one session's view of a user's INBOX as an RFC 1939 maildrop.

POP3 numbers messages 1..n for a whole session and lets a client delete
them only at QUIT, so this adapter takes a snapshot of the INBOX at login
and keeps DELE marks to itself until :meth:`Maildrop.sync` (the UPDATE
state).  A session that ends any other way removes nothing.  All storage
work is delegated to :mod:`mailsrv.store`.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from twisted.internet.defer import Deferred
from twisted.mail import pop3
from zope.interface import implementer

if TYPE_CHECKING:
    from mailsrv.context import ServerContext
    from mailsrv.store import Folder, MessageInfo, UserStore

#: RFC 1939 section 7 (UIDL): a unique-id is 1 to 70 octets in 0x21..0x7E.
_UIDL_MAX = 70


def _unique_id(key: str) -> bytes:
    """The UIDL for a Maildir key: the key itself when RFC 1939 allows it.

    A key that is too long or has octets outside 0x21..0x7E (long host
    names, foreign writers) is replaced by its SHA-1, which depends on the
    key alone and so is just as stable across sessions and flag renames.
    """
    raw = key.encode("utf-8", "surrogateescape")
    if 0 < len(raw) <= _UIDL_MAX and all(0x21 <= b <= 0x7E for b in raw):
        return raw
    return hashlib.sha1(raw).hexdigest().encode("ascii")


@implementer(pop3.IMailbox)
class Maildrop:
    """``pop3.IMailbox`` over the INBOX of one user; indices are 0-based.

    A message number that does not exist, or one marked deleted, raises
    ``ValueError`` (the interface's preferred error); the protocol turns it
    into ``-ERR``.  Per the interface, a deleted message lists as size 0,
    which is why empty files are left out of the snapshot.
    """

    def __init__(self, inbox: "Folder") -> None:
        """The maildrop over *inbox*, which the caller has just synced (:func:`open_maildrop`)."""
        self._folder = inbox
        # Mail the POP3 client has seen is no longer new: move new/ to cur/
        # as Dovecot does, so IMAP clients do not show it as \Recent later.
        self._folder.claim_recent()
        self._messages: list[MessageInfo] = [m for m in self._folder.messages() if m.size > 0]
        self._deleted: set[int] = set()

    def _info(self, i: int) -> "MessageInfo":
        if not 0 <= i < len(self._messages) or i in self._deleted:
            raise ValueError(f"no message {i + 1}")
        return self._messages[i]

    def listMessages(self, i: int | None = None) -> int | list[int]:
        """Wire size of message *i*, or of every message; 0 for deleted ones."""
        if i is None:
            return [0 if n in self._deleted else m.size for n, m in enumerate(self._messages)]
        if i in self._deleted:
            return 0
        return self._info(i).size

    def getMessage(self, i: int) -> "Deferred[BinaryIO]":
        """The message exactly as it goes on the wire (CRLF line ends).

        Fails with ``mailsrv.store.MessageGone`` when another session removed it.
        """
        return self._folder.read(self._info(i).uid).addCallback(io.BytesIO)

    def getUidl(self, i: int) -> bytes:
        """A unique-id that survives sessions and flag renames (the Maildir key)."""
        return _unique_id(self._info(i).key)

    def deleteMessage(self, i: int) -> None:
        """Mark message *i*; nothing is removed before :meth:`sync`."""
        self._info(i)
        self._deleted.add(i)

    def undeleteMessages(self) -> None:
        """RSET: forget every deletion mark."""
        self._deleted.clear()

    def sync(self) -> "Deferred[list[int]]":
        """The UPDATE state (RFC 1939 section 6): remove the marked messages.

        Called once, at QUIT.  Messages another session removed meanwhile
        are simply already gone; a disk error fails the Deferred.
        """
        return self._folder.expunge(self._messages[i].uid for i in sorted(self._deleted))


def open_maildrop(user: "UserStore") -> "Deferred[Maildrop]":
    """The INBOX of *user* as a maildrop, opened and synced off the reactor thread."""
    return user.open("INBOX").addCallback(Maildrop)


def mailbox_factory(ctx: "ServerContext") -> Callable[[str], "Deferred[Maildrop]"]:
    """The realm's builder of POP3 avatars: ``realm_factories[pop3.IMailbox]``.

    The avatar is a Deferred: the POP3 server waits for it before ``+OK``.
    """
    return lambda address: open_maildrop(ctx.store.user(address))

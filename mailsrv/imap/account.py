"""The IMAP avatar: one user's folder tree (``IAccount`` over ``UserStore``).

Store errors become ``MailboxException`` with a response code first, so
Twisted's CREATE/DELETE/RENAME/SUBSCRIBE handlers answer a clean tagged
``NO [CODE] ...`` (RFC 5530) rather than ``BAD Server error``.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from twisted.mail import imap4
from zope.interface import implementer

from mailsrv.imap.mailbox import Mailbox
from mailsrv.store import Folder, FolderExists, FolderHasChildren, InvalidFolderName, NoSuchFolder, UserStore

DELIMITER = "/"


@contextmanager
def store_errors() -> Iterator[None]:
    """Translate store exceptions into IMAP ``NO`` texts."""
    try:
        yield
    except InvalidFolderName:
        raise imap4.MailboxException("[CANNOT] Invalid mailbox name") from None
    except NoSuchFolder:
        raise imap4.MailboxException("[NONEXISTENT] No such mailbox") from None
    except FolderExists:
        raise imap4.MailboxException("[ALREADYEXISTS] Mailbox already exists") from None
    except FolderHasChildren:
        # RFC 3501 6.3.4 allows refusing; Dovecot's words, RFC 5530 code.
        raise imap4.MailboxException("[CANNOT] Mailbox has children, delete them first") from None


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """LIST wildcards (RFC 3501 6.3.8): ``*`` matches anything, ``%`` one level.

    A leading ``inbox`` level in any case means INBOX (RFC 3501 5.1).
    """
    full = reference + pattern
    if full[:5].upper() == "INBOX" and full[5:6] in ("", DELIMITER):
        full = "INBOX" + full[5:]
    parts = re.split(r"([*%])", full)
    table = {"*": ".*", "%": "[^/]*"}
    return re.compile("".join(table.get(p, re.escape(p)) for p in parts), re.S)


@implementer(imap4.IAccount, imap4.INamespacePresenter)
class Account:
    """All folders of one user, as every IMAP session of theirs sees them."""

    def __init__(self, user: UserStore) -> None:
        self.user = user

    def folder(self, name: str) -> Folder:
        """The store folder for an IMAP name; store errors propagate.

        The server maps them itself, because the right answer depends on
        the command (COPY and APPEND want ``[TRYCREATE]``, RFC 3501 6.4.7).
        """
        return self.user.folder(name)

    # -- IAccount ---------------------------------------------------------------

    def addMailbox(self, name: str, mbox: object = None) -> bool:
        """Same as CREATE; an existing mailbox object cannot be adopted."""
        return self.create(name)

    def create(self, pathspec: str) -> bool:
        """CREATE (RFC 3501 6.3.3); a trailing ``/`` is allowed and dropped."""
        with store_errors():
            self.user.create_folder(pathspec.rstrip(DELIMITER) or pathspec)
        return True

    def select(self, name: str, rw: bool = True) -> Mailbox:
        """A fresh per-session view for SELECT (*rw*) or EXAMINE."""
        with store_errors():
            return Mailbox(self.folder(name), bool(rw))

    def delete(self, name: str) -> None:
        """DELETE (RFC 3501 6.3.4)."""
        with store_errors():
            self.user.delete_folder(name)

    def rename(self, oldname: str, newname: str) -> None:
        """RENAME (RFC 3501 6.3.5), subfolders included."""
        with store_errors():
            self.user.rename_folder(oldname, newname)

    def isSubscribed(self, name: str) -> bool:
        """Whether LSUB lists *name*."""
        return name in self.user.subscriptions()

    def subscribe(self, name: str) -> None:
        """SUBSCRIBE (RFC 3501 6.3.6)."""
        with store_errors():
            self.user.subscribe(name)

    def unsubscribe(self, name: str) -> None:
        """UNSUBSCRIBE (RFC 3501 6.3.7)."""
        with store_errors():
            self.user.unsubscribe(name)

    def listMailboxes(self, ref: str, wildcard: str) -> list[tuple[str, list[str]]]:
        """``(name, flags)`` of existing folders matching *ref* + *wildcard*.

        Flags are the RFC 3348 child flags, so clients need not probe.
        """
        names = self.user.list_folders()
        regex = pattern_regex(ref, wildcard)
        result = []
        for name in names:
            if regex.fullmatch(name):
                prefix = name + DELIMITER
                children = any(n.startswith(prefix) for n in names)
                result.append((name, ["\\HasChildren" if children else "\\HasNoChildren"]))
        return result

    def listSubscribed(self, ref: str, wildcard: str) -> list[str]:
        """Subscribed names matching, existing or not (RFC 3501 6.3.9)."""
        regex = pattern_regex(ref, wildcard)
        return sorted(n for n in self.user.subscriptions() if regex.fullmatch(n))

    # -- INamespacePresenter (RFC 2342) -----------------------------------------

    def getPersonalNamespaces(self) -> list[list[str]]:
        """One personal namespace: the empty prefix, ``/`` delimiter."""
        return [["", DELIMITER]]

    def getSharedNamespaces(self) -> None:
        """No shared folders."""
        return None

    def getUserNamespaces(self) -> None:
        """No other users' folders."""
        return None

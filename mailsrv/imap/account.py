"""The IMAP avatar: one user's folder tree (``IAccount`` over ``UserStore``).

Every operation returns the store's Deferred.  Store errors become
``MailboxException`` with a response code first, so the server's
CREATE/DELETE/RENAME/SUBSCRIBE handlers answer a clean tagged
``NO [CODE] ...`` (RFC 5530) rather than ``BAD Server error``.
"""

from __future__ import annotations

import re
from twisted.internet.defer import Deferred
from twisted.mail import imap4
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsrv.imap.mailbox import Mailbox
from mailsrv.store import Folder, FolderExists, FolderHasChildren, InvalidFolderName, NoSuchFolder, UserStore

DELIMITER = "/"

_NO_TEXTS = [
    (InvalidFolderName, "[CANNOT] Invalid mailbox name"),
    (NoSuchFolder, "[NONEXISTENT] No such mailbox"),
    (FolderExists, "[ALREADYEXISTS] Mailbox already exists"),
    # RFC 3501 6.3.4 allows refusing; Dovecot's words, RFC 5530 code.
    (FolderHasChildren, "[CANNOT] Mailbox has children, delete them first"),
]


def store_errors(failure: Failure) -> Failure:
    """Errback translating store exceptions into ``MailboxException`` with the IMAP ``NO`` text."""
    for error, text in _NO_TEXTS:
        if failure.check(error):
            return Failure(imap4.MailboxException(text))
    return failure


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

    def folder(self, name: str) -> "Deferred[Folder]":
        """The store folder for an IMAP name, synced; store errors are the Deferred's.

        The server maps them itself, because the right answer depends on
        the command (COPY and APPEND want ``[TRYCREATE]``, RFC 3501 6.4.7).
        """
        return self.user.open(name)

    # -- IAccount ---------------------------------------------------------------

    def addMailbox(self, name: str, mbox: object = None) -> "Deferred[bool]":
        """Same as CREATE; an existing mailbox object cannot be adopted."""
        return self.create(name)

    def create(self, pathspec: str) -> "Deferred[bool]":
        """CREATE (RFC 3501 6.3.3); a trailing ``/`` is allowed and dropped."""
        d = self.user.create_folder(pathspec.rstrip(DELIMITER) or pathspec)
        return d.addCallbacks(lambda _: True, store_errors)

    def select(self, name: str, rw: bool = True) -> "Deferred[Mailbox]":
        """A fresh per-session view for SELECT (*rw*) or EXAMINE."""
        return self.folder(name).addCallbacks(lambda folder: Mailbox(folder, bool(rw)), store_errors)

    def delete(self, name: str) -> "Deferred[None]":
        """DELETE (RFC 3501 6.3.4)."""
        return self.user.delete_folder(name).addErrback(store_errors)

    def rename(self, oldname: str, newname: str) -> "Deferred[None]":
        """RENAME (RFC 3501 6.3.5), subfolders included."""
        return self.user.rename_folder(oldname, newname).addErrback(store_errors)

    def isSubscribed(self, name: str) -> "Deferred[bool]":
        """Whether LSUB lists *name*."""
        return self.user.subscriptions().addCallback(lambda subs: name in subs)

    def subscribe(self, name: str) -> "Deferred[None]":
        """SUBSCRIBE (RFC 3501 6.3.6)."""
        return self.user.subscribe(name).addErrback(store_errors)

    def unsubscribe(self, name: str) -> "Deferred[None]":
        """UNSUBSCRIBE (RFC 3501 6.3.7)."""
        return self.user.unsubscribe(name).addErrback(store_errors)

    def listMailboxes(self, ref: str, wildcard: str) -> "Deferred[list[tuple[str, list[str]]]]":
        """``(name, flags)`` of existing folders matching *ref* + *wildcard*.

        Flags are the RFC 3348 child flags, so clients need not probe.
        """
        regex = pattern_regex(ref, wildcard)

        def matching(names: list[str]) -> list[tuple[str, list[str]]]:
            result = []
            for name in names:
                if regex.fullmatch(name):
                    prefix = name + DELIMITER
                    children = any(n.startswith(prefix) for n in names)
                    result.append((name, ["\\HasChildren" if children else "\\HasNoChildren"]))
            return result

        return self.user.list_folders().addCallback(matching)

    def listSubscribed(self, ref: str, wildcard: str) -> "Deferred[list[str]]":
        """Subscribed names matching, existing or not (RFC 3501 6.3.9)."""
        regex = pattern_regex(ref, wildcard)
        return self.user.subscriptions().addCallback(lambda subs: sorted(n for n in subs if regex.fullmatch(n)))

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

"""Tagged results, and the one map from store errors to IMAP responses.

A command handler returns a :class:`Result` (``OK``/``NO``/``BAD`` and a
text) or raises :class:`CommandError`; the server writes the tagged line
once any owed updates are out.  Store errors are turned into responses by
:func:`store_error` only, with the RFC 5530 response codes, so a missing
mailbox reads the same from SELECT, STATUS, DELETE or RENAME; COPY and
APPEND want ``[TRYCREATE]`` instead (RFC 3501 6.4.7, 6.3.11) and say so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsrv.store import (
    FolderExists,
    FolderHasChildren,
    InvalidFlag,
    InvalidFolderName,
    KeywordLimit,
    LockTimeout,
    MessageGone,
    NoSuchFolder,
    StoreError,
)

OK, NO, BAD = b"OK", b"NO", b"BAD"


@dataclass(frozen=True)
class Result:
    """The tagged completion of a command."""

    status: bytes
    text: bytes


class CommandError(Exception):
    """Ends a command with a tagged *status* (``NO`` or ``BAD``) and *text*.

    With *hang_up* the session cannot go on (its input can no longer be
    read as commands): the server says BYE after the tagged reply and closes.
    """

    def __init__(self, status: bytes, text: bytes, hang_up: bool = False) -> None:
        super().__init__(text.decode("ascii", "replace"))
        self.status = status
        self.text = text
        self.hang_up = hang_up

    @property
    def result(self) -> Result:
        """The tagged result this error stands for."""
        return Result(self.status, self.text)


def bad(text: bytes) -> CommandError:
    """A syntax error (RFC 3501 7.1.5); *text* never echoes the client's octets."""
    return CommandError(BAD, text)


def syntax(text: bytes) -> CommandError:
    """A command that does not parse (RFC 3501 9): ``BAD Illegal syntax: ...``."""
    return CommandError(BAD, b"Illegal syntax: " + text)


def no(text: bytes) -> CommandError:
    """The command was understood and refused (RFC 3501 7.1.2)."""
    return CommandError(NO, text)


def safe_text(error: BaseException) -> bytes:
    """An exception's message for a reply: printable ASCII, at most 200 octets."""
    text = error.args[0] if error.args else ""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return re.sub(r"[^ -~]", "?", str(text))[:200].encode("ascii")


NONEXISTENT = b"[NONEXISTENT] No such mailbox"  # RFC 5530 3
TRYCREATE = b"[TRYCREATE] No such mailbox"  # RFC 3501 6.4.7, 7.1
CANNOT_NAME = b"[CANNOT] Invalid mailbox name"  # RFC 5530 3
ALREADY_EXISTS = b"[ALREADYEXISTS] Mailbox already exists"  # RFC 5530 3
HAS_CHILDREN = b"[CANNOT] Mailbox has children, delete them first"  # RFC 3501 6.3.4 allows refusing
#: The same refusal in the code IMAP4rev2 has for it (RFC 9051 7.1), for sessions that enabled it.
HAS_CHILDREN_REV2 = b"[HASCHILDREN] Mailbox has children, delete them first"
TOO_MANY_KEYWORDS = b"[LIMIT] Too many keywords in mailbox"  # RFC 5530 3: Maildir has 26 letters
EXPUNGE_ISSUED = b"[EXPUNGEISSUED] Some of the requested messages no longer exist"  # RFC 5530 3, RFC 2180 4.1.2
READ_ONLY = b"[READ-ONLY] Mailbox is read-only"  # RFC 3501 6.3.2
SERVER_FAILURE = b"[SERVERBUG] Internal server error, try again later"  # RFC 5530 3
IN_USE = b"[INUSE] The mailbox is locked by another program, try again later"  # RFC 5530 3
AUTHENTICATION_FAILED = b"[AUTHENTICATIONFAILED] Authentication failed"  # RFC 5530 3: bad user name or password
LOGIN_UNAVAILABLE = b"[UNAVAILABLE] Temporary failure, try again later"  # RFC 5530 3: the password was not checked
LOGIN_LOCKED = b"[UNAVAILABLE] Too many failed logins, try again later"  # RFC 5530 3: not checked, temporary


def store_error(error: StoreError, missing: bytes = NONEXISTENT) -> CommandError:
    """The response for a store error; *missing* is the text for a folder that does not exist."""
    if isinstance(error, NoSuchFolder):
        return no(missing)
    if isinstance(error, InvalidFolderName):
        return no(CANNOT_NAME)
    if isinstance(error, FolderExists):
        return no(ALREADY_EXISTS)
    if isinstance(error, FolderHasChildren):
        return no(HAS_CHILDREN)
    if isinstance(error, KeywordLimit):
        return no(TOO_MANY_KEYWORDS)
    if isinstance(error, InvalidFlag):
        # RFC 3501 2.3.2: clients cannot invent system flags; a keyword is an atom.
        return bad(b"Invalid flag: " + safe_text(error))
    if isinstance(error, MessageGone):
        return no(EXPUNGE_ISSUED)
    if isinstance(error, LockTimeout):
        return no(IN_USE)
    return no(safe_text(error))

"""Folder names: validation, the IMAP name <-> Maildir++ directory mapping, the folders there are.

IMAP shows ``/`` as the hierarchy separator; on disk Maildir++ joins levels
with ``.`` (``Archive/2024`` -> ``.Archive.2024``), as Dovecot and Courier
do. Each level is stored in modified UTF-7 (RFC 3501 5.1.3) so the directory
names are plain ASCII; a ``.`` inside a level is written ``&AC4-``, which
modified UTF-7 decodes back to ``.``, so no level can be split by it.

Validation is the single gate that keeps every folder inside the user's
Maildir: nothing reaches the file system without passing :func:`validate`.
"""

from __future__ import annotations

import os

import twisted.mail.imap4  # noqa: F401  (registers the imap4-utf-7 codec)

from mailsrv.store.errors import InvalidFolderName

SEPARATOR = "/"
INBOX = "INBOX"
MAX_LEVEL_BYTES = 200
MAX_DEPTH = 16
#: The LIST wildcards (RFC 3501 6.3.8) and control characters.  A backslash or a quote is a name
#: character like any other (quoted on the wire, plain on disk), as Dovecot keeps it.
_FORBIDDEN = set("*%\x7f") | {chr(c) for c in range(0x20)}


def validate(name: str) -> str:
    """Return the canonical form of *name* or raise :class:`InvalidFolderName`.

    INBOX is case-insensitive (RFC 3501 5.1); every other name is kept as
    given.
    """
    if not isinstance(name, str) or not name:
        raise InvalidFolderName("empty folder name")
    levels = name.split(SEPARATOR)
    if len(levels) > MAX_DEPTH:
        raise InvalidFolderName("folder hierarchy too deep")
    for level in levels:
        if not level:
            raise InvalidFolderName("empty hierarchy level in folder name")
        if level.startswith("."):
            raise InvalidFolderName("folder name level may not start with '.'")
        if _FORBIDDEN.intersection(level):
            raise InvalidFolderName("folder name contains a forbidden character")
        if len(encode_level(level)) > MAX_LEVEL_BYTES:
            raise InvalidFolderName("folder name too long")
    if levels[0].upper() == INBOX:
        levels[0] = INBOX
    return SEPARATOR.join(levels)


def encode_level(level: str) -> str:
    """One hierarchy level as Dovecot stores it on disk: modified UTF-7, ``.`` as ``&AC4-``."""
    return level.encode("imap4-utf-7").decode("ascii").replace(".", "&AC4-")


def from_levels(levels: list[str]) -> str | None:
    """The IMAP name of hierarchy levels stored by :func:`encode_level`, or None if they name none."""
    try:
        return validate(SEPARATOR.join(level.encode("ascii").decode("imap4-utf-7") for level in levels))
    except (UnicodeError, InvalidFolderName):
        return None


def to_dirname(name: str) -> str:
    """The Maildir++ directory name for a validated non-INBOX folder name."""
    return "." + ".".join(encode_level(level) for level in name.split(SEPARATOR))


def from_dirname(dirname: str) -> str | None:
    """The IMAP name for a Maildir++ directory, or None if it is not one."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    return from_levels(dirname[1:].split("."))


def folder_dir(root: str, name: str) -> str:
    """The directory of validated folder *name* in the Maildir++ at *root*."""
    return root if name == INBOX else os.path.join(root, to_dirname(name))


def user_root(folder_path: str, name: str) -> str:
    """The Maildir++ root of the directory *folder_path* of folder *name*: :func:`folder_dir` backwards."""
    return folder_path if name == INBOX else os.path.dirname(folder_path)


def folder_names(root: str) -> list[str]:
    """Every folder name, INBOX first, then sorted (blocking)."""
    found = set()
    if os.path.isdir(root):
        for entry in os.listdir(root):
            name = from_dirname(entry)
            if name is not None and os.path.isdir(os.path.join(root, entry, "cur")):
                found.add(name)
    found.discard(INBOX)
    return [INBOX] + sorted(found)

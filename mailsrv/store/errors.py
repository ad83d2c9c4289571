"""Exceptions the store raises; protocol adapters map them to protocol errors."""


class StoreError(Exception):
    """Base class for every store failure that a client may be told about."""


class InvalidFolderName(StoreError):
    """A folder name that could escape the Maildir or confuse its layout."""


class NoSuchFolder(StoreError):
    """The named folder does not exist."""


class FolderExists(StoreError):
    """CREATE or RENAME onto a folder that already exists."""


class FolderHasChildren(StoreError):
    """DELETE of a ``\\Noselect`` name, one with subfolders and no messages of its own (RFC 3501 6.3.4)."""


class InvalidFlag(StoreError):
    """A flag that is neither a known system flag nor a valid keyword atom."""


class KeywordLimit(StoreError):
    """A folder can hold only 26 distinct keywords (Maildir's a-z letters)."""


class MessageGone(StoreError, KeyError):
    """The message was expunged (by another session or node) meanwhile."""


class InvalidAddress(StoreError):
    """An address that cannot name a mailbox directory safely."""


class LockTimeout(StoreError):
    """Another writer (a Dovecot process, say) held a file's dot-lock for longer than we wait."""

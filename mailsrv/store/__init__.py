"""The Maildir++ store: the only code in mailsrv that writes mail files or knows their names.

Readers get open files from it (``Folder.open_message``), or, for SEARCH in
another thread, a path and a finder (``Folder.locate``).

See ``docs/internals.rst`` for the contract the protocol adapters rely on.
"""

from mailsrv.store.errors import (
    FolderExists,
    FolderHasChildren,
    InvalidFlag,
    KeywordLimit,
    LockTimeout,
    InvalidAddress,
    InvalidFolderName,
    MessageGone,
    NoSuchFolder,
    StoreError,
)
from mailsrv.store.flags import SYSTEM_FLAGS
from mailsrv.store.folder import Folder, IFolderListener
from mailsrv.store.message import MessageInfo, StoredMessage
from mailsrv.store.store import Store, Target
from mailsrv.store.userstore import UserStore

__all__ = [
    "Folder",
    "FolderExists",
    "FolderHasChildren",
    "InvalidFlag",
    "KeywordLimit",
    "LockTimeout",
    "IFolderListener",
    "InvalidAddress",
    "InvalidFolderName",
    "MessageGone",
    "MessageInfo",
    "NoSuchFolder",
    "Store",
    "StoreError",
    "StoredMessage",
    "SYSTEM_FLAGS",
    "Target",
    "UserStore",
]

"""The Maildir++ store: the only code in mailsrv that touches mail files.

See ``docs/internals.rst`` for the contract the protocol adapters rely on.
"""

from mailsrv.store.errors import (
    FolderExists,
    FolderHasChildren,
    InvalidFlag,
    KeywordLimit,
    InvalidAddress,
    InvalidFolderName,
    MessageGone,
    NoSuchFolder,
    StoreError,
)
from mailsrv.store.folder import SYSTEM_FLAGS, Folder, IFolderListener, MessageInfo
from mailsrv.store.store import Store
from mailsrv.store.userstore import UserStore

__all__ = [
    "Folder",
    "FolderExists",
    "FolderHasChildren",
    "InvalidFlag",
    "KeywordLimit",
    "IFolderListener",
    "InvalidAddress",
    "InvalidFolderName",
    "MessageGone",
    "MessageInfo",
    "NoSuchFolder",
    "Store",
    "StoreError",
    "SYSTEM_FLAGS",
    "UserStore",
]

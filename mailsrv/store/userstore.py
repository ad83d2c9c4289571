"""One user's Maildir++: the folder tree and its subscriptions.

The Maildir root is INBOX; every other folder is a ``.Name`` directory
directly below it (see :mod:`mailsrv.store.names`). One :class:`UserStore`
per user lives in the :class:`~mailsrv.store.Store`, and it keeps one
:class:`~mailsrv.store.folder.Folder` per open name, so all sessions of the
user share state and change notifications.
"""

from __future__ import annotations

import os
import shutil
import uuid

from mailsrv.store.files import fsync_dir, replace_file
from mailsrv.store import maildir, names
from mailsrv.store.errors import FolderExists, FolderHasChildren, InvalidFolderName, NoSuchFolder
from mailsrv.store.folder import Folder

SUBSCRIPTIONS = "subscriptions"


class UserStore:
    """The folders of one mailbox owner."""

    def __init__(self, address: str, path: str) -> None:
        self.address = address
        self.path = path
        self._folders: dict[str, Folder] = {}

    def _dir(self, name: str) -> str:
        return self.path if name == names.INBOX else os.path.join(self.path, names.to_dirname(name))

    def _exists(self, name: str) -> bool:
        return name == names.INBOX or os.path.isdir(os.path.join(self._dir(name), "cur"))

    def loaded_folder(self, name: str) -> Folder | None:
        """The folder object if some session already opened it, else None."""
        return self._folders.get(name)

    def folder(self, name: str) -> Folder:
        """The shared :class:`Folder` for an IMAP folder name."""
        name = names.validate(name)
        folder = self._folders.get(name)
        if folder is None:
            if not self._exists(name):
                raise NoSuchFolder(name)
            folder = self._folders[name] = Folder(name, self._dir(name))
        return folder

    def list_folders(self) -> list[str]:
        """Every folder name, INBOX first, then sorted."""
        found = set()
        if os.path.isdir(self.path):
            for entry in os.listdir(self.path):
                name = names.from_dirname(entry)
                if name is not None and os.path.isdir(os.path.join(self.path, entry, "cur")):
                    found.add(name)
        found.discard(names.INBOX)
        return [names.INBOX] + sorted(found)

    def create_folder(self, name: str) -> None:
        """Create a folder and any missing parents (RFC 3501 6.3.3)."""
        name = names.validate(name)
        if self._exists(name):
            raise FolderExists(name)
        levels = name.split(names.SEPARATOR)
        for depth in range(1, len(levels) + 1):
            partial = names.SEPARATOR.join(levels[:depth])
            if not self._exists(partial):
                path = self._dir(partial)
                maildir.ensure_maildir(path)
                open(os.path.join(path, "maildirfolder"), "ab").close()

    def delete_folder(self, name: str) -> None:
        """Delete a childless folder and its messages; sessions on it learn at their next sync."""
        name = names.validate(name)
        if name == names.INBOX:
            raise InvalidFolderName("INBOX cannot be deleted")
        if not self._exists(name):
            raise NoSuchFolder(name)
        if any(other.startswith(name + names.SEPARATOR) for other in self.list_folders()):
            raise FolderHasChildren(name)  # RFC 3501 6.3.4 lets us refuse; Dovecot does
        # Rename first so the folder vanishes atomically, then remove at leisure.
        doomed = os.path.join(self.path, f"..deleted-{uuid.uuid4().hex}")
        os.rename(self._dir(name), doomed)
        folder = self._folders.pop(name, None)
        if folder is not None:
            folder.announce_deleted()
        shutil.rmtree(doomed, ignore_errors=True)

    def rename_folder(self, old: str, new: str) -> None:
        """Rename a folder with its subfolders; renaming INBOX moves its mail."""
        old, new = names.validate(old), names.validate(new)
        if not self._exists(old):
            raise NoSuchFolder(old)
        if self._exists(new):
            raise FolderExists(new)
        if new.startswith(old + names.SEPARATOR):
            raise InvalidFolderName("cannot move a folder into itself")
        parent = new.rpartition(names.SEPARATOR)[0]
        if parent and not self._exists(parent):
            self.create_folder(parent)
        if old == names.INBOX:
            self._move_inbox_mail(new)
            return
        old_dir, new_dir = names.to_dirname(old), names.to_dirname(new)
        for entry in os.listdir(self.path):
            if entry == old_dir or entry.startswith(old_dir + "."):
                os.rename(os.path.join(self.path, entry), os.path.join(self.path, new_dir + entry[len(old_dir) :]))
        for name in list(self._folders):
            if name == old or name.startswith(old + names.SEPARATOR):
                del self._folders[name]

    def _move_inbox_mail(self, new: str) -> None:
        """RFC 3501 6.3.5: renaming INBOX moves its messages and leaves it empty."""
        self.create_folder(new)
        target = os.path.join(self._dir(new), "cur")
        for sub in ("new", "cur"):
            src = os.path.join(self.path, sub)
            for filename in os.listdir(src):
                os.rename(os.path.join(src, filename), os.path.join(target, filename))
        fsync_dir(target)
        inbox = self._folders.get(names.INBOX)
        if inbox is not None:
            inbox.sync(force=True)

    # -- subscriptions (RFC 3501 6.3.6) --------------------------------------

    def subscriptions(self) -> set[str]:
        """Subscribed folder names (they need not exist)."""
        try:
            with open(os.path.join(self.path, SUBSCRIPTIONS), "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return set()
        return {line for line in lines if line}

    def _save_subscriptions(self, subs: set[str]) -> None:
        os.makedirs(self.path, mode=0o700, exist_ok=True)
        text = "".join(f"{name}\n" for name in sorted(subs))
        replace_file(os.path.join(self.path, SUBSCRIPTIONS), text.encode("utf-8"))

    def subscribe(self, name: str) -> None:
        """Add a name to the subscriptions."""
        name = names.validate(name)
        subs = self.subscriptions()
        if name not in subs:
            self._save_subscriptions(subs | {name})

    def unsubscribe(self, name: str) -> None:
        """Remove a name from the subscriptions; raises NoSuchFolder if absent."""
        name = names.validate(name)
        subs = self.subscriptions()
        if name not in subs:
            raise NoSuchFolder(name)
        self._save_subscriptions(subs - {name})

"""Persistent UIDs: the ``mailsrv-uidlist`` file of one folder.

Format (plain lines, like Dovecot's ``dovecot-uidlist``)::

    1 V<uidvalidity> N<uidnext>
    <uid> <maildir key>
    ...

New UIDs are appended and fsynced (a UID once shown to a client is never
given to another message, RFC 3501 2.3.1.1); expunges rewrite the file
atomically. An ``flock`` on a lock file beside it serialises assignment
between nodes sharing the store, and the file is re-read whenever its
size or mtime shows that someone else wrote it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable

from twisted.logger import Logger

from mailsrv.store.files import FileStamp, locked, replace_file

FILENAME = "mailsrv-uidlist"
_last_validity = 0


def _new_uidvalidity() -> int:
    """A UIDVALIDITY greater than any handed out before by this process."""
    global _last_validity
    _last_validity = max(int(time.time()), _last_validity + 1)
    return _last_validity


class UIDList:
    """UID <-> key map of one folder, kept in step with its file."""

    log = Logger()

    def __init__(self, folder_path: str) -> None:
        self.path = os.path.join(folder_path, FILENAME)
        self.uidvalidity = 0
        self.uidnext = 1
        self.by_key: dict[str, int] = {}
        self._stamp: FileStamp | None = None
        with locked(self.path):
            self._reload_if_changed()
            if not self.uidvalidity:
                self.uidvalidity = _new_uidvalidity()
                self._rewrite()

    def _reload_if_changed(self) -> None:
        stamp = FileStamp.of(self.path)
        if stamp == self._stamp or stamp is None:
            return
        with open(self.path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
        by_key: dict[str, int] = {}
        validity, uidnext = 0, 1
        if lines:
            for field in lines[0].split()[1:]:
                if field[:1] == "V" and field[1:].isdigit():
                    validity = int(field[1:])
                elif field[:1] == "N" and field[1:].isdigit():
                    uidnext = int(field[1:])
        for number, line in enumerate(lines[1:], 2):
            uid, _, key = line.partition(" ")
            if not uid.isdigit() or not key:
                self.log.warn("{path}:{line}: unreadable UID entry skipped", path=self.path, line=number)
                continue
            by_key[key] = int(uid)
            uidnext = max(uidnext, int(uid) + 1)
        self.uidvalidity, self.uidnext, self.by_key = validity, uidnext, by_key
        self._stamp = stamp

    def _rewrite(self) -> None:
        lines = [f"1 V{self.uidvalidity} N{self.uidnext}\n"]
        lines.extend(f"{uid} {key}\n" for key, uid in sorted(self.by_key.items(), key=lambda kv: kv[1]))
        replace_file(self.path, "".join(lines).encode("utf-8"))
        self._stamp = FileStamp.of(self.path)

    def refresh(self) -> None:
        """Pick up UIDs another node assigned since we last looked."""
        if FileStamp.of(self.path) != self._stamp:
            with locked(self.path):
                self._reload_if_changed()

    def assign(self, keys: Iterable[str]) -> dict[str, int]:
        """Give each key without a UID the next UID, durably; return key -> UID."""
        keys = list(keys)
        with locked(self.path):
            self._reload_if_changed()
            added: dict[str, int] = {}
            for key in keys:
                if key in self.by_key or key in added:
                    continue
                added[key] = self.uidnext
                self.uidnext += 1
            if added:
                self.by_key.update(added)
                text = "".join(f"{uid} {key}\n" for key, uid in added.items())
                with open(self.path, "ab") as f:
                    f.write(text.encode("utf-8"))
                    f.flush()
                    os.fdatasync(f.fileno())
                self._stamp = FileStamp.of(self.path)
            return {key: self.by_key[key] for key in keys}

    def forget(self, keys: Iterable[str]) -> None:
        """Drop expunged keys; UIDNEXT is kept so their UIDs are never reused."""
        with locked(self.path):
            self._reload_if_changed()
            changed = False
            for key in keys:
                if self.by_key.pop(key, None) is not None:
                    changed = True
            if changed:
                self._rewrite()

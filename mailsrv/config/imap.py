"""``[imap]``: the special folders every new account gets (RFC 6154).

Each key names the folder made, subscribed and given its special use
(``\\Drafts``, ``\\Sent``, ...) at an account's first IMAP login; ``""``
makes none for that use.  These are Dovecot's ``mailbox NAME { special_use
= ...; auto = subscribe }`` blocks.  A change applies to accounts set up
afterwards: an account keeps the folders it was given (the per-user file
is described in :mod:`mailsrv.store.specialuse`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, setting
from mailsrv.store import names
from mailsrv.store.errors import InvalidFolderName


def _folder(name: str) -> str:
    """A folder name the store takes, not INBOX; ``""`` for none."""
    if not name:
        return name
    try:
        canonical = names.validate(name)
    except InvalidFolderName as e:
        raise Invalid(str(e)) from None
    if canonical == names.INBOX:
        raise Invalid("INBOX cannot be a special folder")
    return canonical


@dataclass(frozen=True)
class IMAPConfig(Table):
    """The special folders of new accounts."""

    DOC = (
        "IMAP. The special folders each new account gets at its first IMAP login, subscribed and listed "
        "with their RFC 6154 use; names use '/' between levels; \"\" makes no folder for that use."
    )

    drafts: str = setting("Drafts", "The folder for drafts (\\Drafts).", _folder)
    sent: str = setting("Sent", "The folder for sent mail (\\Sent).", _folder)
    trash: str = setting("Trash", "The folder for deleted mail (\\Trash).", _folder)
    junk: str = setting("Junk", "The folder for spam (\\Junk).", _folder)
    archive: str = setting("Archive", "The folder for archived mail (\\Archive).", _folder)

    def check(self) -> None:
        """Two uses may not name one folder: clients would put drafts in the trash."""
        seen: dict[str, str] = {}
        for key, name in self.special_folders_by_key().items():
            if name in seen:
                raise Invalid(f"{name!r} is already the {seen[name]} folder", key)
            seen[name] = key

    def special_folders_by_key(self) -> dict[str, str]:
        """Key -> folder name, for the uses that have one."""
        return {key: name for key, name in (
            ("drafts", self.drafts), ("sent", self.sent), ("trash", self.trash),
            ("junk", self.junk), ("archive", self.archive)) if name}

    def special_folders(self) -> dict[str, str]:
        """RFC 6154 attribute -> folder name, for the uses that have one."""
        return {"\\" + key.capitalize(): name for key, name in self.special_folders_by_key().items()}

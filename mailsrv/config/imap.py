"""``[imap]``: the special folders every new account gets (RFC 6154).

Each key names the folder made, subscribed and given its special use
(``\\Drafts``, ``\\Sent``, ...) at an account's first IMAP login; ``""``
makes none for that use.  These are Dovecot's ``mailbox NAME { special_use
= ...; auto = subscribe }`` blocks.  A change applies to accounts set up
afterwards: an account keeps the folders it was given (the per-user file
is described in :mod:`mailsrv.store.specialuse`).

``watch`` and ``poll_interval_ms`` say how selected folders learn of the
changes other programs make to the Maildir (:mod:`mailsrv.store.watch`).
``metadata_*`` are the limits of RFC 5464 annotations (:mod:`mailsrv.store.metadata`).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, at_least, one_of, setting
from mailsrv.store import names
from mailsrv.store.errors import InvalidFolderName
from mailsrv.store.watch import METHODS


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
    """The special folders of new accounts, and how sessions learn of changes made outside mailsrv."""

    DOC = (
        "IMAP. The special folders each new account gets at its first IMAP login, subscribed and listed "
        "with their RFC 6154 use; names use '/' between levels; \"\" makes no folder for that use. "
        "And how selected folders learn of changes other programs make to the Maildir."
    )

    drafts: str = setting("Drafts", "The folder for drafts (\\Drafts).", _folder)
    sent: str = setting("Sent", "The folder for sent mail (\\Sent).", _folder)
    trash: str = setting("Trash", "The folder for deleted mail (\\Trash).", _folder)
    junk: str = setting("Junk", "The folder for spam (\\Junk).", _folder)
    archive: str = setting("Archive", "The folder for archived mail (\\Archive).", _folder)
    watch: str = setting(
        "inotify",
        "How selected folders learn of mail, flag changes and expunges other programs make in the Maildir "
        "(procmail, mutt, a second mailsrv): \"inotify\" (Linux; polling where it fails) or \"poll\" (needed "
        "when hosts share the data dir over a network file system: inotify sees only this host's changes).",
        one_of(METHODS), restart=True,
    )
    poll_interval_ms: int = setting(
        500, "Milliseconds between two looks at a selected folder's directories, where it is polled.",
        at_least(50), restart=True,
    )

    metadata_max_value_size: int = setting(
        16 * 1024, "Most octets in one METADATA entry's value (RFC 5464: GETMETADATA/SETMETADATA).",
        at_least(1024, "RFC 5464 4.1"),
    )
    metadata_max_entries: int = setting(
        100, "Most METADATA entries on one mailbox, or on the server, per user.", at_least(10, "RFC 5464 4.1"),
    )
    metadata_max_total_size: int = setting(
        1024 * 1024, "Most octets of all METADATA entries of one user together (names and values).",
        at_least(1024, "RFC 5464 4.1"),
    )

    notify_max_mailboxes: int = setting(
        1000, "Most mailboxes one IMAP session may watch with NOTIFY (RFC 5465); a NOTIFY SET naming more "
        "is refused with NOTIFICATIONOVERFLOW.", at_least(1),
    )

    def check(self) -> None:
        """Two uses may not name one folder: clients would put drafts in the trash.

        And a user's METADATA must have room for one value of the largest size.
        """
        if self.metadata_max_total_size < self.metadata_max_value_size:
            raise Invalid("must be at least metadata_max_value_size", "metadata_max_total_size")
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

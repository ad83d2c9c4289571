"""``[quota]``: the default quota of every user (IMAP QUOTA, RFC 9208; SMTP ``452 4.2.2``).

A user's own limits, written in the user file (``userdb_quota_rule=``,
see :mod:`mailsrv.accounts.quota`), replace these; 0 means no limit.
The limits a user gets are written into their ``maildirsize`` (Maildir++),
so Dovecot sharing the Maildir enforces the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Table, setting
from mailsrv.store.maildirsize import Limits


@dataclass(frozen=True)
class QuotaConfig(Table):
    """The default per-user limits."""

    DOC = (
        "Quota. The default limits of every user, over all their folders; a user-file line may set its "
        "own (userdb_quota_rule=*:storage=1G). 0 = no limit."
    )

    storage_kib: int = setting(0, "Storage per user, in KiB (1024 octets) of message files.")
    messages: int = setting(0, "Messages per user.")

    def limits(self) -> Limits:
        """The default limits, in the store's units (octets, messages)."""
        return Limits(storage=self.storage_kib * 1024, messages=self.messages)

"""One user's folder tree as IMAP shows it: LIST patterns, child flags, subscriptions.

A thin layer over :class:`~mailsrv.store.UserStore`: the store validates
names and does the disk work (off the reactor thread); this module adds
what is IMAP's own, the RFC 3501 6.3.8 wildcards and the RFC 3348 child
flags.  Store errors propagate; :mod:`.responses` maps them.
"""

from __future__ import annotations

import re

from mailsrv.store import Folder, UserStore

DELIMITER = "/"


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """LIST wildcards (RFC 3501 6.3.8): ``*`` matches anything, ``%`` one level.

    A leading ``inbox`` level in any case means INBOX (RFC 3501 5.1).
    """
    full = reference + pattern
    if full[:5].upper() == "INBOX" and full[5:6] in ("", DELIMITER):
        full = "INBOX" + full[5:]
    parts = re.split(r"([*%])", full)
    table = {"*": ".*", "%": "[^/]*"}
    return re.compile("".join(table.get(p, re.escape(p)) for p in parts), re.S)


class Account:
    """All folders of one user, as every IMAP session of theirs sees them."""

    def __init__(self, user: UserStore) -> None:
        self.user = user

    async def open(self, name: str) -> Folder:
        """The shared, synced folder for an IMAP name."""
        return await self.user.open(name)

    async def create(self, name: str, uses: frozenset[str] = frozenset()) -> None:
        """CREATE (RFC 3501 6.3.3) with special *uses* (RFC 6154 3); a trailing ``/`` is allowed and dropped."""
        await self.user.create_folder(name.rstrip(DELIMITER) or name, uses)

    async def subscribed(self, reference: str, pattern: str) -> list[str]:
        """Subscribed names matching, existing or not (RFC 3501 6.3.9)."""
        regex = pattern_regex(reference, pattern)
        return sorted(n for n in await self.user.subscriptions() if regex.fullmatch(n))

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


_WILDCARDS = {"*": ".*", "%": "[^/]*"}


def _wildcard_regex(pattern: str) -> str:
    return "".join(_WILDCARDS.get(p, re.escape(p)) for p in re.split(r"([*%])", pattern))


def pattern_regex(reference: str, pattern: str) -> re.Pattern[str]:
    """LIST wildcards (RFC 3501 6.3.8): ``*`` matches anything, ``%`` one level.

    INBOX is case-insensitive (RFC 3501 5.1), and not only as a whole
    level: ``inbox*`` or ``Inb%`` must find INBOX (and ``inbox*`` its
    subfolders) as ``INBOX*`` does, Dovecot's answer too.  So a pattern whose
    letters before the first wildcard are INBOX's in another case gets a
    second branch with them in INBOX's case, for INBOX and the names below it
    only; every other name keeps its case.
    """
    full = reference + pattern
    plain = _wildcard_regex(full)
    head = re.split(r"[*%]", full, maxsplit=1)[0][:5]
    if not head or head == "INBOX"[:len(head)] or head.upper() != "INBOX"[:len(head)]:
        return re.compile(plain, re.S)
    inbox = _wildcard_regex("INBOX"[:len(head)] + full[len(head):])
    return re.compile(f"(?=INBOX(?:{re.escape(DELIMITER)}|\\Z)){inbox}|{plain}", re.S)


def names_above(name: str) -> list[str]:
    """``a``, ``a/b`` for ``a/b/c``: the names above *name*."""
    levels = name.split(DELIMITER)
    return [DELIMITER.join(levels[:depth]) for depth in range(1, len(levels))]


class Account:
    """All folders of one user, as every IMAP session of theirs sees them."""

    def __init__(self, user: UserStore) -> None:
        self.user = user

    async def open(self, name: str) -> Folder:
        """The shared, synced folder for an IMAP name."""
        return await self.user.open(name)

    async def create(self, name: str, uses: frozenset[str] = frozenset(), origin: object = None) -> None:
        """CREATE (RFC 3501 6.3.3) with special *uses* (RFC 6154 3); a trailing ``/`` is allowed and dropped.

        *origin* (the session) is who the store tells its tree listeners made it.
        """
        await self.user.create_folder(name.rstrip(DELIMITER) or name, uses, origin)

    async def subscribed(self, reference: str, pattern: str) -> list[tuple[str, bool]]:
        """LSUB's names matching, existing or not, each with whether it is only a parent (RFC 3501 6.3.9).

        A name that is not subscribed but has a subscribed name below it that
        the pattern leaves out (``foo`` for ``foo/bar`` and ``%``) is listed
        too, flagged ``\\Noselect`` by the caller: the RFC asks for it so a
        client walking the tree one level at a time finds the subscriptions.
        """
        regex = pattern_regex(reference, pattern)
        names = await self.user.subscriptions()
        above = {parent for name in names if not regex.fullmatch(name) for parent in names_above(name)}
        listed = {name: False for name in names if regex.fullmatch(name)}
        for parent in above:
            if parent not in listed and regex.fullmatch(parent):
                listed[parent] = True
        return sorted(listed.items())

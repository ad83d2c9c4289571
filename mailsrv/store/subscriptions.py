"""A user's subscribed folder names (RFC 3501 6.3.6), in Dovecot's ``subscriptions`` file.

Dovecot 2.3 writes version 2 of the file::

    V<TAB>2
    <empty line>
    Archive<TAB>2024
    &ANw-n&AO8-code<TAB>xy

one name per line, its hierarchy levels joined by a tab, each level as
Maildir++ stores it on disk (modified UTF-7, :func:`~mailsrv.store.names.encode_level`).
The tab makes the file independent of the hierarchy separator either server
shows, so Dovecot configured with ``.`` or ``/`` reads ours.  A file
without the header is version 1, which older mailsrv wrote: IMAP names
with ``/``, in UTF-8.  We always write version 2.

Writers hold our ``flock`` (``mailsrv-subscriptions.lock``) and then
Dovecot's dot-lock ``subscriptions.lock`` (stale after 30 s, Dovecot's
value).  Every function blocks; the :class:`~mailsrv.store.userstore.UserStore`
runs them in the store's executor.
"""

from __future__ import annotations

import os
from typing import Callable

from twisted.logger import Logger

from mailsrv.store import names
from mailsrv.store.dotlock import dotlocked
from mailsrv.store.files import locked, read_text, replace_file

FILENAME = "subscriptions"
#: Our own lock name: Dovecot dot-locks ``subscriptions.lock``.
LOCK_NAME = "mailsrv-subscriptions"
#: Dovecot's stale timeout for the dot-lock of this file (seconds).
STALE_AFTER = 30
VERSION_2 = "V\t2\n\n"
log = Logger()


def parse(text: str, path: str) -> set[str]:
    """The names in a subscriptions file of either version; unreadable lines are skipped."""
    if not text.startswith(VERSION_2):
        return {line for line in text.splitlines() if line}
    found = set()
    for line in text[len(VERSION_2):].splitlines():
        if not line:
            continue
        name = names.from_levels(line.split("\t"))
        if name is None:
            log.warn("{path}: subscription {line!r} names no folder; skipped", path=path, line=line)
        else:
            found.add(name)
    return found


def render(subscribed: set[str]) -> str:
    """Version 2 of the file for *subscribed* (validated names)."""
    lines = ("\t".join(names.encode_level(level) for level in name.split(names.SEPARATOR))
             for name in sorted(subscribed))
    return VERSION_2 + "".join(f"{line}\n" for line in lines)


def read(root: str) -> set[str]:
    """Subscribed folder names of the Maildir++ at *root*."""
    path = os.path.join(root, FILENAME)
    return parse(read_text(path), path)


def edit(root: str, change: Callable[[set[str]], set[str]]) -> None:
    """Read, change and durably rewrite the subscriptions under both locks."""
    os.makedirs(root, mode=0o700, exist_ok=True)
    path = os.path.join(root, FILENAME)
    with locked(os.path.join(root, LOCK_NAME)), dotlocked(path, STALE_AFTER):
        text = read_text(path)
        before = parse(text, path)
        after = change(before)
        if after != before or (after and not text.startswith(VERSION_2)):
            replace_file(path, render(after).encode("utf-8"))

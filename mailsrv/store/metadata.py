"""Annotations on the server and on mailboxes (RFC 5464 METADATA), kept per user.

One file per user, ``<Maildir>/mailsrv-metadata``, JSON::

    {"": {"/private/vendor/x/y": "dmFsdWU="}, "INBOX": {"/shared/comment": "..."}}

mailbox name (``""`` for the user's server entries, RFC 5464 4.1) ->
entry name (lower case: RFC 5464 3.2 makes them case-insensitive) ->
value, base64 (a value is octets, a literal8 may hold NUL).  The file is
ours alone; Dovecot keeps its attributes elsewhere and ignores it.

Every change is a read-modify-write under the file's lock, replaced
atomically and durably (:mod:`.files`: temp file, fsync, rename, fsync of
the directory), so several processes sharing the data directory never
lose one another's changes; the limits are checked under that lock too, so
two sessions cannot both pass them.  The entries follow the mailbox:
:func:`renamed` and :func:`deleted` run where the folder is renamed or
deleted (RFC 5464 4.1).  Everything here blocks: the
:class:`~mailsrv.store.UserStore` runs it in its executor.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Callable, Mapping

from mailsrv.store.errors import NoSuchFolder, StoreError
from mailsrv.store.files import locked, read_text, replace_file

FILENAME = "mailsrv-metadata"
#: The mailbox name of the server's entries (RFC 5464 4.1).
SERVER = ""

Entries = dict[str, bytes]
#: Mailbox name (or :data:`SERVER`) -> its entries.
Annotations = dict[str, Entries]


@dataclass(frozen=True)
class Limits:
    """What one user may store (``[imap] metadata_*``; RFC 5464 4.1 and 7 ask for limits)."""

    #: Octets in one value.
    value_size: int
    #: Entries on one mailbox, or on the server.
    entries: int
    #: Octets of every entry name and value of the user together.
    total_size: int


class MetadataTooLarge(StoreError):
    """A value over the limits; ``args[0]`` is the most octets it could have (``[METADATA MAXSIZE n]``)."""


class MetadataTooMany(StoreError):
    """A new entry past the entries a mailbox (or the server) may have (``[METADATA TOOMANY]``)."""


class CorruptMetadata(StoreError):
    """The file is not what we write: it is left alone for an admin to look at."""


def path(root: str) -> str:
    """The file in the Maildir++ at *root*."""
    return os.path.join(root, FILENAME)


def parse(text: str) -> Annotations:
    """The annotations in the file's *text* (none for an empty or missing file)."""
    if not text.strip():
        return {}
    try:
        raw = json.loads(text)
        return {mailbox: {name: base64.b64decode(value, validate=True) for name, value in entries.items()}
                for mailbox, entries in raw.items()}
    except (ValueError, AttributeError, TypeError, binascii.Error):
        raise CorruptMetadata(f"{FILENAME} is corrupt") from None


def render(annotations: Mapping[str, Entries]) -> bytes:
    """The file's content: mailboxes with entries only, sorted, so equal data is an equal file."""
    raw = {mailbox: {name: base64.b64encode(value).decode("ascii") for name, value in sorted(entries.items())}
           for mailbox, entries in sorted(annotations.items()) if entries}
    return (json.dumps(raw, indent=1, ensure_ascii=False) + "\n").encode("utf-8")


def read(root: str) -> Annotations:
    """Every annotation of the user at *root*."""
    return parse(read_text(path(root)))


def edit(root: str, change: Callable[[Annotations], Annotations]) -> None:
    """Read, change and durably rewrite the file under its lock, if the change changed anything."""
    with locked(path(root)):
        before = read(root)
        after = change({mailbox: dict(entries) for mailbox, entries in before.items()})
        if _kept(after) != _kept(before):
            replace_file(path(root), render(after))


def _kept(annotations: Annotations) -> Annotations:
    return {mailbox: entries for mailbox, entries in annotations.items() if entries}


def update(root: str, mailbox: str, changes: Mapping[str, bytes | None], limits: Limits,
           exists: Callable[[], bool]) -> None:
    """Set (``None``: remove) the *changes* on *mailbox*, all or none (RFC 5464 4.3).

    *exists* says whether the mailbox is there; it is asked under the lock,
    so a DELETE running at once cannot leave entries behind.
    """

    def change(annotations: Annotations) -> Annotations:
        if mailbox != SERVER and not exists():
            raise NoSuchFolder(mailbox)
        return apply(annotations, mailbox, changes, limits)

    edit(root, change)


def apply(annotations: Annotations, mailbox: str, changes: Mapping[str, bytes | None], limits: Limits) -> Annotations:
    """*annotations* with *changes* made on *mailbox*, or the limit they break raised.

    A limit lowered since an entry was stored does not stop that entry from
    being replaced by one no bigger, or removed.
    """
    before = annotations.get(mailbox, {})
    entries = dict(before)
    for name, value in changes.items():
        if value is not None and len(value) > limits.value_size:
            raise MetadataTooLarge(limits.value_size)
        if value is None:
            entries.pop(name, None)
        else:
            entries[name] = value
    if len(entries) > max(limits.entries, len(before)):
        raise MetadataTooMany(limits.entries)
    after = {**annotations, mailbox: entries}
    grown = total_size(after) - total_size(annotations)
    if grown > 0 and total_size(after) > limits.total_size:
        set_values = sum(len(value) for value in changes.values() if value is not None)
        raise MetadataTooLarge(max(0, limits.total_size - (total_size(after) - set_values)))
    return after


def total_size(annotations: Annotations) -> int:
    """Octets of every entry name and value, what ``metadata_max_total_size`` counts."""
    return sum(len(name) + len(value) for entries in annotations.values() for name, value in entries.items())


def renamed(annotations: Annotations, old: str, new: str, separator: str, inbox: str) -> Annotations:
    """*annotations* after folder *old* (and its subfolders) became *new*.

    Renaming INBOX moves its mail, not INBOX: its entries are copied, and
    INBOX keeps them (RFC 5464 4.1).
    """
    if old == inbox:
        return {**annotations, new: dict(annotations.get(old, {}))}
    moved: Annotations = {}
    for mailbox, entries in annotations.items():
        if mailbox == old or mailbox.startswith(old + separator):
            mailbox = new + mailbox[len(old):]
        moved[mailbox] = entries
    return moved


def deleted(annotations: Annotations, name: str) -> Annotations:
    """*annotations* without those of the deleted folder *name* (RFC 5464 4.1); its subfolders keep theirs."""
    return {mailbox: entries for mailbox, entries in annotations.items() if mailbox != name}

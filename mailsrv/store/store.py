"""The mail store: every user's Maildir under ``<data_dir>/mail``, and delivery.

``<root>/<domain>/<local>/`` is the Maildir++ of ``local@domain``.
Delivery is the path SMTP waits on before answering 250, so it is written
for durability first and speed second: one file per message, linked into
each recipient's folder, fsynced, and the directory entries fsynced, all in
the store's executor so the reactor keeps serving (:mod:`.writing`).

Each recipient's copy is a :class:`Target`: the INBOX by default, or a
folder with flags (what Sieve's ``fileinto`` and ``addflag`` will ask for).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.address import AddressSyntaxError, mailbox_path
from mailsrv.message.body import Body
from mailsrv.store import flags as flag_rules
from mailsrv.store import cleanup, keywords, maildir, maildirsize, names, specialuse, writing
from mailsrv.store.errors import InvalidAddress, InvalidFlag, InvalidFolderName, KeywordLimit, StoreError
from mailsrv.store.names import folder_dir
from mailsrv.store.userstore import UserStore, create_for_use
from mailsrv.store.watch import Watcher
from mailsrv.workers import Executor


@dataclass(frozen=True)
class Target:
    """Where one recipient's copy of a message goes.

    *use* is the special use (RFC 6154, ``\\Junk``) *folder* stands for: when
    the user has no folder of that name (renamed or deleted it), the copy goes
    to the folder they gave that use instead, else to the INBOX.
    """

    address: str
    folder: str = names.INBOX
    flags: frozenset[str] = field(default_factory=frozenset)
    use: str | None = None


@dataclass(frozen=True)
class _Place:
    """A :class:`Target` resolved on the reactor thread, for the delivery job."""

    address: str
    root: str
    folder: str
    flags: frozenset[str]
    use: str | None = None


@dataclass(frozen=True)
class _Delivered:
    """What the delivery job did, for the reactor to announce and log."""

    #: (address, folder name, Maildir path, ``new/<name>`` or ``cur/<name>``) per target.
    copies: list[tuple[str, str, str, str]]
    mtime: float
    #: (address, folder asked for, folder used instead) for each copy whose folder did not exist.
    missing_folders: list[tuple[str, str, str]]
    copied: int


def _deliver(key: str, body: Body, places: list[_Place]) -> _Delivered:
    """Write *body* once and link it to every place (blocking).

    Delivery without flags goes to ``new/`` under the bare key, in any
    folder, so it is \\Recent there (RFC 3501 2.3.2); flags mean ``cur/``
    with the flags in the name.  A folder
    that does not exist takes the copy into its stand-in (:func:`_stand_in`):
    mail is never refused for a missing folder.
    """
    copies, missing = [], []
    for place in places:
        maildir.ensure_maildir(place.root, quick=True)
        folder, path = place.folder, folder_dir(place.root, place.folder)
        if folder != names.INBOX and not _is_folder(path):
            folder = _stand_in(place)
            missing.append((place.address, place.folder, folder))
            path = folder_dir(place.root, folder)
        if not place.flags:
            rel = "new/" + key
        else:
            rel = "cur/" + maildir.filename(key, place.flags, _letters(path, place.flags))
        copies.append((place.address, folder, path, rel))
    placed = writing.place(body, [(path, rel) for _, _, path, rel in copies])
    for place, (_, _, _, rel) in zip(places, copies):
        maildirsize.record_added(place.root, [rel])
    return _Delivered(copies, placed.mtime, missing, placed.copies)


def _is_folder(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "cur"))


def _stand_in(place: _Place) -> str:
    """The folder the user gave *place*'s use to (the first by name), else *place*'s folder made anew.

    A target without a use (a folder named for its own sake) goes to the
    INBOX instead; one with a use (Junk) never does (:func:`create_for_use`).
    """
    if place.use is None:
        return names.INBOX
    for name, uses in sorted(specialuse.read(place.root).items()):
        if place.use in uses and _is_folder(folder_dir(place.root, name)):
            return name
    try:
        create_for_use(place.root, place.folder, place.use)
    except OSError:  # a folder we cannot make must not cost the message
        return names.INBOX
    return place.folder


def _letters(folder_path: str, flags: frozenset[str]) -> dict[str, str]:
    """Letters for the keywords in *flags*; a keyword that no longer fits is left out."""
    wanted = flag_rules.keywords_of(flags)
    if not wanted:
        return {}
    try:
        return keywords.add(folder_path, wanted).letter_of
    except KeywordLimit:
        table = keywords.read(folder_path, None)
        return {} if table is None else table.letter_of


class Store:
    """All mailboxes of the server."""

    log = Logger()

    def __init__(
        self, root: str, executor: Executor, clock: IReactorTime | None = None, watcher: Watcher | None = None,
    ) -> None:
        self.root = root
        self.executor = executor
        self._clock = clock  # lets deliveries share UID commits; without one each commits at once
        self._watcher = watcher  # tells selected folders of other programs' changes; None: only syncs find them
        self._users: dict[str, UserStore] = {}

    def user(self, address: str) -> UserStore:
        """The shared :class:`UserStore` of ``local@domain`` (created lazily, no disk I/O)."""
        user = self._users.get(address)  # keys are canonical addresses: a hit needs no check
        if user is None:
            try:
                domain, local = mailbox_path(address)  # never a path outside <root>/<domain>/
            except AddressSyntaxError as e:
                raise InvalidAddress(str(e)) from None
            canonical = f"{local}@{domain}"
            user = self._users.get(canonical)
            if user is None:
                user = self._users[canonical] = UserStore(
                    canonical, os.path.join(self.root, domain, local), self.executor, self._clock, self._watcher
                )
        return user

    def deliver(self, targets: Sequence[Target], body: Body) -> "Deferred[str]":
        """Durably store *body* for every target; fires with the Maildir base name.

        One write (or none, for a spooled body) and links for the rest;
        duplicate targets (same user and folder) get one copy.  Open folders
        are told at once; their sessions see the message when its UID is
        durable.  The caller discards *body* afterwards.
        """
        try:
            places = self._places(targets)
        except StoreError:
            return fail()
        key = maildir.unique_name(body.size, body.wire_size)
        d = self.executor.run(_deliver, key, body, places)
        return d.addCallbacks(self._delivered, self._failed, (key,), None, (places,))

    def remove_stale_tmp(self) -> "Deferred[int]":
        """Remove what crashed deliveries left in every ``tmp/`` (:mod:`.cleanup`); one log line."""

        def removed(count: int) -> int:
            self.log.info("removed {count} files left in Maildir tmp/ directories for over {hours} hours",
                          count=count, hours=cleanup.STALE_AFTER // 3600)
            return count

        return self.executor.run(cleanup.remove_stale_tmp, self.root, time.time()).addCallback(removed)

    def _places(self, targets: Sequence[Target]) -> list[_Place]:
        places: dict[tuple[str, str], _Place] = {}
        for target in targets:
            user = self.user(target.address)
            folder = self._folder_name(target)
            places.setdefault(
                (user.path, folder), _Place(user.address, user.path, folder, self._flags(target), target.use)
            )
        if not places:
            raise ValueError("deliver() needs at least one target")
        return list(places.values())

    def _folder_name(self, target: Target) -> str:
        try:
            return names.validate(target.folder)
        except InvalidFolderName:
            self.log.warn("delivery to {address}: folder {folder!r} is not a valid name; using INBOX",
                          address=target.address, folder=target.folder)
            return names.INBOX

    def _flags(self, target: Target) -> frozenset[str]:
        kept = set()
        for flag in flag_rules.stored(target.flags):
            try:
                flag_rules.keywords_of([flag])
            except InvalidFlag:
                self.log.warn("delivery to {address}: flag {flag!r} dropped", address=target.address, flag=flag)
                continue
            kept.add(flag)
        return frozenset(kept)

    def _delivered(self, done: _Delivered, key: str) -> str:
        for address, folder, used in done.missing_folders:
            if used == folder:
                self.log.info("delivery to {address}: no folder {folder}; made it", address=address, folder=folder)
                continue
            self.log.warn(
                "delivery to {address}: no folder {folder}; delivered to {used}", address=address, folder=folder,
                used=used,
            )
        if done.copied:
            self.log.warn(
                "{filename}: {copied} copies written instead of hard links (is the spool on another file system?)",
                filename=key, copied=done.copied,
            )
        for address, folder_name, _, rel in done.copies:
            folder = self._users[address].loaded_folder(folder_name)
            if folder is not None:
                folder.note_delivered(rel, done.mtime)
        return key

    def _failed(self, failure: Failure, places: list[_Place]) -> Failure:
        self.log.failure("delivery to {recipients} failed", failure, recipients=[p.address for p in places])
        return failure

"""One user's Maildir++: the folder tree and its subscriptions.

The Maildir root is INBOX; every other folder is a ``.Name`` directory
directly below it (see :mod:`mailsrv.store.names`). One :class:`UserStore`
per user lives in the :class:`~mailsrv.store.Store`, and it keeps one
:class:`~mailsrv.store.folder.Folder` per open name, so all sessions of the
user share state and change notifications.

Every operation that lists, creates, renames or removes directories, or
rewrites the subscriptions file, runs in the store's executor (the
module-level functions below block); the methods return Deferreds and keep
the table of open folders on the reactor thread.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, TypeVar

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface

from mailsrv.store import maildir, maildirsize, metadata, names, specialuse
from mailsrv.store import subscriptions as subsfile
from mailsrv.store.cache import MessageCache
from mailsrv.store.errors import FolderExists, FolderHasChildren, InvalidFolderName, NoSuchFolder
from mailsrv.store.files import fsync_dir
from mailsrv.store.folder import Folder
from mailsrv.store.names import folder_dir, folder_names

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from mailsrv.store.watch import Watcher
    from mailsrv.workers import Executor

T = TypeVar("T")
#: Seconds between two prunings of a user's message cache by this process.
PRUNE_EVERY = 3600.0
#: Seconds from the open that asks for a pruning to the pruning: not while the client waits for that
#: open (at 100,000 messages the pruning holds the interpreter for a quarter of a second).
PRUNE_DELAY = 60.0


def _exists(root: str, name: str) -> bool:
    return name == names.INBOX or os.path.isdir(os.path.join(folder_dir(root, name), "cur"))


def _create(root: str, name: str) -> list[str]:
    """Create a folder and any missing parents (RFC 3501 6.3.3; blocking); the names made, parents first."""
    if _exists(root, name):
        raise FolderExists(name)
    levels = name.split(names.SEPARATOR)
    made = []
    for depth in range(1, len(levels) + 1):
        partial = names.SEPARATOR.join(levels[:depth])
        if not _exists(root, partial):
            path = folder_dir(root, partial)
            maildir.ensure_maildir(path)
            open(os.path.join(path, "maildirfolder"), "ab").close()
            made.append(partial)
    return made


def _create_with_uses(root: str, name: str, uses: frozenset[str]) -> list[str]:
    """Create a folder and record its special uses (RFC 6154 3); no folder if the uses cannot be kept.

    The names made, parents first.
    """
    made = _create(root, name)
    if not uses:
        return made
    try:
        specialuse.edit(root, lambda recorded: {**recorded, name: recorded.get(name, frozenset()) | uses})
    except BaseException:
        _delete(root, name)
        raise
    return made


def _create_missing(root: str, name: str) -> bool:
    """Create *name* unless it exists; whether it was made (blocking)."""
    if _exists(root, name):
        return False
    _create(root, name)
    return True


def create_for_use(root: str, name: str, use: str) -> None:
    """Create folder *name*, subscribed, for mail meant for its special *use* (blocking).

    Mail a policy check files as Junk (DMARC ``p=quarantine``, rspamd's
    ``add header``) must not reach the INBOX, the folder a user trusts, just
    because the user never logged in over IMAP or deleted Junk: as with
    Dovecot's ``auto = subscribe``, the folder is made again.  The use is
    recorded only in an account that was set up; one that never was keeps
    no special-use file, so its first login's :func:`_provision` still makes
    the other special folders (and records this one's use, the same default).
    Two deliveries at once make the folder once.
    """
    try:
        _create(root, name)
    except FolderExists:
        pass
    subsfile.edit(root, lambda subs: subs | {name})
    if os.path.exists(specialuse.path(root)):
        specialuse.edit(root, lambda recorded: {**recorded, name: recorded.get(name, frozenset()) | {use}})


def _provision(root: str, defaults: dict[str, str]) -> list[str]:
    """Set up a new account's special folders, subscribed (blocking); the names made."""
    made = specialuse.provision(root, defaults, lambda name: _create_missing(root, name))
    if made:
        subsfile.edit(root, lambda subs: subs | set(made))
    return made


def _delete(root: str, name: str) -> str:
    """Delete a folder and its messages, not its subfolders (blocking); its name.

    RFC 3501 6.3.4: a folder with inferiors loses its messages and stays
    as a ``\\Noselect`` name while they exist; in Maildir++ each level is
    a directory of its own, so that is the subfolders' directories without
    the parent's.  Deleting such a name again is the error the RFC names.
    """
    if name == names.INBOX:
        raise InvalidFolderName("INBOX cannot be deleted")
    if not _exists(root, name):
        if any(other.startswith(name + names.SEPARATOR) for other in folder_names(root)):
            raise FolderHasChildren(name)
        raise NoSuchFolder(name)
    # Rename first so the folder vanishes atomically, then remove at leisure.
    doomed = os.path.join(root, f"..deleted-{uuid.uuid4().hex}")
    os.rename(folder_dir(root, name), doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    maildirsize.recount(root)
    specialuse.edit(root, lambda uses: {n: a for n, a in uses.items() if n != name})
    metadata.edit(root, lambda annotations: metadata.deleted(annotations, name))
    return name


def _rename(root: str, old: str, new: str) -> "Renamed":
    """Rename a folder with its subfolders; renaming INBOX moves its mail (blocking)."""
    if not _exists(root, old):
        raise NoSuchFolder(old)
    if _exists(root, new):
        raise FolderExists(new)
    if new.startswith(old + names.SEPARATOR):
        raise InvalidFolderName("cannot move a folder into itself")
    parent = new.rpartition(names.SEPARATOR)[0]
    made = _create(root, parent) if parent and not _exists(root, parent) else []
    if old == names.INBOX:
        _move_inbox_mail(root, new)
        _rename_annotations(root, old, new)
        return Renamed(made, [(old, new)])
    old_dir, new_dir = names.to_dirname(old), names.to_dirname(new)
    pairs = []
    for entry in sorted(os.listdir(root)):
        if entry == old_dir or entry.startswith(old_dir + "."):
            moved = new_dir + entry[len(old_dir) :]
            os.rename(os.path.join(root, entry), os.path.join(root, moved))
            before, after = names.from_dirname(entry), names.from_dirname(moved)
            if before is not None and after is not None:
                pairs.append((before, after))
    specialuse.edit(root, lambda uses: specialuse.renamed(uses, old, new, names.SEPARATOR))
    _rename_annotations(root, old, new)
    return Renamed(made, pairs)


@dataclass(frozen=True)
class Renamed:
    """What a rename did: the parents it made for the new name, and each ``(old, new)`` folder name."""

    made: list[str]
    pairs: list[tuple[str, str]]


def _rename_annotations(root: str, old: str, new: str) -> None:
    """RFC 5464 4.1: a folder's annotations follow it (INBOX's are copied)."""
    metadata.edit(root, lambda annotations: metadata.renamed(annotations, old, new, names.SEPARATOR, names.INBOX))


def _move_inbox_mail(root: str, new: str) -> None:
    """RFC 3501 6.3.5: renaming INBOX moves its messages and leaves it empty.

    Each file keeps its place: one in ``new/`` stays unseen by any session
    there too, so it is still ``\\Recent`` when the folder is next selected.
    """
    _create(root, new)
    for sub in ("new", "cur"):
        src, target = os.path.join(root, sub), os.path.join(folder_dir(root, new), sub)
        for filename in os.listdir(src):
            os.rename(os.path.join(src, filename), os.path.join(target, filename))
        fsync_dir(target)


def _held_keys(root: str) -> set[str]:
    """The Maildir keys of every message in every folder of the user (blocking: lists every folder)."""
    keys = set()
    for name in folder_names(root):
        for sub in ("new", "cur"):
            try:
                with os.scandir(os.path.join(folder_dir(root, name), sub)) as entries:
                    keys.update(maildir.split_name(entry.name)[0] for entry in entries)
            except FileNotFoundError:
                continue  # deleted or renamed meanwhile
    return keys


def _prune_cache(root: str, cache: MessageCache) -> int:
    """Forget the cache rows of messages no folder holds any more (blocking); how many went."""
    if not os.path.exists(cache.path):
        return 0
    return cache.prune(_held_keys(root))


class ITreeListener(Interface):
    """Told of changes to a user's folder tree, subscriptions and annotations made through the store.

    *origin* is what the caller of the change named as its author (an IMAP
    session), so a listener can leave out the changes it made itself.
    """

    def folders_created(names: "list[str]", origin: object) -> None:
        """Folders made, parents first."""

    def folder_deleted(name: str, origin: object) -> None:
        """A folder deleted (its subfolders stay)."""

    def folders_renamed(pairs: "list[tuple[str, str]]", origin: object) -> None:
        """``(old, new)`` for the folder renamed and each one below it."""

    def subscription_changed(name: str, subscribed: bool, origin: object) -> None:
        """A name subscribed or unsubscribed."""

    def annotations_changed(name: str, entries: "list[str]", origin: object) -> None:
        """Entries set or removed on folder *name*, or on the server (:data:`metadata.SERVER`)."""


class UserStore:
    """The folders of one mailbox owner."""

    log = Logger()

    def __init__(
        self, address: str, path: str, executor: "Executor", clock: "IReactorTime | None" = None,
        watcher: "Watcher | None" = None,
    ) -> None:
        self.address = address
        self.path = path
        self._executor = executor
        self._clock = clock
        self._watcher = watcher
        self._folders: dict[str, Folder] = {}
        self._tree_listeners: list[object] = []
        self._provisioned = False
        self.cache = MessageCache(path)  # opened by the first pool thread that uses it
        self._pruned_at: float | None = None

    def add_tree_listener(self, listener: object) -> None:
        """Start telling *listener* (an :class:`ITreeListener`) of changes to the tree."""
        if listener not in self._tree_listeners:
            self._tree_listeners.append(listener)

    def remove_tree_listener(self, listener: object) -> None:
        """Stop telling *listener*; unknown listeners are ignored."""
        if listener in self._tree_listeners:
            self._tree_listeners.remove(listener)

    def _tell(self, method: str, *args: object) -> None:
        for listener in list(self._tree_listeners):
            try:
                getattr(listener, method)(*args)
            except Exception:
                self.log.failure("tree listener {method} failed", method=method)

    def loaded_folder(self, name: str) -> Folder | None:
        """The folder object if some session already opened it, else None."""
        return self._folders.get(name)

    def open(self, name: str) -> "Deferred[Folder]":
        """The shared :class:`Folder` for an IMAP folder name, synced with the disk.

        Fails with :class:`InvalidFolderName` or :class:`NoSuchFolder`.
        """
        try:
            name = names.validate(name)
        except InvalidFolderName:
            return fail()
        folder = self._folders.get(name)
        if folder is None:
            if not _exists(self.path, name):  # one stat
                return fail(NoSuchFolder(name))
            folder = self._folders[name] = Folder(
                name, folder_dir(self.path, name), self._executor, self._clock, self._watcher, self.cache)

        def failed(failure: Failure) -> Failure:
            if failure.check(NoSuchFolder) and self._folders.get(name) is folder:
                del self._folders[name]
            return failure

        def opened(_: object) -> Folder:
            self.prune_cache()
            return folder

        return folder.sync().addCallbacks(opened, failed)

    def prune_cache(self) -> None:
        """Now and then (:data:`PRUNE_EVERY`), in the background: drop the cache rows of messages gone.

        Lazily, not at each expunge: a COPY's hard link keeps a key alive in
        another folder, and only a listing of every folder can tell.  With
        a clock, :data:`PRUNE_DELAY` later.
        """
        now = time.monotonic()
        if self._pruned_at is not None and now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        if self._clock is None:
            self._prune()
        else:
            self._clock.callLater(PRUNE_DELAY, self._prune)

    def _prune(self) -> None:
        self._executor.run(_prune_cache, self.path, self.cache).addErrback(
            lambda f: self.log.failure("{path}: pruning the message cache failed", f, path=self.path))

    def list_folders(self) -> "Deferred[list[str]]":
        """Every folder name, INBOX first, then sorted."""
        return self._executor.run(folder_names, self.path)

    def create_folder(
        self, name: str, uses: frozenset[str] = frozenset(), origin: object = None,
    ) -> "Deferred[None]":
        """Create a folder and any missing parents (RFC 3501 6.3.3), with special *uses* (RFC 6154 3).

        *uses* are :data:`specialuse.ATTRIBUTES`; the caller refuses others.
        """

        def created(made: list[str]) -> None:
            self._tell("folders_created", made, origin)

        return self._validated(lambda root, n: _create_with_uses(root, n, uses), name).addCallback(created)

    def special_use(self) -> "Deferred[dict[str, frozenset[str]]]":
        """Folder name -> its special-use attributes (RFC 6154 2)."""
        return self._executor.run(specialuse.read, self.path)

    def provision(self, defaults: dict[str, str]) -> "Deferred[list[str]]":
        """Make a never set-up account's special folders (attribute -> name), subscribed; the names made.

        Once done, later logins of the user to this process skip the trip to the disk.
        """
        if self._provisioned:
            return succeed([])

        def done(made: list[str]) -> list[str]:
            self._provisioned = True
            return made

        return self._executor.run(_provision, self.path, defaults).addCallback(done)

    def delete_folder(self, name: str, origin: object = None) -> "Deferred[None]":
        """Delete a folder and its messages (its subfolders stay); sessions holding it are told."""

        def deleted(name: str) -> None:
            folder = self._folders.pop(name, None)
            if folder is not None:
                folder.announce_deleted()
            self._tell("folder_deleted", name, origin)

        return self._validated(_delete, name).addCallback(deleted)

    def rename_folder(self, old: str, new: str, origin: object = None) -> "Deferred[None]":
        """Rename a folder with its subfolders; renaming INBOX moves its mail.

        Sessions holding a renamed folder find it gone at their next sync.
        """
        try:
            old, new = names.validate(old), names.validate(new)
        except InvalidFolderName:
            return fail()

        def renamed(done: Renamed) -> "Deferred[None] | None":
            if done.made:
                self._tell("folders_created", done.made, origin)
            self._tell("folders_renamed", done.pairs, origin)
            if old == names.INBOX:
                inbox = self._folders.get(names.INBOX)
                # Its mail moved; a listing soon after ours may not see a stamp move.
                return None if inbox is None else inbox._rescan()
            for name in list(self._folders):
                if name == old or name.startswith(old + names.SEPARATOR):
                    del self._folders[name]
            return None

        return self._executor.run(_rename, self.path, old, new).addCallback(renamed)

    def quota_usage(self, limits: maildirsize.Limits | None = None) -> "Deferred[maildirsize.Usage]":
        """Bytes and messages in the user's Maildir, from its ``maildirsize``: IMAP QUOTA's STORAGE and MESSAGE.

        *limits* (the configured ones) replace those the file holds, which
        are kept otherwise.  The file is made, or recalculated, where
        Maildir++ says its figures cannot be trusted.
        """
        return self._executor.run(maildirsize.usage, self.path, limits)

    # -- annotations (RFC 5464) ----------------------------------------------

    def annotations(self, name: str) -> "Deferred[metadata.Entries]":
        """The entries of folder *name*, or of the server for :data:`metadata.SERVER`.

        Fails with :class:`NoSuchFolder` for a folder that is not there.
        """

        def read(root: str, name: str) -> metadata.Entries:
            if name != metadata.SERVER and not _exists(root, name):
                raise NoSuchFolder(name)
            return metadata.read(root).get(name, {})

        return self._annotation_job(read, name)

    def annotate(
        self, name: str, changes: dict[str, bytes | None], limits: metadata.Limits, origin: object = None,
    ) -> "Deferred[None]":
        """Set (``None``: remove) entries of folder *name* or of the server, all or none (RFC 5464 4.3)."""

        def done(_: object) -> None:
            self._tell("annotations_changed", name, sorted(changes), origin)

        return self._annotation_job(
            lambda root, n: metadata.update(root, n, changes, limits, lambda: _exists(root, n)), name,
        ).addCallback(done)

    def _annotation_job(self, job: Callable[[str, str], T], name: str) -> "Deferred[T]":
        """Like :meth:`_validated`, but the server's name ``""`` is no folder name to check."""
        if name == metadata.SERVER:
            return self._executor.run(job, self.path, name)
        return self._validated(job, name)

    # -- subscriptions (RFC 3501 6.3.6) --------------------------------------

    def subscriptions(self) -> "Deferred[set[str]]":
        """Subscribed folder names (they need not exist)."""
        return self._executor.run(subsfile.read, self.path)

    def subscribe(self, name: str, origin: object = None) -> "Deferred[None]":
        """Add a name to the subscriptions."""
        return self._subscription(lambda subs, n: subs | {n}, name, True, origin)

    def unsubscribe(self, name: str, origin: object = None) -> "Deferred[None]":
        """Remove a name from the subscriptions; fails with NoSuchFolder if absent."""

        def remove(subs: set[str], name: str) -> set[str]:
            if name not in subs:
                raise NoSuchFolder(name)
            return subs - {name}

        return self._subscription(remove, name, False, origin)

    def _subscription(
        self, change: Callable[[set[str], str], set[str]], name: str, subscribed: bool, origin: object,
    ) -> "Deferred[None]":
        def done(_: object) -> None:
            self._tell("subscription_changed", names.validate(name), subscribed, origin)

        return self._validated(lambda root, n: subsfile.edit(root, lambda subs: change(subs, n)), name).addCallback(done)

    def _validated(self, job: Callable[[str, str], T], name: str) -> "Deferred[T]":
        """Run ``job(root, canonical name)`` in the executor once *name* is valid."""
        try:
            name = names.validate(name)
        except InvalidFolderName:
            return fail()
        return self._executor.run(job, self.path, name)

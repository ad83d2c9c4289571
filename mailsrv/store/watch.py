"""Live updates from changes made outside mailsrv: watching the ``new/`` and ``cur/`` of selected folders.

A change made through a :class:`~mailsrv.store.folder.Folder` (IMAP, POP3,
SMTP delivery in this process) is announced by the folder itself.  One made
by another program writing the Maildir (procmail, mutt, doveadm, a second
mailsrv on the same data dir) is only found by :meth:`Folder.sync`; this
module calls it when the directories change, so that every selected
session, IDLE included, hears of new mail, flag changes and expunges
within a second.

A folder is watched only while it has listeners (selected sessions): the
folder starts its watch with the first and stops it with the last
(:meth:`Watcher.follow`).  Two ways to notice a change:

* inotify (Linux): one descriptor for the whole process, two watches per
  folder.  Events name files, so the events of the folder's own writes are
  recognised and cost nothing: a name the folder already shows where the
  event says it is (:meth:`Folder.shows`) needs no sync.  A name the folder
  disagrees with at two checks in a row (:data:`DELAY` apart: its own
  rename or delivery may still be on its way back from the disk pool)
  means a sync.  A burst of events (a delivery of 1,000 files) costs a
  sync per check, not one per file.
* polling, where inotify is not available or fails (not Linux, no more
  watches for this user: ``fs.inotify.max_user_watches``), and wherever
  ``[imap] watch = "poll"`` says so: the two directory stamps, read in the
  disk pool every ``[imap] poll_interval_ms``; a sync when they moved.
  inotify sees only the changes made on its own host, so a Maildir on a
  network file system shared by several hosts needs ``"poll"``; it is not
  detected.

When the kernel's queue of events overflows (more than
``fs.inotify.max_queued_events`` unread: a STORE on 10,000 messages makes
20,000), every watched folder is synced once.  What neither way sees: a
change to ``dovecot-uidlist`` alone (another writer's UIDs are read by the
sync that its new file causes), and another program renaming a whole
folder, which the next sync of a session (a command, or IDLE's own poll)
finds.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Callable

from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.store.polling import Polling, cancel

from mailsrv.store.errors import NoSuchFolder

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

    from mailsrv.store.folder import Folder
    from mailsrv.store.inotifier import Directories
    from mailsrv.workers import Executor

log = Logger()

#: Seconds between a change and the check of what it was: long enough for a burst to gather.
DELAY = 0.1
#: Names kept per check; a bigger burst is synced without looking at each.
MAX_NAMES = 10_000
METHODS = ("inotify", "poll")
_SUBDIRS = ("new", "cur")

#: Stop watching: what :meth:`Watcher.follow` returns.
Unwatch = Callable[[], None]


class Changes:
    """One watched folder's changes seen since its last check, and the syncs they call for."""

    def __init__(self, folder: "Folder", clock: "IReactorTime", delay: float = DELAY) -> None:
        self._folder = folder
        self._clock = clock
        self._delay = delay
        self._seen: dict[str, bool] = {}  # "new/x" or "cur/x" -> there after its last event
        self._doubted: set[str] = set()  # names the folder disagreed with at the last check
        self._unsure = False  # a change that names no file (or too many): sync
        self._timer: "IDelayedCall | None" = None
        self._stopped = False

    def file_event(self, rel: str, present: bool) -> None:
        """A file appeared at (*present*) or left *rel*."""
        if len(self._seen) < MAX_NAMES:
            self._seen[rel] = present
        else:
            self._unsure = True
        self._arm()

    def changed(self) -> None:
        """Something changed that no file name tells: sync at the next check."""
        self._unsure = True
        self._arm()

    def stop(self) -> None:
        """No more checks or syncs."""
        self._stopped = True
        cancel(self._timer)
        self._timer = None

    def _arm(self) -> None:
        if self._timer is None and not self._stopped:
            self._timer = self._clock.callLater(self._delay, self._check)

    def _check(self) -> None:
        self._timer = None
        shows = self._folder.shows
        disagreed = {rel for rel, present in self._seen.items() if shows(rel) != present}
        if self._unsure or disagreed & self._doubted:
            self._seen, self._doubted, self._unsure = {}, set(), False
            self._folder.sync().addErrback(self._sync_failed)
            return
        self._seen = {rel: self._seen[rel] for rel in disagreed}
        self._doubted = disagreed
        if disagreed:
            self._arm()

    def _sync_failed(self, failure: Failure) -> None:
        if failure.check(NoSuchFolder):  # deleted by another program: its sessions must end
            self.stop()
            self._folder.announce_deleted()
            return
        log.failure("{folder}: syncing after a change on disk failed", failure, folder=self._folder.path)


def _listener(changes: Changes, sub: str) -> "Callable[[str | None, bool], None]":
    """What the watch of *sub* (``new`` or ``cur``) tells *changes*: ``(name, present)``, None for the directory."""

    def heard(name: str | None, present: bool) -> None:
        if name is None:
            changes.changed()
        elif not name.startswith("."):  # not a message (as for the folder's listing)
            changes.file_event(f"{sub}/{name}", present)

    return heard


class Watcher:
    """Watches folders for the store: inotify where it works (and *method* is ``"inotify"``), polling elsewhere.

    One per process; *executor* is the store's disk pool, *reactor* gives
    the clock and runs the inotify descriptor.  *directories* replaces the
    inotify watches (tests).
    """

    def __init__(
        self, reactor: Any, executor: "Executor", method: str = "inotify", poll_interval: float = 0.5,
        directories: "Directories | None" = None,
    ) -> None:
        self._reactor = reactor
        self._executor = executor
        self._interval = poll_interval
        self._directories = directories
        self._inotify = method == "inotify"
        self._warned = False

    def follow(self, folder: "Folder") -> Unwatch:
        """Sync *folder* whenever its directories change, until the returned function is called."""
        changes = Changes(folder, self._reactor)
        unwatch = self._watch(folder.path, changes) if self._inotify else None
        if unwatch is None:
            unwatch = Polling(changes, folder.path, self._executor, self._reactor, self._interval).stop

        def stop() -> None:
            unwatch()
            changes.stop()

        return stop

    def _watch(self, path: str, changes: Changes) -> Unwatch | None:
        """inotify watches of *path*'s ``new/`` and ``cur/``; None when they cannot be had."""
        directories = self._inotify_directories()
        if directories is None:
            return None
        wanted = [(os.path.join(path, sub), _listener(changes, sub)) for sub in _SUBDIRS]
        added: list[tuple[str, Callable[[str | None, bool], None]]] = []
        try:
            for directory, heard in wanted:
                directories.add(directory, heard)
                added.append((directory, heard))
        except OSError as e:  # inotifier.WatchFailed
            for directory, heard in added:
                directories.remove(directory, heard)
            self._warn_once("inotify failed ({error}) for {folder}: polling it every {interval} s instead"
                            " (is fs.inotify.max_user_watches or max_user_instances reached?)",
                            error=str(e), folder=path)
            return None

        def unwatch() -> None:
            for directory, heard in wanted:
                directories.remove(directory, heard)

        return unwatch

    def _inotify_directories(self) -> "Directories | None":
        if self._directories is None:
            try:
                from mailsrv.store.inotifier import Directories
            except ImportError as e:  # not Linux
                self._inotify = False
                self._warn_once("no inotify here ({error}): polling selected folders every {interval} s",
                                error=str(e), folder=None)
                return None
            self._directories = Directories(self._reactor)
        return self._directories

    def _warn_once(self, message: str, **fields: object) -> None:
        if not self._warned:
            self._warned = True
            log.warn(message, interval=self._interval, **fields)

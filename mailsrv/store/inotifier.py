"""One inotify descriptor for the whole process, shared by every watched directory (Linux only).

Built on ``twisted.internet.inotify``, around its defects
(docs/twisted-notes.rst, "inotify: a deleted directory closes every watch",
"inotify: watch tables"): its reader closes the descriptor, and with it
every other watch of the process, when any one watched directory is
deleted; a second watch of a path it already watches gets the first one's
callbacks, not its own; a watch the kernel dropped (directory deleted, file
system unmounted) stays in its tables, so the path could never be watched
again; and the kernel's notice that it dropped events (its queue
overflowed) is itself dropped.  Here each directory is watched once and
fans out to its listeners, a dropped watch is forgotten, an overflow tells
every listener that its directory changed, and the descriptor is closed
when the last directory is let go (and opened again for the next one), so
no watch or descriptor outlives the sessions that wanted it.

Importing this module fails (``ImportError``) where there is no inotify.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from twisted.internet import inotify, main
from twisted.python.failure import Failure
from twisted.python.filepath import FilePath

#: Told ``(file name, present)`` for a file that appeared in (or left) the directory,
#: ``(None, False)`` when the directory itself changed (moved, deleted, unmounted).
Listener = Callable[["str | None", bool], None]

PRESENT = inotify.IN_CREATE | inotify.IN_MOVED_TO
ABSENT = inotify.IN_DELETE | inotify.IN_MOVED_FROM
#: Events about the watched directory itself.
SELF = inotify.IN_MOVE_SELF | inotify.IN_DELETE_SELF | inotify.IN_UNMOUNT | inotify.IN_IGNORED
MASK = PRESENT | ABSENT | inotify.IN_MOVE_SELF | inotify.IN_ONLYDIR


#: The watch descriptor of the kernel's "queue overflowed" event: -1, which Twisted reads unsigned.
OVERFLOW_WD = 0xFFFFFFFF


class WatchFailed(OSError):
    """No inotify descriptor, or no watch (no such directory, or no more watches for this user)."""


class Descriptor(inotify.INotify):
    """Twisted's ``INotify``, which only :meth:`close` closes, and which tells of an overflow."""

    def on_overflow(self, overflowed: Callable[[], None]) -> None:
        """Call *overflowed* when the kernel dropped events (more than ``max_queued_events`` unread).

        Twisted looks the event's watch descriptor up like any other and
        drops it, finding none; a watch point under that number catches it.
        """
        self._watchpoints[OVERFLOW_WD] = inotify._Watch(FilePath(b"/"), callbacks=[lambda *_: overflowed()])

    def loseConnection(self, *args: Any) -> None:
        """Twisted's reader calls this when one watched directory is deleted: every other watch stays."""

    def close(self) -> None:
        """Close the descriptor now (no reactor turn needed)."""
        self.connectionLost(Failure(main.CONNECTION_DONE))


class Directories:
    """Directories watched for files appearing and leaving, each told to its listeners.

    *make* opens the descriptor (``Descriptor(reactor)``; tests give one
    that fails).  Every method runs on the reactor thread; adding a watch
    is one system call.
    """

    def __init__(self, reactor: Any, make: Callable[[Any], Descriptor] = Descriptor) -> None:
        self._reactor = reactor
        self._make = make
        self._descriptor: Descriptor | None = None
        self._listeners: dict[bytes, list[Listener]] = {}

    def watching(self) -> int:
        """How many directories have a watch (0 once every listener left: no descriptor open)."""
        return len(self._listeners)

    def add(self, path: str, listener: Listener) -> None:
        """Tell *listener* of the changes in directory *path*; :class:`WatchFailed` if it cannot be watched."""
        key = os.fsencode(os.path.abspath(path))  # as FilePath has it
        if key not in self._listeners:
            descriptor = self._open()
            try:
                descriptor.watch(FilePath(key), MASK, callbacks=[self._event])
            except inotify.INotifyError as e:
                self._close_if_idle()
                raise WatchFailed(str(e)) from None
            self._listeners[key] = []
        self._listeners[key].append(listener)

    def remove(self, path: str, listener: Listener) -> None:
        """Stop telling *listener*; the watch goes with its last listener (unknown ones are ignored)."""
        key = os.fsencode(os.path.abspath(path))  # as FilePath has it
        listeners = self._listeners.get(key)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[key]
            self._unwatch(FilePath(key))
            self._close_if_idle()

    def _open(self) -> Descriptor:
        if self._descriptor is None:
            try:
                descriptor = self._make(self._reactor)
            except inotify.INotifyError as e:
                raise WatchFailed(str(e)) from None
            descriptor.on_overflow(self._overflowed)
            descriptor.startReading()
            self._descriptor = descriptor
        return self._descriptor

    def _close_if_idle(self) -> None:
        if not self._listeners and self._descriptor is not None:
            self._descriptor.close()
            self._descriptor = None

    def _unwatch(self, path: FilePath) -> None:
        """Forget *path*'s watch in Twisted's tables too (it may be gone from the kernel already)."""
        if self._descriptor is not None:
            try:
                self._descriptor.ignore(path)
            except KeyError:  # Twisted dropped it itself (IN_DELETE_SELF)
                pass

    def _overflowed(self) -> None:
        """Events were lost: every directory may have changed."""
        for listeners in list(self._listeners.values()):
            for listener in list(listeners):
                listener(None, False)

    def _event(self, _watch: object, path: FilePath, mask: int) -> None:
        if mask & SELF:
            self._directory_changed(path.path, mask)
            return
        for listener in list(self._listeners.get(path.dirname(), ())):
            listener(os.fsdecode(path.basename()), bool(mask & PRESENT))

    def _directory_changed(self, key: bytes, mask: int) -> None:
        """The directory moved or went; a watch the kernel dropped is forgotten (a new one can be made)."""
        listeners = self._listeners.get(key, [])
        dropped = mask & (inotify.IN_DELETE_SELF | inotify.IN_IGNORED)
        if dropped:
            self._listeners.pop(key, None)
            if not mask & inotify.IN_DELETE_SELF:  # Twisted forgets those itself, right after this call
                self._unwatch(FilePath(key))
        for listener in list(listeners):
            listener(None, False)
        if dropped:
            self._close_if_idle()

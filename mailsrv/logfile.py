"""The log file: rotated by size with old files deleted, reopened on SIGHUP.

twistd's own log file renames itself every 1,000,000 octets and never
deletes an old one, is not opened for appending (logrotate's
``copytruncate`` then leaves a run of NULs), and cannot be reopened by a
signal (docs/twisted-notes.rst, "Log file rotation").  Where twistd would log
to a file, mailsrv hands it this one instead: twistd uses the application's
``ILogObserver`` component in place of its own file
(:meth:`mailsrv.service.MailServer.setServiceParent` sets it).  With ``-n``
and no ``--logfile``, ``--logfile=-``, ``--syslog`` or ``--logger``, twistd's
choice stands and there is no file to rotate.
"""

from __future__ import annotations

import os
import threading
from typing import IO, Any, Callable, Mapping

from twisted.logger import ILogObserver, LogEvent, formatEventAsClassicLogText, formatTime
from twisted.python import threadable
from zope.interface import implementer

from mailsrv.config import LogConfig

#: A new log file: the server and its admins read it; it names users and client addresses.
MODE = 0o640


#: :func:`twistd_log_target` for standard output.
STDOUT = "-"


def twistd_log_target(twistd_options: Mapping[str, Any] | None) -> str | None:
    """The file twistd would log to with these options, :data:`STDOUT`, or ``None`` when it logs elsewhere.

    The same rules as ``twisted.scripts._twistd_unix.UnixAppLogger``: a
    daemon without ``--logfile`` logs to ``twistd.log``, ``-n`` without it
    (or ``--logfile=-``) to standard output.
    """
    if twistd_options is None or twistd_options.get("logger") or twistd_options.get("syslog"):
        return None
    path = twistd_options.get("logfile") or ""
    if path == "-" or (not path and twistd_options.get("nodaemon")):
        return STDOUT
    return os.path.abspath(path or "twistd.log")


class LogFile:
    """An append-only log file rotated after ``rotate_size`` octets, ``rotate_keep`` old files kept.

    Rotated files are ``FILE.1`` (the newest) to ``FILE.N``, as twistd names
    them.  Written from any thread (a worker may log), hence the lock.  A
    rotation that fails (the directory is not writable after twistd dropped
    privileges) says so in the file and goes on writing to it.
    """

    def __init__(self, path: str, config: LogConfig) -> None:
        self.path = path
        self.rotate_size = config.rotate_size
        self.rotate_keep = config.rotate_keep
        self._lock = threading.Lock()
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, MODE)

    def write(self, text: str) -> None:
        """Append *text* (one formatted event), rotating first when it would pass ``rotate_size``."""
        data = text.encode("utf-8", "replace")
        with self._lock:
            if self.rotate_size and self._size and self._size + len(data) > self.rotate_size:
                self._rotate()
            self._append(data)

    def flush(self) -> None:
        """Nothing to do: every write goes straight to the file."""

    def rotate(self) -> None:
        """Rotate now (SIGUSR1, as with twistd's own log file)."""
        with self._lock:
            self._rotate()

    def reopen(self) -> None:
        """Continue in a new file at :attr:`path` (after logrotate renamed the old one).

        The new file is opened before the old one is closed, so on
        ``OSError`` (raised to the caller) logging goes on where it was.
        """
        fd = self._open()
        with self._lock:
            old, self._fd = self._fd, fd
            self._size = os.fstat(fd).st_size
        os.close(old)

    def close(self) -> None:
        """Close the file (the server is stopping)."""
        with self._lock:
            os.close(self._fd)

    def _append(self, data: bytes) -> None:
        with memoryview(data) as view:
            written = 0
            while written < len(view):
                written += os.write(self._fd, view[written:])
        self._size += len(data)

    def _rotate(self) -> None:
        try:
            oldest = f"{self.path}.{self.rotate_keep}"
            if os.path.exists(oldest):
                os.remove(oldest)
            for number in range(self.rotate_keep - 1, 0, -1):
                if os.path.exists(f"{self.path}.{number}"):
                    os.rename(f"{self.path}.{number}", f"{self.path}.{number + 1}")
            os.rename(self.path, f"{self.path}.1")
            fd = self._open()
        except OSError as e:
            self._append(f"mailsrv: cannot rotate {self.path}: {e.strerror}; going on in this file\n".encode())
            self._size = 0  # try again after another rotate_size octets
            return
        os.close(self._fd)
        self._fd, self._size = fd, 0


class _TimePrefix:
    """twistd's time prefix (:func:`twisted.logger.formatTime`, to the second), made once a second.

    Formatting the time is half the cost of a log line, and a busy server
    writes thousands of lines within the same second.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._text = ""

    def __call__(self, when: float | None) -> str:
        if when is None:
            return formatTime(None)
        second = int(when)
        if second != self._second:
            self._second, self._text = second, formatTime(second)
        return self._text


@implementer(ILogObserver)
class TextObserver:
    """Writes lines as twistd's ``textFileLogObserver`` does, batched per reactor turn.

    A busy server logs several lines per message; each one written at once
    is a system call on the reactor thread.  Lines logged on the reactor
    thread while it runs are kept and written together in the next turn
    (before any reply of that turn reaches a client); lines from other
    threads, and every line while the reactor is not running, are written
    at once.  What is kept is written at shutdown too.
    """

    def __init__(
        self, out: "IO[str] | LogFile", reactor: Any = None,
        on_reactor_thread: Callable[[], bool] = threadable.isInIOThread,
    ) -> None:
        self._out = out
        self._reactor = reactor
        self._on_reactor_thread = on_reactor_thread
        self._prefix = _TimePrefix()
        self._kept: list[str] = []
        if reactor is not None:
            reactor.addSystemEventTrigger("after", "shutdown", self._write_kept)

    def __call__(self, event: LogEvent) -> None:
        text = formatEventAsClassicLogText(event, formatTime=self._prefix)
        if not text:
            return
        if self._reactor is not None and self._reactor.running and self._on_reactor_thread():
            self._kept.append(text)
            if len(self._kept) == 1:
                self._reactor.callLater(0, self._write_kept)
            return
        self._write(text)

    def _write_kept(self) -> None:
        if self._kept:
            text, self._kept = "".join(self._kept), []
            self._write(text)

    def _write(self, text: str) -> None:
        self._out.write(text)
        self._out.flush()

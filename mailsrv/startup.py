"""A start that fails ends in one line on stderr, a non-zero exit and no pid file, with or without ``-n``.

twistd turns only an ``Exception`` raised while it starts the services into
a report, and as a daemon its waiting parent hangs for ever on anything
else, such as the ``SystemExit`` of a port already in use; the pid file
stays behind either way, and with ``-n`` the reason goes to the log, not to
the terminal (docs/twisted-notes.rst, "Daemon start failures").  So every
step of mailsrv's own start runs under :meth:`StartGuard.watch`, and from
the moment twistd has forked and written the pid file until the server is
started, any exit of the process (twistd's own ``sys.exit`` when it cannot
change to ``--uid`` included) is reported the same way: to the waiting
parent through twistd's status pipe as a daemon, to stderr with ``-n``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any, NoReturn

from twisted.logger import Logger

log = Logger()

#: What twistd's parent reads from the status pipe: "1 " and at most 98 octets of reason.
_STATUS_MAX = 100


class StartGuard:
    """Watches the start of the services of one twistd run (*twistd_options*: its ``ServerOptions``).

    Without twistd options (a test building the services) a failure is
    logged and raised as ``SystemExit`` only.
    """

    def __init__(self, twistd_options: MutableMapping[str, Any] | None) -> None:
        self._options = twistd_options
        self._reason: str | None = None

    def arm(self) -> None:
        """From now until :meth:`started`, an exit of the process is a failed start."""
        if self._options is not None:
            atexit.register(self._exited)

    def started(self) -> None:
        """The server runs: exits are no longer start failures."""
        atexit.unregister(self._exited)

    @contextlib.contextmanager
    def watch(self) -> Iterator[None]:
        """Turn a failure of the start step run inside into :meth:`fail`."""
        try:
            yield
        except SystemExit as e:
            if isinstance(e.code, str):  # the one-line reason of a step (a listener that cannot bind)
                self.fail(e.code)
            raise
        except Exception as e:
            log.failure("start-up failed")
            self.fail(f"mailsrv: start-up failed: {e}")

    def fail(self, reason: str) -> NoReturn:
        """End the start with the one-line *reason*: logged here, reported when the process exits."""
        self._reason = reason
        log.critical("{reason}", reason=reason)
        raise SystemExit(1)

    def _exited(self) -> None:
        assert self._options is not None
        report_failed_start(self._reason or "mailsrv: start-up did not complete; the log says why", self._options)


def report_failed_start(reason: str, twistd_options: MutableMapping[str, Any]) -> None:
    """Tell the admin *reason* where they are looking and remove the pid file twistd wrote.

    A daemon's parent process waits on twistd's status pipe and prints what
    comes through it on its stderr, then exits 1; with ``-n`` the terminal's
    stderr is ``sys.__stderr__`` (twistd sent ``sys.stderr`` to the log).
    The pid file goes first: once the parent has exited, it is gone.
    """
    _remove_own_pidfile(twistd_options.get("pidfile"))
    pipe = twistd_options.get("statusPipe")
    if pipe is not None:
        os.write(pipe, (b"1 " + reason.encode("ascii", "backslashreplace"))[:_STATUS_MAX])
        os.close(pipe)
        twistd_options["statusPipe"] = None
    elif sys.__stderr__ is not None:
        sys.__stderr__.write(reason + "\n")
        sys.__stderr__.flush()


def _remove_own_pidfile(path: str | None) -> None:
    """Remove *path* if it names this process (twistd wrote it after forking)."""
    if not path:
        return
    try:
        with open(path, "rb") as f:
            if f.read().strip() != str(os.getpid()).encode():
                return
        os.unlink(path)
    except OSError as e:
        log.warn("cannot remove the pid file {path}: {error}", path=path, error=e.strerror)

"""``[log]``: how the log file is rotated (see :mod:`mailsrv.logfile`).

twistd alone renames its log file every 1,000,000 octets and never deletes
an old one (docs/twisted-notes.rst, "Log file rotation"), so a busy server
fills its disk.  These keys bound that, or hand rotation to logrotate.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Table, at_least, setting


@dataclass(frozen=True)
class LogConfig(Table):
    """Rotation of the file twistd logs to (``--logfile``, or ``twistd.log`` of a daemon)."""

    DOC = (
        "The log file (twistd --logfile FILE; a daemon without it logs to twistd.log). SIGUSR1 rotates it "
        "now, SIGHUP reopens it (after logrotate renamed it)."
    )

    rotate_size: int = setting(
        10 * 1024 * 1024,
        "Octets after which the log file is renamed FILE.1 (FILE.1 becomes FILE.2, ...) and a new one "
        "started. 0: never; rotate it with logrotate and SIGHUP instead.",
        at_least(0),
    )
    rotate_keep: int = setting(
        10, "Rotated files kept (FILE.1 to FILE.N); the oldest beyond that is deleted.", at_least(1)
    )

"""What the command groups share: the ``--create`` option and the lines they print."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TextIO


def add_create_option(command: argparse.ArgumentParser) -> None:
    """``--create`` for the commands that may write the first entry of a new data dir.

    Without it a missing data dir is an error (see :func:`mailsrv.ops.use_data_dir`).
    """
    command.add_argument("--create", action="store_true",
                         help="create the data dir if it does not exist (a new server's first entry)")


def done(what: str, subject: str, path: str, file: TextIO | None = None) -> None:
    """The one line a successful change prints: what was done, to whom, in which file.

    The absolute path shows at a glance whether the running server's file
    was edited (``added dave@example.test (/var/lib/mailsrv/users)``).
    *file* is stdout unless the command's output proper goes there.
    """
    print(f"{what} {subject} ({os.path.abspath(path)})", file=file or sys.stdout)


def warn(message: str) -> None:
    """A warning for the admin: the command still did what it was asked."""
    print(f"mailsrv: warning: {message}", file=sys.stderr)

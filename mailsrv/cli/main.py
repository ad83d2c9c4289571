"""The ``mailsrv`` command line: parser, configuration, exit codes, error messages.

It edits the same files the server reads (see :mod:`mailsrv.accounts`),
under a lock and by atomic replacement, and the server picks the change up
on its next lookup, so no restart or signal is needed.  Exit codes: 0 done,
1 the operation failed (message on stderr), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from zope.interface import provider

from mailsrv.cli import aliases, users
from mailsrv.config import ConfigError, load
from mailsrv.ops import OpsError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@provider(ILogObserver)
def _warnings_to_stderr(event: dict) -> None:
    """Show the account modules' warnings (bad lines in a file) to the admin."""
    if event.get("log_level", LogLevel.info) >= LogLevel.warn:
        print(f"mailsrv: warning: {formatEvent(event)}", file=sys.stderr)


def parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then one sub-command per group."""
    top = argparse.ArgumentParser(prog="mailsrv", description="Manage mailsrv users and aliases.")
    top.add_argument("--config", metavar="FILE", help="TOML configuration (default: embedded defaults)")
    groups = top.add_subparsers(dest="group", required=True)
    users.register(groups)
    aliases.register(groups)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line *argv* (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    try:
        config = load(args.config)
    except ConfigError as e:
        print(f"mailsrv: {e}", file=sys.stderr)
        return EXIT_USAGE
    globalLogPublisher.addObserver(_warnings_to_stderr)
    try:
        args.handler(config, args)
    except OpsError as e:
        print(f"mailsrv: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        globalLogPublisher.removeObserver(_warnings_to_stderr)
    return EXIT_OK

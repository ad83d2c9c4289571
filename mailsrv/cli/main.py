"""The ``mailsrv`` command line: parser, configuration, exit codes, error messages.

It edits the same files the server reads (see :mod:`mailsrv.accounts`),
under a lock and by atomic replacement, and the server picks the change up
on its next lookup, so no restart or signal is needed.  It finds the
configuration as ``twistd mailsrv`` does (:func:`mailsrv.config.locate`)
and never creates a data dir it was not pointed at (an absolute
``data_dir`` named with ``--config``, ``$MAILSRV_CONFIG`` or ``--data-dir``)
unless told to (``--create``), so a command run from the wrong directory
fails instead of editing files no server reads.  Exit codes: 0 done, 1 the operation failed (message on stderr),
2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from zope.interface import provider

from mailsrv.cli import aliases, dkim, dns, init, queue, selftest, users
from mailsrv.cli.common import warn
from mailsrv.config import CONFIG_ENV, SYSTEM_CONFIG, ConfigError, load, locate
from mailsrv.ops import NoDataDir, OpsError, use_data_dir

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@provider(ILogObserver)
def _warnings_to_stderr(event: dict) -> None:
    """Show the account modules' warnings (bad lines in a file) to the admin."""
    if event.get("log_level", LogLevel.info) >= LogLevel.warn:
        warn(formatEvent(event))


def parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then one sub-command per group."""
    top = argparse.ArgumentParser(prog="mailsrv", description="Manage mailsrv users, aliases, the outbound queue and DKIM keys; print DNS records.")
    top.add_argument(
        "-c", "--config", metavar="FILE",
        help=f"the server's TOML configuration (default, as for twistd mailsrv: ${CONFIG_ENV}, "
             f"else {SYSTEM_CONFIG} if it exists, else the embedded defaults)",
    )
    top.add_argument("--data-dir", metavar="DIR", help="override data_dir from the configuration")
    groups = top.add_subparsers(dest="group", required=True)
    users.register(groups)
    aliases.register(groups)
    queue.register(groups)
    dkim.register(groups)
    dns.register(groups)
    selftest.register(groups)
    init.register(groups)
    return top


def _named_explicitly(args: argparse.Namespace, data_dir: str) -> bool:
    """Whether the admin named this data dir, as an absolute path, on this command line.

    ``--data-dir /var/lib/mailsrv``, or a ``--config`` / ``$MAILSRV_CONFIG``
    file whose ``data_dir`` is absolute, say exactly which dir is meant, so an
    adding command may make it without ``--create`` (a new server's first
    user, added before its first start).  A relative dir, or one from the
    system file or the embedded defaults, depends on where the command
    happens to run: that is the case ``--create`` guards.
    """
    named = args.data_dir is not None or bool(args.config or os.environ.get(CONFIG_ENV))
    return named and os.path.isabs(data_dir)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line *argv* (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # argparse exits 2 on bad usage, 0 on --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if not getattr(args, "needs_config", True):  # init writes the configuration the others read
        try:
            args.handler(args)
        except OpsError as e:
            print(f"mailsrv: {e}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    try:
        config = load(locate(args.config), data_dir=args.data_dir)
    except ConfigError as e:
        print(f"mailsrv: {e}", file=sys.stderr)
        return EXIT_USAGE
    if hasattr(args, "create") and _named_explicitly(args, config.data_dir):
        args.create = True
    globalLogPublisher.addObserver(_warnings_to_stderr)
    try:
        if not getattr(args, "create", False):
            use_data_dir(config)  # missing: say so before asking for a password
        args.handler(config, args)
    except NoDataDir as e:
        creates = "pass --create to make it, or " if hasattr(args, "create") else ""
        print(f"mailsrv: {e}; {creates}name the server's with --config or --data-dir", file=sys.stderr)
        return EXIT_FAILED
    except OpsError as e:
        print(f"mailsrv: {e}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        globalLogPublisher.removeObserver(_warnings_to_stderr)
    return EXIT_OK

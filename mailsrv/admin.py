"""The ``mailsrv`` command: manage users and aliases of a (running) server.

It edits the same files the server reads (see :mod:`mailsrv.accounts`),
under a lock and by atomic replacement, and the server picks the change up
on its next lookup, so no restart or signal is needed.  Exit codes: 0 done,
1 the operation failed (message on stderr), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from typing import Callable, Sequence

from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogPublisher
from zope.interface import provider

from mailsrv.accounts import aliases, passwords, users
from mailsrv.accounts.textfile import EditError, edit, read_text
from mailsrv.address import address_problem, canonical_address
from mailsrv.config import Config, ConfigError, load

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


@provider(ILogObserver)
def _warnings_to_stderr(event: dict) -> None:
    """Show the account modules' warnings (bad lines in a file) to the admin."""
    if event.get("log_level", LogLevel.info) >= LogLevel.warn:
        print(f"mailsrv: warning: {formatEvent(event)}", file=sys.stderr)


def _require_local(config: Config, domain: str) -> None:
    """Refuse a domain the server would not accept mail for."""
    if domain not in config.domains:
        known = ", ".join(config.domains)
        raise EditError(f"domain {domain} is not a local domain (domains in {config.source}: {known})")


def _address(address: str) -> str:
    """Canonical *address*, refusing anything but a plain ``local@domain``.

    The reason is spelled out: the admin typed something that looks like an
    address to them and needs to know which character or dot to change.
    """
    canonical = canonical_address(address)
    if canonical is None:
        raise EditError(f"not a plain address: {address!r}: {address_problem(address)}")
    return canonical


def _require_local_target(config: Config, target: str) -> None:
    """Refuse an alias target in another domain.

    The directory drops such targets (remote forwarding does not exist
    yet), so mail to the alias would be refused with "User unknown";
    saying so now beats an alias that silently never delivers.
    """
    domain = target.rpartition("@")[2]
    if domain not in config.domains:
        raise EditError(
            f"cannot forward to {target}: remote delivery is not supported yet, "
            f"targets must be in a local domain ({', '.join(config.domains)})"
        )


def _new_password(from_stdin: bool) -> str:
    """A new password from one stdin line or from two matching prompts."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Retype new password: ") != password:
            raise EditError("passwords do not match")
    if not password:
        raise EditError("empty password refused")
    return password


def _edit(config: Config, path: str, mode: int, change: Callable[[str], str]) -> None:
    """Apply *change* to the file at *path* under its lock, making the data dir if needed."""
    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    edit(path, change, mode)


def _user_add(config: Config, args: argparse.Namespace) -> None:
    address = _address(args.address)
    _require_local(config, address.rpartition("@")[2])
    if users.listed(read_text(config.users_file), address):
        raise EditError(f"user {address} already exists")  # before asking for a password
    stored = passwords.hash_password(_new_password(args.password_stdin))
    _edit(config, config.users_file, users.DEFAULT_MODE, lambda text: users.add(text, address, stored))


def _user_del(config: Config, args: argparse.Namespace) -> None:
    address = _address(args.address)
    _edit(config, config.users_file, users.DEFAULT_MODE, lambda text: users.remove(text, address))


def _user_passwd(config: Config, args: argparse.Namespace) -> None:
    address = _address(args.address)
    if not users.listed(read_text(config.users_file), address):
        raise EditError(f"no such user: {address}")  # before asking for a password
    stored = passwords.hash_password(_new_password(args.password_stdin))
    _edit(config, config.users_file, users.DEFAULT_MODE,
          lambda text: users.set_password(text, address, stored))


def _user_list(config: Config, args: argparse.Namespace) -> None:
    for address in sorted(users.parse(read_text(config.users_file), config.users_file)):
        print(address)


def _alias_add(config: Config, args: argparse.Namespace) -> None:
    key = aliases.alias_key(args.alias)
    if key is None:
        raise EditError(f"not an address or @domain: {args.alias!r}")
    _require_local(config, key.rpartition("@")[2])
    if key in users.parse(read_text(config.users_file), config.users_file):
        raise EditError(f"{key} is a user; an alias of the same name would never be used")
    targets = [_address(target) for target in args.targets]
    for target in targets:
        _require_local_target(config, target)
    source = config.aliases_file
    _edit(config, source, aliases.DEFAULT_MODE, lambda text: aliases.add(text, key, targets, source))


def _alias_del(config: Config, args: argparse.Namespace) -> None:
    key = aliases.alias_key(args.alias) or args.alias
    _edit(config, config.aliases_file, aliases.DEFAULT_MODE, lambda text: aliases.remove(text, key))


def _alias_list(config: Config, args: argparse.Namespace) -> None:
    for key, targets in sorted(aliases.parse(read_text(config.aliases_file), config.aliases_file).items()):
        print(f"{key}: {', '.join(targets)}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailsrv", description="Manage mailsrv users and aliases.")
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (default: embedded defaults)")
    groups = parser.add_subparsers(dest="group", required=True)

    user = groups.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    for name, handler, help_text, takes_password in (
        ("add", _user_add, "add a user", True),
        ("del", _user_del, "remove a user (the mailbox is kept)", False),
        ("passwd", _user_passwd, "change a user's password", True),
    ):
        sub = user.add_parser(name, help=help_text)
        sub.add_argument("address")
        if takes_password:
            sub.add_argument("--password-stdin", action="store_true",
                             help="read the password from one line of stdin")
        sub.set_defaults(handler=handler)
    user.add_parser("list", help="list users").set_defaults(handler=_user_list)

    alias = groups.add_parser("alias", help="manage aliases").add_subparsers(dest="action", required=True)
    sub = alias.add_parser("add", help="add targets to an alias (created if new); ALIAS may be @domain")
    sub.add_argument("alias")
    sub.add_argument("targets", nargs="+", metavar="TARGET")
    sub.set_defaults(handler=_alias_add)
    sub = alias.add_parser("del", help="remove an alias")
    sub.add_argument("alias")
    sub.set_defaults(handler=_alias_del)
    alias.add_parser("list", help="list aliases").set_defaults(handler=_alias_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line *argv* (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = _parser().parse_args(argv)
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
    except EditError as e:
        print(f"mailsrv: {e}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as e:
        print(f"mailsrv: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        globalLogPublisher.removeObserver(_warnings_to_stderr)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

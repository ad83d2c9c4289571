"""``mailsrv user add|del|passwd|list``."""

from __future__ import annotations

import argparse
import getpass
import sys

from mailsrv.cli.common import add_create_option, done
from mailsrv.config import Config
from mailsrv.ops import OpsError, users


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``user`` group to the command line."""
    user = groups.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    for name, handler, help_text, takes_password in (
        ("add", _add, "add a user", True),
        ("del", _del, "remove a user (the mailbox is kept)", False),
        ("passwd", _passwd, "change a user's password", True),
    ):
        sub = user.add_parser(name, help=help_text)
        sub.add_argument("address")
        if takes_password:
            sub.add_argument("--password-stdin", action="store_true",
                             help="read the password from one line of stdin")
        if name == "add":
            add_create_option(sub)
            sub.add_argument("--quota", metavar="SIZE", help=_QUOTA_HELP)
        sub.set_defaults(handler=handler)
    sub = user.add_parser("quota", help="set a user's own storage limit")
    sub.add_argument("address")
    sub.add_argument("size", help=_QUOTA_HELP)
    sub.set_defaults(handler=_quota)
    user.add_parser("list", help="list users").set_defaults(handler=_list)


_QUOTA_HELP = "the user's storage limit, e.g. 1G or 500M (a bare number is KiB; 0 = none), instead of [quota]'s"


def _new_password(from_stdin: bool) -> str:
    """A new password from one stdin line or from two matching prompts."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("New password: ")
    if getpass.getpass("Retype new password: ") != password:
        raise OpsError("passwords do not match")
    return password


def _add(config: Config, args: argparse.Namespace) -> None:
    address = users.new_user(config, args.address)  # before asking for a password
    if args.quota is not None:
        users.check_storage(args.quota)  # before asking for a password
    password = _new_password(args.password_stdin)
    done("added", users.add_user(config, address, password, args.create, args.quota), config.users_file)


def _quota(config: Config, args: argparse.Namespace) -> None:
    done(f"storage limit {args.size} for", users.set_storage(config, args.address, args.size), config.users_file)


def _del(config: Config, args: argparse.Namespace) -> None:
    done("removed", users.remove_user(config, args.address), config.users_file)


def _passwd(config: Config, args: argparse.Namespace) -> None:
    address = users.existing_user(config, args.address)  # before asking for a password
    done("new password for", users.set_password(config, address, _new_password(args.password_stdin)),
         config.users_file)


def _list(config: Config, args: argparse.Namespace) -> None:
    for address in users.list_users(config):
        print(address)

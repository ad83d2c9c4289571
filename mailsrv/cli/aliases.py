"""``mailsrv alias add|del|list``."""

from __future__ import annotations

import argparse

from mailsrv.cli.common import add_create_option, done, warn
from mailsrv.config import Config
from mailsrv.ops import aliases


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``alias`` group to the command line."""
    alias = groups.add_parser("alias", help="manage aliases").add_subparsers(dest="action", required=True)
    sub = alias.add_parser("add", help="add targets to an alias (created if new); ALIAS may be @domain")
    sub.add_argument("alias")
    sub.add_argument("targets", nargs="+", metavar="TARGET", help="a local address, or a remote one to forward to")
    add_create_option(sub)
    sub.set_defaults(handler=_add)
    sub = alias.add_parser("del", help="remove an alias")
    sub.add_argument("alias")
    sub.set_defaults(handler=_del)
    alias.add_parser("list", help="list aliases").set_defaults(handler=_list)


def _add(config: Config, args: argparse.Namespace) -> None:
    added = aliases.add_alias(config, args.alias, args.targets, args.create)
    for target in added.unknown:
        warn(f"{target} is neither a user nor an alias; mail for it is refused until it is one")
    done("added", f"{added.alias}: {', '.join(added.targets)}", config.aliases_file)


def _del(config: Config, args: argparse.Namespace) -> None:
    done("removed", aliases.remove_alias(config, args.alias), config.aliases_file)


def _list(config: Config, args: argparse.Namespace) -> None:
    for key, targets in aliases.list_aliases(config):
        print(f"{key}: {', '.join(targets)}")

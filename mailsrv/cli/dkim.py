"""``mailsrv dkim keygen|list``."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone

from mailsrv.cli.common import add_create_option, done
from mailsrv.config import Config
from mailsrv.dkim.keys import Algorithm, Key, default_selector
from mailsrv.ops import dkim


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``dkim`` group to the command line."""
    group = groups.add_parser("dkim", help="manage DKIM signing keys").add_subparsers(dest="action", required=True)
    sub = group.add_parser("keygen", help="make a signing key for a local domain and print its DNS record")
    sub.add_argument("domain")
    sub.add_argument("--selector", help=f"the key's name in DNS (default: mailsrvYYYYMM, now {default_selector()})")
    sub.add_argument("--algorithm", choices=[a.value for a in Algorithm], default=Algorithm.RSA.value,
                     help="rsa (2048 bits, the default: every verifier knows it) or ed25519 (RFC 8463)")
    add_create_option(sub)
    sub.set_defaults(handler=_keygen)
    group.add_parser("list", help="list the keys and their DNS records").set_defaults(handler=_list)


def _keygen(config: Config, args: argparse.Namespace) -> None:
    key, path = dkim.make_key(config, args.domain, args.selector, Algorithm(args.algorithm), args.create)
    # stdout is the record alone, as the contract gives it, so that it can go to a zone file as it is.
    done("made DKIM key", f"{key.selector}._domainkey.{key.domain}", path, file=sys.stderr)
    print(key.record)


def _describe(key: Key) -> str:
    """A zone-file comment above the record: whose key, which kind, since when."""
    made = datetime.fromtimestamp(key.created_ns / 1e9, timezone.utc)
    return f"; {key.domain} selector {key.selector}: {key.algorithm.value}, made {made:%Y-%m-%d}"


def _list(config: Config, args: argparse.Namespace) -> None:
    for key in dkim.list_keys(config):
        print(_describe(key))
        print(key.record)

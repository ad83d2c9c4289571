"""``mailsrv dns records``: the zone-file snippet to publish for a local domain."""

from __future__ import annotations

import argparse

from mailsrv.config import Config
from mailsrv.ops import dnsrecords


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``dns`` group to the command line."""
    group = groups.add_parser("dns", help="the DNS records a domain needs").add_subparsers(dest="action", required=True)
    sub = group.add_parser("records", help="print the records to publish for a local domain, with why each matters")
    sub.add_argument("domain")
    sub.add_argument("--address", action="append", metavar="IP",
                     help="a public address of the server (repeat for IPv4 and IPv6; default: public_addresses, "
                          "else the host's default routes)")
    sub.set_defaults(handler=_records)


def _records(config: Config, args: argparse.Namespace) -> None:
    print(dnsrecords.zone_text(config, args.domain, args.address), end="")

"""``mailsrv dns records``: the zone-file snippet to publish; ``mailsrv dns check``: what DNS says of it."""

from __future__ import annotations

import argparse
import json

from mailsrv.config import Config
from mailsrv.ops import OpsError, dnscheck, dnsrecords


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``dns`` group to the command line."""
    group = groups.add_parser("dns", help="the DNS records a domain needs").add_subparsers(dest="action", required=True)
    sub = group.add_parser("records", help="print the records to publish for a local domain, with why each matters")
    sub.add_argument("domain")
    sub.add_argument("--address", action="append", metavar="IP",
                     help="a public address of the server (repeat for IPv4 and IPv6; default: public_addresses, "
                          "else the host's default routes)")
    sub.set_defaults(handler=_records)
    sub = group.add_parser("check", help="look the records up through [dns] and say what is missing or wrong")
    sub.add_argument("domain")
    sub.add_argument("--address", action="append", metavar="IP", help="as for records")
    sub.add_argument("--json", action="store_true", help="print the findings as JSON")
    sub.set_defaults(handler=_check)


def _records(config: Config, args: argparse.Namespace) -> None:
    print(dnsrecords.zone_text(config, args.domain, args.address), end="")


def _check(config: Config, args: argparse.Namespace) -> None:
    findings = dnscheck.check(config, args.domain, args.address)
    if args.json:
        print(json.dumps([f.to_json() for f in findings], indent=1))
    else:
        print(dnscheck.report(findings), end="")
    bad = [f for f in findings if f.status is not dnscheck.Status.OK]
    if bad:
        raise OpsError(f"{len(bad)} of {len(findings)} checks of {args.domain} failed")

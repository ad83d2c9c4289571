"""``mailsrv init``: write the first configuration and data dir, from flags or by asking."""

from __future__ import annotations

import argparse
import socket

from mailsrv.config import SYSTEM_CONFIG, locate
from mailsrv.ops import OpsError
from mailsrv.ops import init as setup


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``init`` command to the command line."""
    sub = groups.add_parser(
        "init", help=f"write a configuration (--config, else {SYSTEM_CONFIG}) and make its data dir; "
                     "never overwrites one",
    )
    sub.add_argument("--hostname", help="the server's name in DNS, e.g. mail.example.org "
                                        "(default: this host's name, as hostname(1) prints it)")
    sub.add_argument("--domain", action="append", metavar="DOMAIN",
                     help="a local domain (repeat for more; default: the hostname's parent domain)")
    sub.add_argument("--data-dir", dest="init_data_dir", metavar="DIR",
                     help=f"where mail and accounts live (default {setup.DEFAULT_DATA_DIR})")
    sub.add_argument("--acme-email", metavar="ADDRESS",
                     help="get the certificate from Let's Encrypt (ACME, HTTP-01 on port 80; you agree to its "
                          "terms of service), with ADDRESS for its expiry notices; also turns on the http "
                          "and https listeners")
    sub.add_argument("--yes", action="store_true", help="ask nothing: defaults for what is not given, and write")
    sub.set_defaults(handler=run, needs_config=False)


def _ask(question: str, default: str, quiet: bool) -> str:
    """The admin's answer to *question* (*default* on an empty line, or at once when *quiet*)."""
    if quiet:
        return default
    try:
        return input(f"{question} [{default}]: ").strip() or default
    except EOFError:
        raise OpsError("no answer (input ended): give the flags, or --yes for the defaults") from None


def run(args: argparse.Namespace) -> None:
    """Gather the answers, write the file and the dir, say what was written."""
    path = locate(args.config) or SYSTEM_CONFIG
    hostname = args.hostname or _ask("Host name of this server (its MX and certificate name)", socket.gethostname(),
                                     args.yes)
    domains = args.domain or [_ask("Local domain (mail for it is delivered here)", setup.default_domain(hostname),
                                   args.yes)]
    data_dir = args.init_data_dir or args.data_dir or _ask("Data dir", setup.DEFAULT_DATA_DIR, args.yes)
    acme_email = args.acme_email
    if acme_email is None:  # --yes without the flag: no ACME, as the admin asked for nothing
        acme_email = "" if args.yes else _ask(
            "Contact address for a Let's Encrypt certificate (you agree to its terms; \"-\": none, you name "
            "a certificate)", f"postmaster@{domains[0]}", False)
    if not args.yes and _ask(f"Write {path}?", "y", False).lower() not in ("y", "yes"):
        raise OpsError("nothing written")
    config = setup.write(path, setup.Setup(hostname, tuple(domains), data_dir,
                                           "" if acme_email == "-" else acme_email))
    print(f"wrote {path} (hostname {config.hostname}, domains {', '.join(config.domains)}); "
          f"data dir {config.data_dir}")
    print("next:")
    for number, step in enumerate(setup.next_steps(path, config), 1):
        print(f"  {number}. {step}")

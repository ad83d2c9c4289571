"""``mailsrv selftest``: a mail client's round trip through the running server, one line per step."""

from __future__ import annotations

import argparse
import signal
from types import FrameType

from mailsrv.config import Config
from mailsrv.ops import OpsError, selftest


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``selftest`` command to the command line."""
    sub = groups.add_parser(
        "selftest", help="send a message to a temporary user and read it back over every listener; check TLS and DNS",
    )
    sub.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                     help="the longest wait for each answer of the server (default 30)")
    sub.add_argument("--no-dns", action="store_true", help="leave out the DNS check")
    sub.set_defaults(handler=_run)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _run(config: Config, args: argparse.Namespace) -> None:
    previous = signal.signal(signal.SIGTERM, _interrupt)  # killed: clean up as after Ctrl-C
    try:
        steps = selftest.run(config, lambda step: print(step.line(), flush=True), args.timeout, not args.no_dns)
    except KeyboardInterrupt:
        raise OpsError("selftest interrupted") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    failed = [step.name for step in steps if step.result == selftest.FAIL]
    if failed:
        raise OpsError(f"selftest failed: {len(failed)} of {len(steps)} steps ({', '.join(failed)})")
    print(f"selftest passed: {len(steps)} steps")

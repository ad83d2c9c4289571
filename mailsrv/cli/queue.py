"""``mailsrv queue list|show|retry|delete|bounce``: the outbound queue, while the server runs."""

from __future__ import annotations

import argparse
import time

from mailsrv.config import Config
from mailsrv.delivery.queuedir import Record, State
from mailsrv.ops import queue


def register(groups: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add the ``queue`` group to the command line."""
    group = groups.add_parser("queue", help="look at and act on mail waiting for other servers")
    actions = group.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every queued message with its recipients").set_defaults(handler=_list)
    for name, handler, help_text in (
        ("show", _show, "one message: envelope, recipients, header"),
        ("delete", _delete, "remove a message without telling its sender"),
        ("bounce", _bounce, "give up on a message: its sender gets a bounce"),
    ):
        sub = actions.add_parser(name, help=help_text)
        sub.add_argument("queue_id", metavar="ID")
        sub.set_defaults(handler=handler)
    sub = actions.add_parser("retry", help="attempt a message (without ID: every message) now")
    sub.add_argument("queue_id", metavar="ID", nargs="?")
    sub.set_defaults(handler=_retry)


def duration(seconds: float) -> str:
    """``3d4h``, ``2h13m``, ``5m``, ``40s``: to the hour, minute or second, as precise as a glance needs."""
    seconds = max(int(seconds), 0)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 60}m" if seconds >= 60 else f"{seconds}s"


def _describe(record: Record, now: float) -> list[str]:
    """The lines of one message: id, age, sender, then one per recipient."""
    lines = [f"{record.queue_id}  {duration(now - record.queued_at)}  {record.sender or '<>'}  {record.wire_size} octets"]
    for r in record.recipients:
        line = f"  {r.address}  {r.state.value}"
        if r.state is State.DEFERRED:
            line += f"  next attempt {'now' if r.next_attempt <= now else 'in ' + duration(r.next_attempt - now)}"
        if r.last_error and r.state is not State.DELIVERED:
            line += f"  {r.last_error}"
        lines.append(line)
    return lines


def _list(config: Config, args: argparse.Namespace) -> None:
    now = time.time()
    records = queue.list_queue(config)
    for record in records:
        print("\n".join(_describe(record, now)))
    print(f"{len(records)} message{'' if len(records) == 1 else 's'} in the queue")


def _show(config: Config, args: argparse.Namespace) -> None:
    record, header = queue.show(config, args.queue_id)
    print("\n".join(_describe(record, time.time())))
    print()
    print(header.decode("utf-8", "replace").replace("\r\n", "\n"), end="")


def _retry(config: Config, args: argparse.Namespace) -> None:
    for queue_id in queue.retry(config, args.queue_id):
        print(f"{queue_id}: due now")


def _delete(config: Config, args: argparse.Namespace) -> None:
    queue.delete(config, args.queue_id)
    print(f"{args.queue_id}: deleted")


def _bounce(config: Config, args: argparse.Namespace) -> None:
    recipients = queue.bounce(config, args.queue_id)
    print(f"{args.queue_id}: bounced {', '.join(recipients) or 'no recipient (none was waiting)'}")

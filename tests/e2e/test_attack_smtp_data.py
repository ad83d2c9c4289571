"""Attack: many parallel SMTP DATA transfers of 48 MiB on port 25 (no AUTH needed).

Issue 5 measured +382 MiB held and +622 MiB peak for 8 such transfers,
because every open transaction held its whole body in memory; 100 would
need about 5 GB.  Bodies must spool to disk past ``limits.spool_threshold``,
and a limit (``limits.max_connections_per_ip``, 50 by default) must refuse
or hold back what is beyond it, while every other client is served.
"""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest

from attack import (
    MiB, BigMessage, Closed, Conn, Gate, Probe, Refused, RSSMonitor, Silent, attack_server,
    attacker_source, log_problems, maildir_of, run_parallel, running, smtp_begin_data, smtp_open,
    stored_tail_sha256, verdict,
)

RECIPIENT = "alice@example.test"
#: The planned default of ``limits.max_connections_per_ip``: at most this many
#: of one client's transfers may be taken at once.
PER_IP_LIMIT = 50


@pytest.fixture
def server(tmp_path):
    with running(attack_server(str(tmp_path / "mailsrv"))) as srv:
        yield srv


def send_big(conn: Conn, message: BigMessage, stop: threading.Event) -> bool:
    """Send *message*'s body (no final dot) unless *stop* is set first; True if all was sent."""
    for chunk in message.chunks():
        if stop.is_set():
            return False
        conn.send(chunk)
    return True


def test_eight_parallel_48_mib_transfers_spool_to_disk_and_arrive_intact(server):
    """8 x 48 MiB at once: RSS grows by at most 64 MiB, and all 8 are delivered byte-exact.

    Each transfer comes from its own loopback address, as from 8 hosts.
    """
    messages = [BigMessage(i) for i in range(8)]
    codes: list[int | str] = [0] * 8

    with RSSMonitor(server.process.pid) as rss, Probe(server) as probe:
        def transfer(i: int) -> None:
            with smtp_open(server.ports["smtp"], attacker_source(i), timeout=120) as conn:
                smtp_begin_data(conn, RECIPIENT)
                if not send_big(conn, messages[i], rss.aborted):
                    codes[i] = "stopped"
                    return
                codes[i] = conn.smtp(b".")[0]
                conn.smtp(b"QUIT")

        outcomes = run_parallel(transfer, 8, join_timeout=600)

    problems = [rss.problem(64 * MiB), probe.problem()]
    problems += [f"transfer {i}: {o.error!r}" for i, o in enumerate(outcomes) if o.error]
    problems += [f"transfer {i} answered {code} at the final dot" for i, code in enumerate(codes) if code != 250]
    if all(code == 250 for code in codes):
        problems += check_delivered(server, messages)
    problems += log_problems(server.log())
    verdict(problems, rss.summary(), probe.summary())


def check_delivered(server, messages: list[BigMessage]) -> list[str]:
    """Each message is in alice's Maildir exactly once, its body byte-exact after our trace headers."""
    maildir = maildir_of(server, RECIPIENT)
    found: dict[int, str] = {}
    for sub in ("new", "cur"):
        for name in os.listdir(os.path.join(maildir, sub)):
            path = os.path.join(maildir, sub, name)
            with open(path, "rb") as f:
                head = f.read(4096)
            for message in messages:
                if f"\nSubject: big message {message.number}\n".encode() in head:
                    found.setdefault(message.number, path)
    problems = []
    for message in messages:
        path = found.get(message.number)
        if path is None:
            problems.append(f"big message {message.number} is not in {maildir}")
        elif stored_tail_sha256(path, message.disk_size) != message.disk_sha256():
            problems.append(f"big message {message.number} is damaged in {path}")
    return problems


def test_hundred_parallel_48_mib_transfers_are_limited_never_an_oom(server):
    """100 x 48 MiB from one client: refused (4xx) or held back by a limit; RSS stays bounded.

    Each attacker sends its whole body but not the final dot, then holds
    the transaction open until all are done (or the deadline): that is the
    moment a server keeping bodies in memory holds the most, and it delivers
    nothing, so the test does not write 100 x 48 MiB of mail.  Accepted
    outcomes per attacker: refused with a 4xx reply or a close at any step
    ("refused"), the server stopped reading ("held"), or the whole body taken
    ("taken").  At most 50 may be taken at once (the planned default of
    ``limits.max_connections_per_ip``), RSS grows by at most 256 MiB (a
    server holding bodies in memory needs about 5 GiB), the server stays up
    and the probe is answered throughout.
    """
    count, deadline = 100, time.monotonic() + 180
    outcome: list[str] = ["?"] * count
    settled = Gate(count)

    with RSSMonitor(server.process.pid) as rss, Probe(server) as probe:
        def transfer(i: int) -> None:
            try:
                with smtp_open(server.ports["smtp"], attacker_source(0), timeout=15) as conn:
                    smtp_begin_data(conn, RECIPIENT)
                    outcome[i] = "taken" if send_big(conn, BigMessage(i), rss.aborted) else "stopped"
                    settled.arrive()
                    settled.wait_all(max(0.0, deadline - time.monotonic()))
                    return
            except Refused as e:
                outcome[i] = f"refused {e.reply[:3].decode()}" if e.reply[:1] == b"4" else f"wrong answer {e}"
            except (Closed, ConnectionResetError, BrokenPipeError):
                outcome[i] = "refused close"
            except (Silent, socket.timeout, TimeoutError):
                outcome[i] = "held"
            settled.arrive()

        outcomes = run_parallel(transfer, count, join_timeout=300)

    tally: dict[str, int] = {}
    for name in outcome:
        tally[name] = tally.get(name, 0) + 1
    problems = [rss.problem(256 * MiB), probe.problem()]
    problems += [f"attacker {i}: {o.error!r}" for i, o in enumerate(outcomes) if o.error]
    problems += [f"{n} attackers: {name}" for name, n in tally.items() if name.startswith(("wrong", "?"))]
    if tally.get("taken", 0) > PER_IP_LIMIT:
        problems.append(f"{tally['taken']} transfers from one client taken at once, more than {PER_IP_LIMIT}")
    if server.process.poll() is not None:
        problems.append(f"the server exited with status {server.process.returncode}")
    elif not server.alive():
        problems.append("the server no longer answers SMTP")
    problems += log_problems(server.log())
    verdict(problems, f"outcomes: {tally}", rss.summary(), probe.summary())

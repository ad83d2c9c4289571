"""Attack: 48 parallel wrong logins (IMAP LOGIN, POP3 USER/PASS, SMTP AUTH), unknown users too.

Issue 5: RSS 461 MB -> 2.38 GB (argon2 takes 64 MiB per check, and 32
threads ran checks at once) and SMTP delivery p50 5 ms -> 2.2 s, because
delivery fsyncs shared the one thread pool with password hashing.  Hashing
needs a small pool of its own (``threads.hashing``) with a bounded queue
(``auth.max_queued_checks``), apart from the disk pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from attack import (
    MiB, ChildRun, Closed, Conn, Outcome, Probe, RSSMonitor, attack_server, attacker_source, delivery_latencies,
    log_problems, percentile, plain_auth, run_parallel, running, verdict,
)

ATTACKERS = 48
#: How long the attackers keep trying.
ATTACK_SECONDS = 12
#: Seconds into the attack at which the delivering client starts (and stops a
#: second before the attack ends), so it measures the attack, not its ramp.
DELIVERY_AFTER = 2
#: Issue 5: "delivery p50 stays under 50 ms".
DELIVERY_P50_BOUND = 0.050
USERS = ("alice@example.test", "bob@example.test")


@pytest.fixture
def server(tmp_path):
    with running(attack_server(str(tmp_path / "mailsrv"), users=USERS)) as srv:
        yield srv


def victim(i: int, attempt: int) -> str:
    """Every other attempt is for an address that does not exist."""
    return "alice@example.test" if (i + attempt) % 2 else f"nobody{i}.{attempt}@example.test"


def wrong_imap(conn: Conn, n: int, address: str) -> bool:
    """One IMAP LOGIN with a wrong password; True if refused (``NO``, temporary or not)."""
    tag = b"x%d" % n
    return conn.imap(tag, f'LOGIN "{address}" "wrong{n}"'.encode()).startswith(tag + b" NO")


def wrong_pop3(conn: Conn, n: int, address: str) -> bool:
    """One POP3 USER/PASS with a wrong password; True if refused."""
    conn.pop(f"USER {address}".encode())
    return conn.pop(f"PASS wrong{n}".encode()).startswith(b"-ERR")


def wrong_smtp(conn: Conn, n: int, address: str) -> bool:
    """One SMTP AUTH PLAIN with a wrong password; True if refused (535, or 454 RFC 4954 temporary)."""
    code, _ = conn.smtp(b"AUTH PLAIN " + plain_auth(address, f"wrong{n}"))
    return code in (535, 454)


#: Each attack: the listener it uses (plaintext, allowed on loopback) and one attempt.
ATTACKS: tuple[tuple[str, Callable[[Conn, int, str], bool]], ...] = (
    ("imap", wrong_imap), ("pop3", wrong_pop3), ("submission", wrong_smtp),
)


def keep_failing(server, i: int, stopped: Callable[[], bool]) -> int:
    """Attacker *i*: wrong logins without pause until *stopped*; returns how many it made.

    A connection is reused for attempt after attempt; if the server hangs
    up (a limit on failures per connection is fine), the attacker reconnects.
    """
    kind, attempt = ATTACKS[i % len(ATTACKS)]
    tries = 0
    while not stopped():
        try:
            with Conn.open(server.ports[kind], attacker_source(i % 16), timeout=60) as conn:
                conn.readline()
                if kind == "submission":
                    conn.smtp(b"EHLO attacker.example.org", 250)
                while not stopped():
                    refused = attempt(conn, tries, victim(i, tries))
                    tries += 1
                    if not refused:
                        raise AssertionError(f"wrong {kind} login #{tries} was not refused")
        except Closed:
            continue
    return tries


def test_forty_eight_parallel_wrong_logins(server):
    """RSS grows by at most 256 MiB, SMTP delivery p50 stays under 50 ms, the probe within 250 ms.

    16 attackers per protocol, from 16 loopback addresses, each trying
    wrong passwords (for alice and for unknown users) without pause for
    12 s.  From 2 s in until 1 s before the end, a client delivers small
    messages on port 25 one after another, from a process of its own (so
    that the attackers' threads do not delay it).
    """
    before = ChildRun(delivery_latencies, server.ports["smtp"], "bob@example.test")
    before.start()
    time.sleep(2)
    baseline = before.stop()  # the figure without the attack, for the report

    # Hashing memory is bounded by the thread pool (32 x 64 MiB today), so the
    # safety stop can sit higher here and the delivery figure cover the whole attack.
    with RSSMonitor(server.process.pid, abort_growth=3 * 1024 * MiB) as rss, Probe(server) as probe:
        ends = time.monotonic() + ATTACK_SECONDS

        def stopped() -> bool:
            return time.monotonic() > ends or rss.aborted.is_set()

        outcomes: list[Outcome] = []
        attack = threading.Thread(target=lambda: outcomes.extend(run_parallel(
            lambda i: keep_failing(server, i, stopped), ATTACKERS, join_timeout=ATTACK_SECONDS + 120)))
        attack.start()
        time.sleep(DELIVERY_AFTER)  # deliveries are timed once every attacker is at it
        delivery = ChildRun(delivery_latencies, server.ports["smtp"], "bob@example.test")
        delivery.start()
        rss.aborted.wait(max(0.0, ends - 1 - time.monotonic()))
        latencies = delivery.stop(timeout=120)
        attack.join()
    tries = sum(o.result for o in outcomes if isinstance(o.result, int))
    p50 = percentile(latencies, 0.5)
    problems = [rss.problem(256 * MiB), probe.problem()]
    problems += [f"attacker {i} ({ATTACKS[i % len(ATTACKS)][0]}): {o.error!r}"
                 for i, o in enumerate(outcomes) if o.error]
    if not latencies:
        problems.append("no message was delivered during the attack")
    elif p50 >= DELIVERY_P50_BOUND:
        problems.append(f"delivery p50 {p50 * 1000:.0f} ms, bound {DELIVERY_P50_BOUND * 1000:.0f} ms")
    problems += log_problems(server.log())
    verdict(
        problems,
        f"{tries} wrong logins; delivery p50 {p50 * 1000:.1f} ms over {len(latencies)} messages "
        f"(before the attack {percentile(baseline, 0.5) * 1000:.1f} ms over {len(baseline)})",
        rss.summary(), probe.summary(),
    )

"""Attack: 48 parallel wrong logins (IMAP LOGIN, POP3 USER/PASS, SMTP AUTH), unknown users too.

Issue 5: RSS 461 MB -> 2.38 GB (argon2 takes 64 MiB per check, and 32
threads ran checks at once) and SMTP delivery p50 5 ms -> 2.2 s, because
delivery fsyncs shared the one thread pool with password hashing.  Hashing
needs a small pool of its own (``threads.hashing``) with a bounded queue
(``auth.max_queued_checks``), apart from the disk pool.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from attack import (
    MiB, PASSWORD, PROBE_SOURCE, ChildRun, Closed, Conn, Outcome, Probe, RSSMonitor, attack_server, attacker_source,
    delivery_latencies, log_problems, percentile, plain_auth, run_parallel, running, verdict,
)
from twistd_server import REPO

ATTACKERS = 48
#: How long the attackers keep trying.
ATTACK_SECONDS = 12
#: Seconds into the attack at which the delivering client starts (and stops a
#: second before the attack ends), so it measures the attack, not its ramp.
DELIVERY_AFTER = 2
#: Issue 5: "delivery p50 stays under 50 ms".
DELIVERY_P50_BOUND = 0.050
USERS = ("alice@example.test", "bob@example.test")
FILTER = os.path.join(REPO, "etc", "fail2ban", "filter.d", "mailsrv.conf")


#: The throttle of both tests: the default limits, a shorter ceiling on the
#: delay, so that an attacker's last guess, sent as the attack ends, is not
#: answered up to 30 s later.
THROTTLE = "throttle_max_delay = 2\n"


@pytest.fixture
def server(tmp_path):
    with running(attack_server(str(tmp_path / "mailsrv"), users=USERS, auth=THROTTLE)) as srv:
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


#: What each protocol answers a locked-out address: RFC 4954 6, RFC 3206 4, RFC 5530 3.
LOCKED = {"submission": b"454 4.7.0 Too many failed logins", "pop3": b"-ERR [AUTH] Too many failed logins",
          "imap": b"NO [UNAVAILABLE] Too many failed logins"}


#: Each failure costs an argon2 check (64 MiB, about 0.2 s of a core), so the
#: lock-out comes after 3 failures per address, not the default 10: the same
#: path, a third of the hashing.
LOCK_SOON = "throttle_failures_per_ip = 3\n"


def fail_until_locked(server, i: int) -> int:
    """Attacker *i*: wrong logins on one connection until the lock-out reply; how many it made.

    Each guess is for another user name, so only the lock-out of the address can stop it.
    """
    kind, _ = ATTACKS[i % len(ATTACKS)]
    with Conn.open(server.ports[kind], attacker_source(i % 16), timeout=60) as conn:
        conn.readline()
        if kind == "submission":
            conn.smtp(b"EHLO attacker.example.org", 250)
        for tries in range(40):
            address = f"nobody{i}.{tries}@example.test"
            if kind == "submission":
                reply = conn.smtp(b"AUTH PLAIN " + plain_auth(address, "wrong"))[1]
            elif kind == "pop3":
                conn.pop(f"USER {address}".encode())
                reply = conn.pop(b"PASS wrong")
            else:
                reply = conn.imap(b"x%d" % tries, f'LOGIN "{address}" "wrong"'.encode())
            if LOCKED[kind] in reply:
                return tries
        raise AssertionError(f"attacker {i} ({kind}) never locked out; last reply {reply!r}")


def good_logins(server, source: str) -> list[bytes]:
    """bob logs in from *source* over SMTP AUTH, POP3 and IMAP; the three replies."""
    with Conn.open(server.ports["submission"], source) as conn:
        conn.readline()
        conn.smtp(b"EHLO good.example.org", 250)
        smtp = conn.smtp(b"AUTH PLAIN " + plain_auth("bob@example.test", PASSWORD))[1]
    with Conn.open(server.ports["pop3"], source) as conn:
        conn.readline()
        conn.pop(b"USER bob@example.test")
        pop3 = conn.pop(f"PASS {PASSWORD}".encode())
    with Conn.open(server.ports["imap"], source) as conn:
        conn.readline()
        imap = conn.imap(b"a", f'LOGIN "bob@example.test" "{PASSWORD}"'.encode())
    return [smtp, pop3, imap]


def test_parallel_guessing_is_locked_out_while_another_user_logs_in(tmp_path):
    """48 parallel guessers from 16 addresses are each locked out; bob from another address logs in.

    Every failure and every refused attempt is one log line that Debian's
    ``fail2ban-regex`` matches with the shipped filter, naming the attacker.
    """
    server = attack_server(str(tmp_path / "mailsrv"), users=USERS, auth=THROTTLE + LOCK_SOON)
    with running(server), Probe(server) as probe:
        outcomes = run_parallel(lambda i: fail_until_locked(server, i), ATTACKERS, join_timeout=300)
        during = good_logins(server, PROBE_SOURCE)
        from_an_attacker = good_logins(server, attacker_source(0))
    problems = [probe.problem()] + [f"attacker {i}: {o.error!r}" for i, o in enumerate(outcomes) if o.error]
    problems += log_problems(server.log())
    verdict(problems, f"{sum(o.result or 0 for o in outcomes)} wrong logins before the lock-outs", probe.summary())
    assert [reply[:3] for reply in during] == [b"235", b"+OK", b"a O"], during
    assert [LOCKED[kind] in reply for kind, reply in zip(("submission", "pop3", "imap"), from_an_attacker)] == [
        True, True, True], from_an_attacker
    lines = [line for line in server.log().splitlines() if re.search(r"\] login (failed|locked): ", line)]
    assert any(" login locked: " in line for line in lines)
    assert {re.search(r"client_ip=(\S+)", line)[1] for line in lines} == {attacker_source(n) for n in range(16)}
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban (Debian: fail2ban) is not installed: the filter was not run")
    done = subprocess.run(["fail2ban-regex", server.logfile, FILTER], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^Failregex: {len(lines)} total$", done.stdout, re.M), done.stdout

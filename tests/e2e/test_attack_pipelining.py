"""Attack: 10,000 pipelined commands in one write (POP3 STAT, IMAP NOOP) on a 30,000-message INBOX.

Issue 5: one write of 2,000 POP3 STATs froze the whole server for 11.9 s
(10,000: more than 30 s), because STAT walked the whole maildrop each time
and the command pump never yielded to the reactor.  The pump must yield
between commands, and STAT/LIST be O(1) from counters; other sessions keep
getting their probe answers.
"""

from __future__ import annotations

from collections.abc import Callable

from attack import Closed, Conn, Probe, Silent, attacker_source, imap_login, log_problems, pop3_login, verdict

COMMANDS = 10_000
#: Long enough for a server that answers each command in a millisecond; the
#: broken one needs minutes, and the test gives up on it.
REPLY_SECONDS = 60


def pipelined(server, conn: Conn, data: bytes, check: Callable[[int], bytes | None]) -> tuple[int, list[bytes], Probe]:
    """Send *data* (the 10,000 commands) in one write, the probe running, and read every answer.

    ``check(i)`` reads the answer to command *i* and returns it if it is
    wrong.  Returns how many were answered, the first wrong answers, and the probe.
    """
    answered, wrong = 0, []
    with conn, Probe(server) as probe:
        conn.send(data)
        try:
            while answered < COMMANDS:
                bad = check(answered)
                answered += 1
                if bad is not None and len(wrong) < 3:
                    wrong.append(bad)
        except (Silent, Closed) as e:
            wrong.append(f"{e} after {answered} answers".encode())
    return answered, wrong, probe


def test_ten_thousand_pipelined_pop3_stats(big_inbox_server, big_inbox):
    """All 10,000 STATs are answered ``+OK 30000 ...`` in order, and the probe within 250 ms throughout."""
    server = big_inbox_server
    conn = pop3_login(server, big_inbox.address, attacker_source(0), timeout=REPLY_SECONDS)
    expected = f"+OK {len(big_inbox.messages)} {sum(m.wire_size for m in big_inbox.messages)}\r\n".encode()

    def check(_: int) -> bytes | None:
        line = conn.readline()
        return None if line == expected else line

    answered, wrong, probe = pipelined(server, conn, b"STAT\r\n" * COMMANDS, check)
    problems = [probe.problem()] + [f"STAT answered {line!r}, expected {expected!r}" for line in wrong]
    problems += log_problems(server.log())
    verdict(problems, f"{answered} of {COMMANDS} STATs answered", probe.summary())


def test_ten_thousand_pipelined_imap_noops(big_inbox_server, big_inbox):
    """All 10,000 NOOPs are answered OK in order (with the INBOX selected), the probe within 250 ms."""
    server = big_inbox_server
    conn = imap_login(server, big_inbox.address, attacker_source(0), timeout=REPLY_SECONDS)

    def check(i: int) -> bytes | None:
        reply = conn.imap_tagged(b"n%d" % i)
        return None if reply.startswith(b"n%d OK" % i) else reply

    answered, wrong, probe = pipelined(server, conn, b"".join(b"n%d NOOP\r\n" % i for i in range(COMMANDS)), check)
    problems = [probe.problem()] + [f"NOOP answered {line!r}" for line in wrong]
    problems += log_problems(server.log())
    verdict(problems, f"{answered} of {COMMANDS} NOOPs answered", probe.summary())

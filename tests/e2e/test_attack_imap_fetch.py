"""Attack: ``FETCH 1:* BODY.PEEK[]`` of a 30,000-message INBOX by a client that does not read.

Issue 5 measured RSS 41 MB -> 1.66 GB in 20 s from one connection: nothing
waited for the socket to drain.  The writer must stop producing while the
transport is full (``IPushProducer``/``IConsumer``) and resume when the
client reads, without losing or reordering a byte.
"""

from __future__ import annotations

import hashlib
import re

from attack import MiB, Closed, Probe, RSSMonitor, Silent, attacker_source, imap_login, log_problems, verdict

#: Issue 5: the client does not read for about 10 s.
STALL_SECONDS = 10
#: A FETCH response carrying a body (other items, e.g. FLAGS, may come with it).
_FETCH = re.compile(rb"\* (\d+) FETCH \(.*BODY\[\] \{\d+\}\r\n", re.S)


def test_fetch_everything_to_a_client_that_stops_reading(big_inbox_server, big_inbox):
    """RSS grows by at most 32 MiB while the client stalls; then all 30,000 arrive intact, in order.

    The attacker's receive buffer is kept small (64 KiB), so what the server
    wrote beyond it is the server's to hold.  After the stall the client reads
    every response, checks each message against the file it came from, sees
    the tagged OK, and a following command still works.
    """
    server = big_inbox_server
    messages = big_inbox.messages
    conn = imap_login(server, big_inbox.address, attacker_source(0), timeout=60, rcvbuf=64 * 1024)
    seen: list[int] = []
    damaged: list[int] = []
    problems: list[str | None] = []
    with conn, RSSMonitor(server.process.pid) as rss, Probe(server) as probe:
        conn.send(b"f FETCH 1:* BODY.PEEK[]\r\n")
        rss.aborted.wait(STALL_SECONDS)
        stalled = f"after the {STALL_SECONDS} s stall: RSS +{rss.peak_growth / MiB:.0f} MiB"
        if not rss.aborted.is_set():
            try:
                while True:
                    text, literals = conn.imap_response(timeout=120)
                    if text.startswith(b"f "):
                        problems.append(None if text.startswith(b"f OK") else f"FETCH answered {text!r}")
                        break
                    match = _FETCH.match(text)
                    if match is None or len(literals) != 1:
                        continue  # an unsolicited update, not one of ours
                    number = int(match.group(1))
                    seen.append(number)
                    if hashlib.sha256(literals[0]).digest() != messages[number - 1].wire_sha256:
                        damaged.append(number)
                after = conn.imap(b"g", b"FETCH 30000 (RFC822.SIZE)")
                if not after.startswith(b"g OK"):
                    problems.append(f"the next command was answered {after!r}")
            except (Silent, Closed) as e:
                problems.append(f"reading the FETCH responses: {e} after {len(seen)} messages")
    problems += [rss.problem(32 * MiB), probe.problem()]
    if not rss.aborted.is_set():
        if seen != list(range(1, len(messages) + 1)):
            missing = sorted(set(range(1, len(messages) + 1)) - set(seen))
            problems.append(f"{len(seen)} FETCH responses (of {len(messages)}); missing {missing[:5]}..."
                            if missing else f"FETCH responses out of order or repeated ({len(seen)})")
        if damaged:
            problems.append(f"{len(damaged)} messages differ from their files, first {damaged[:5]}")
    problems += log_problems(server.log())
    verdict(problems, stalled, rss.summary(), probe.summary())

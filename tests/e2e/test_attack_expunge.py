"""Attack: FETCH while another session expunges the same messages.

Issue 5: FETCH answered OK while silently skipping messages another session
had just expunged (118 times in 60 s of concurrent use).  RFC 2180 4.1.2
leaves a server two honest answers for a message expunged under a FETCH:
serve it from its last known content, or answer the FETCH ``NO``
(RFC 5530 ``EXPUNGEISSUED``).  Answering OK with a message missing is
neither; so is sending an EXPUNGE in the middle of a FETCH (RFC 3501 7.4.1).
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
import time

import pytest

from attack import (
    Closed, Probe, Silent, attack_server, attacker_source, fill_maildir, imap_login, log_problems, maildir_of,
    running, verdict,
)

ADDRESS = "alice@example.test"
MESSAGES = 2000
ATTACK_SECONDS = 10
_FETCH = re.compile(rb"\* (\d+) FETCH \(")
_UID = re.compile(rb"\bUID (\d+)")
_EXPUNGE = re.compile(rb"\* (\d+) EXPUNGE\r\n")
_EXISTS = re.compile(rb"\* (\d+) EXISTS\r\n")


@pytest.fixture
def server(tmp_path):
    srv = attack_server(str(tmp_path / "mailsrv"))
    srv.filled = fill_maildir(maildir_of(srv, ADDRESS), ADDRESS, MESSAGES)
    with running(srv):
        yield srv


class Reader:
    """A session that FETCHes every message again and again and checks every answer.

    It keeps its own view of the mailbox (UIDs in sequence order), updated
    from the EXPUNGE and EXISTS responses it gets, so it knows exactly which
    messages each ``FETCH 1:*`` must return, and with which content.
    """

    def __init__(self, server) -> None:
        self.conn = imap_login(server, ADDRESS, attacker_source(0), timeout=60)
        self.fetches = self.refused = 0
        self.problems: list[str] = []
        # The first FETCH runs before anyone expunges: it ties UIDs to the files written.
        served = self.fetch_all(b"r")
        self.view = [uid for _, (uid, _) in sorted(served.items())]
        self.digests = {uid: digest for uid, digest in served.values()}
        if [self.digests[uid] for uid in self.view] != [m.wire_sha256 for m in server.filled]:
            raise AssertionError(f"the first FETCH did not return the {MESSAGES} messages written")

    def fetch_all(self, tag: bytes) -> dict[int, tuple[int, bytes]]:
        """``FETCH 1:* (UID BODY.PEEK[])``: sequence number -> (UID, body SHA-256) of every message served."""
        served: dict[int, tuple[int, bytes]] = {}
        self.conn.send(tag + b" FETCH 1:* (UID BODY.PEEK[])\r\n")
        while True:
            text, literals = self.conn.imap_response()
            if text.startswith(tag + b" "):
                self.fetches += 1
                if text.startswith(tag + b" NO"):
                    self.refused += 1  # RFC 2180 4.1.2: allowed
                    return {}
                if not text.startswith(tag + b" OK"):
                    self.problems.append(f"FETCH answered {text!r}")
                return served
            self.update(text, during_fetch=True)
            fetch, uid = _FETCH.match(text), _UID.search(text)
            if fetch and uid and literals:
                served[int(fetch.group(1))] = (int(uid.group(1)), hashlib.sha256(literals[0]).digest())

    def update(self, text: bytes, during_fetch: bool = False) -> None:
        """Apply an EXPUNGE or EXISTS response to the view."""
        if match := _EXPUNGE.match(text):
            if during_fetch:
                self.problems.append(f"EXPUNGE sent during a FETCH: {text!r} (RFC 3501 7.4.1)")
            number = int(match.group(1))
            if 1 <= number <= len(self.view):
                del self.view[number - 1]
        elif (match := _EXISTS.match(text)) and int(match.group(1)) != len(self.view):
            self.problems.append(f"{text!r} while the view holds {len(self.view)} messages (no mail arrives)")

    def round(self, n: int) -> None:
        """One FETCH of everything, checked against the view; then a NOOP to learn of expunges."""
        expected = list(self.view)
        served = self.fetch_all(b"f%d" % n)
        if served:  # not refused
            missing = [number for number in range(1, len(expected) + 1) if number not in served]
            if missing:
                self.problems.append(f"FETCH {n} answered OK without {len(missing)} of {len(expected)} "
                                     f"messages (first: {missing[:3]})")
            for number, (uid, digest) in served.items():
                if number > len(expected) or expected[number - 1] != uid:
                    self.problems.append(f"FETCH {n}: message {number} served as UID {uid}, not the view's")
                elif digest != self.digests[uid]:
                    self.problems.append(f"FETCH {n}: UID {uid} served with other content")
        self.conn.imap(b"n%d" % n, b"NOOP", untagged=lambda text, _: self.update(text))


def expunge_meanwhile(server, uids: list[int], stop: threading.Event, done: list[int]) -> None:
    """A second session deleting three random messages at a time, as fast as it is answered."""
    rnd = random.Random(2180)
    left = list(uids)
    with imap_login(server, ADDRESS, attacker_source(1), timeout=60) as conn:
        n = 0
        while not stop.is_set() and len(left) > 100:
            chosen = [left.pop(rnd.randrange(len(left))) for _ in range(3)]
            conn.imap(b"s%d" % n, b"UID STORE %s +FLAGS.SILENT (\\Deleted)" % ",".join(map(str, chosen)).encode())
            conn.imap(b"e%d" % n, b"EXPUNGE")
            done.extend(chosen)
            n += 1
            time.sleep(0.01)


def test_fetch_never_skips_a_message_expunged_under_it(server):
    """Every FETCH 1:* returns every message of the session's view, intact, or answers NO.

    One session FETCHes all 2,000 messages (bodies and UIDs) over and over
    for 10 s while another expunges three at a time; the probe runs too.
    """
    reader = Reader(server)
    stop = threading.Event()
    expunged: list[int] = []
    problems: list[str | None] = []
    with reader.conn, Probe(server) as probe:
        expunger = threading.Thread(target=expunge_meanwhile, args=(server, list(reader.view), stop, expunged))
        expunger.start()
        ends, n = time.monotonic() + ATTACK_SECONDS, 0
        try:
            while time.monotonic() < ends:
                reader.round(n)
                n += 1
        except (Silent, Closed) as e:
            problems.append(f"the reading session: {e}")
        finally:
            stop.set()
            expunger.join()
    problems += [probe.problem()] + reader.problems[:10]
    if len(reader.problems) > 10:
        problems.append(f"... {len(reader.problems) - 10} more")
    problems += log_problems(server.log())
    verdict(problems, f"{reader.fetches} FETCHes ({reader.refused} answered NO), {len(expunged)} messages expunged "
                      f"meanwhile, {len(reader.problems)} problems", probe.summary())

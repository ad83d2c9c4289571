"""The DATA reader gives the same result however the input is cut into packets.

``DataReader`` takes a message body a packet at a time and treats the
complete lines in it in bulk.  Fed one octet at a time, no packet ever holds
a complete line: that run is the reference.  Each session below is then fed
cut into packets in many ways (every two-packet cut, and random cuts with a
fixed seed), and the replies, the stored messages, the transaction log and
the final state must be exactly the reference's.
"""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any

from mailsrv import config as configuration
from mailsrv.smtp import transaction
from support import audit_events
from test_smtp_session import MAX_LINE, MAX_SIZE, SMTPTestCase, STORED_AS

EHLO = b"EHLO client.example.net\r\n"
ENVELOPE = b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
AT_LIMIT = MAX_LINE - 2  # longest line content; RFC 5321 4.5.3.1.6 counts the CRLF

TRICKY_BODY = b"".join(
    [
        b".leading dot\r\n",
        b"..two dots\r\n",
        b"..\r\n",  # a stuffed lone dot: stored as "."
        b"...\r\n",
        b". \r\n",
        b"x\rbare CR inside\r\n",
        b"\r.\r\n",
        b"ends in CR\r\r\n",
        b"\r\r\n",  # a line that is only a CR
        b".\r\r\n",  # a stuffed one: stored as "\r"
        b"..\r\r\n",
        b"\r\n",
        b"B" * AT_LIMIT + b"\r\n",
        b"." + b"C" * (AT_LIMIT - 1) + b"\r\n",  # at the limit on the wire, one shorter stored
        b"\r\n\r\n",
        b"last line\r\n",
    ]
)

SESSIONS: dict[str, bytes] = {
    # Accepted, and the final dot shares its packet with pipelined commands.
    "tricky_body_then_pipelined": b"".join(
        [
            EHLO,
            ENVELOPE,
            TRICKY_BODY,
            b".\r\nMAIL FROM:<carol@example.net>\r\nRSET\r\nMAIL FROM:<dave@example.net>\r\n",
            b"RCPT TO:<bob@example.test>\r\nDATA\r\n.\r\n",  # an empty message
            b"NOOP\r\nQUIT\r\n",
        ]
    ),
    # One octet over the line limit, then commands inside the body: they are
    # body (never run), the 500 comes at the final dot.
    "over_long_line_smuggles_commands": b"".join(
        [
            EHLO,
            ENVELOPE,
            b"Subject: x\r\n\r\n",
            b"D" * (AT_LIMIT + 1) + b"\r\n",
            b"MAIL FROM:<smuggled@example.net>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n",
            b"..\r\nmore\r\n.\r\nRCPT TO:<bob@example.test>\r\n",
            ENVELOPE,
            b"." + b"E" * AT_LIMIT + b"\r\n.\r\n",  # stuffed: one over on the wire
            ENVELOPE,
            b"F" * (5 * MAX_LINE) + b"\r\nok\r\n.\r\nNOOP\r\nQUIT\r\n",
        ]
    ),
    # RFC 1870: exactly the limit once unstuffed (more on the wire) is fine,
    # one octet more is 552; a long line before the size runs out is 500, a
    # long line after it is 552 (the first error wins).
    "size_limits": b"".join(
        [
            EHLO,
            ENVELOPE,
            (b"." + b"s" * 97 + b"\r\n") * 40,
            b"t" * (MAX_SIZE - 40 * 99 - 2) + b"\r\n.\r\n",
            ENVELOPE,
            (b"." + b"s" * 97 + b"\r\n") * 40,
            b"t" * (MAX_SIZE - 40 * 99 - 1) + b"\r\n.\r\n",
            ENVELOPE,
            (b"u" * 500 + b"\r\n") * 5,
            b"v" * (2 * MAX_LINE) + b"\r\n.\r\n",
            ENVELOPE,
            b"w" * (2 * MAX_LINE) + b"\r\n",
            (b"u" * 500 + b"\r\n") * 10,
            b".\r\n",
            ENVELOPE,
            (b"x" * 900 + b"\r\n") * 3,
            b"..\r\n",
            (b"y" * 600 + b"\r\n") * 3,
            b"z" * (2 * MAX_LINE) + b"\r\n.\r\n",
            b"RSET\r\nQUIT\r\n",
        ]
    ),
    # The fifth command error is the 500 at a final dot: 421, and nothing
    # pipelined after it runs.
    "errors_end_the_session_at_the_dot": b"".join(
        [EHLO, b"FOO\r\nBAR\r\n\r\nBAZ\r\n", ENVELOPE, b"G" * (3 * MAX_LINE) + b"\r\n.\r\nNOOP\r\nQUIT\r\n"]
    ),
    # Body lines that look like the end of data but are not, and a client
    # that leaves with the body unfinished.
    "almost_final_dots": b"".join(
        [EHLO, ENVELOPE, b"a\r\n.\r \r\n .\r\n.\r\r\n.x\r\n..\r\n\r\n.\r\n", ENVELOPE, b"unfinished\r\n.."]
    ),
    # RFC 5321 2.3.8: a bare LF fails the transaction with 554 at the final
    # dot, and ".\n" or "\n.\n" end nothing.  The first error in the order
    # of the lines wins: a long line or the size limit before the bare LF,
    # the bare LF before them.
    "bare_lf": b"".join(
        [
            EHLO,
            ENVELOPE,
            b"a\r\nbare\nLF\r\n\n.\n.\n\r\n.\r\n",
            ENVELOPE,
            b"H" * (AT_LIMIT + 1) + b"\r\nbare\nLF\r\n.\r\n",
            ENVELOPE,
            b"bare\nLF\r\n" + b"H" * (AT_LIMIT + 1) + b"\r\n.\r\n",
            ENVELOPE,
            (b"s" * 97 + b"\r\n") * 42 + b"bare\nLF\r\n.\r\n",
            ENVELOPE,
            b"\nfirst\r\n" + (b"s" * 97 + b"\r\n") * 42 + b".\r\n",
            ENVELOPE,
            b"fine\r\n.\r\nQUIT\r\n",
        ]
    ),
}

def interesting_cuts(session: bytes) -> list[int]:
    """Every place to cut *session* in two where the cut could matter.

    Within 3 octets of a CR, LF or dot, and around the line limit from each
    line start (where the framer starts discarding); elsewhere a cut in a run
    of the same octet is equivalent to its neighbours.  Every cut for a
    short session.
    """
    if len(session) <= 4000:
        return list(range(1, len(session)))
    points: set[int] = set()
    starts = [0] + [m.end() for m in re.finditer(rb"\r\n", session)]
    for i, octet in enumerate(session):
        if octet in b"\r\n.":
            points.update(range(i - 3, i + 5))
    for start in starts:
        points.update(range(start + AT_LIMIT - 2, start + AT_LIMIT + 5))
    return sorted(p for p in points if 0 < p < len(session))


_DATE = re.compile(rb"; [A-Z][a-z]{2}, \d+ [A-Z][a-z]{2} \d{4} [\d:]{8} \+0000\r\n")


class ChunkedDataTests(SMTPTestCase):
    def make_config(self, **auth: Any) -> configuration.Config:
        """Hundreds of sessions from one address: no per-address rate limits."""
        config = super().make_config(**auth)
        limits = dataclasses.replace(
            config.limits, smtp_connections_per_ip_minute=0, smtp_messages_per_ip_hour=0, smtp_recipients_per_ip_hour=0
        )
        return dataclasses.replace(config, limits=limits)

    def setUp(self) -> None:
        super().setUp()
        self.patch(transaction, "new_queue_id", lambda: "Q%011d" % next(self.ids))

    def run_session(self, packets: list[bytes], manual_store: bool = False) -> dict[str, Any]:
        """Feed *packets* to a fresh session; return everything observable."""
        self.store.calls.clear()
        self.store.manual = manual_store
        self.store.pending.clear()
        self.ids = iter(range(10**6))
        first_event = len(self.log)  # only this session's events are scanned: the log grows all test long
        self.connect()
        for packet in packets:
            self.server.dataReceived(packet)
            while self.store.pending:  # the store answers between packets
                self.store.pending.pop(0).callback(STORED_AS)
        result = {
            "output": self.transport.value(),
            "stored": [(addresses, _DATE.sub(b"; DATE\r\n", data)) for addresses, data in self.store.calls],
            "log": [
                {k: e[k] for k in ("sender", "recipients", "rejected", "size", "result", "queue_id")}
                for e in audit_events(list(self.log[first_event:]), "transaction")
            ],
            "disconnecting": self.transport.disconnecting,
            "in_data": self.server.transaction is not None and self.server.transaction.writer is not None,
            # After a close, input goes unread: how much was buffered depends on the packets.
            "buffered": None if self.transport.disconnecting else len(self.server.input),
        }
        self.server.connectionLost(None)  # gives its place back to the connection limits
        return result

    def reference(self, session: bytes, manual_store: bool = False) -> dict[str, Any]:
        return self.run_session([session[i : i + 1] for i in range(len(session))], manual_store)

    def assert_same(self, name: str, cuts: list[list[int]], manual_store: bool = False) -> None:
        session = SESSIONS[name]
        expected = self.reference(session, manual_store)
        for points in cuts:
            bounds = [0, *points, len(session)]
            packets = [session[a:b] for a, b in zip(bounds, bounds[1:])]
            result = self.run_session(packets, manual_store)
            if result != expected:  # compare field by field for a readable failure
                for key in expected:
                    self.assertEqual(result[key], expected[key], f"{name}: {key} differs when cut at {points}")

    def random_cuts(self, session: bytes, seed: int, count: int) -> list[list[int]]:
        rng = random.Random(seed)
        cuts = []
        for _ in range(count):
            points, at = [], 0
            while True:
                at += rng.choice((1, 2, 3, rng.randint(1, 200), rng.randint(1, 3000)))
                if at >= len(session):
                    break
                points.append(at)
            cuts.append(points)
        return cuts

    def check_session(self, name: str) -> None:
        session = SESSIONS[name]
        two_packets = [[i] for i in interesting_cuts(session)]
        self.assert_same(name, [[]] + two_packets + self.random_cuts(session, 5321, 150))
        self.assert_same(name, [[]] + self.random_cuts(session, 2920, 60), manual_store=True)

    def test_tricky_body_then_pipelined(self):
        self.check_session("tricky_body_then_pipelined")

    def test_over_long_line_smuggles_commands(self):
        self.check_session("over_long_line_smuggles_commands")

    def test_size_limits(self):
        self.check_session("size_limits")

    def test_errors_end_the_session_at_the_dot(self):
        self.check_session("errors_end_the_session_at_the_dot")

    def test_almost_final_dots(self):
        self.check_session("almost_final_dots")

    def test_bare_lf(self):
        self.check_session("bare_lf")

    def test_reference_results(self):
        """Pin the reference itself, so both paths cannot drift together."""
        result = self.reference(SESSIONS["tricky_body_then_pipelined"])
        stored = result["stored"][0][1].split(b"\r\n", 4)[4]
        body = TRICKY_BODY.replace(b"\r\n.", b"\r\n")[1:]
        self.assertEqual(stored, body)  # bare CRs included
        self.assertIn(b"\r\n.\r\n..\r\n \r\n", stored)  # "..", "..." and ". " unstuffed
        self.assertIn(b"ends in CR\r\r\n\r\r\n\r\r\n.\r\r\n", stored)
        self.assertEqual(
            [(e["result"], e["size"]) for e in result["log"]],
            [(250, len(body)), ("aborted", 0), (250, 0)],
        )
        result = self.reference(SESSIONS["size_limits"])
        self.assertEqual([e["result"] for e in result["log"]], [250, 552, 500, 500, 552])
        self.assertEqual(result["log"][0]["size"], MAX_SIZE)
        self.assertEqual(result["log"][1]["size"], MAX_SIZE + 1)
        self.assertEqual([e["size"] for e in result["log"]], [MAX_SIZE, MAX_SIZE + 1, 5 * 502, 0, 3 * 902 + 3 + 3 * 602])
        result = self.reference(SESSIONS["over_long_line_smuggles_commands"])
        self.assertEqual([e["result"] for e in result["log"]], [500, 500, 500])
        self.assertEqual(result["stored"], [])
        self.assertTrue(result["output"].endswith(b"250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n"))
        result = self.reference(SESSIONS["errors_end_the_session_at_the_dot"])
        self.assertTrue(result["output"].endswith(b"500 5.5.2 Line too long\r\n421 4.7.0 mx.example.test Error: too many errors\r\n"))
        self.assertTrue(result["disconnecting"])
        result = self.reference(SESSIONS["almost_final_dots"])
        sent = b"a\r\n\r \r\n .\r\n\r\r\nx\r\n.\r\n\r\n"
        self.assertEqual(result["stored"][0][1].split(b"\r\n", 4)[4], sent)
        self.assertEqual((result["in_data"], result["buffered"]), (True, 0))
        result = self.reference(SESSIONS["bare_lf"])
        self.assertEqual([e["result"] for e in result["log"]], [554, 500, 554, 552, 554, 250])
        self.assertEqual(result["output"].count(b"554 5.6.0 Error: bare LF in message data"), 3)
        self.assertEqual([e["size"] for e in result["log"]], [3, 0, 0, 42 * 99, 0, 6])

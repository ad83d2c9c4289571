"""Grammar-aware fuzzing of the SMTP, POP3 and IMAP listeners of a real twistd.

A :class:`Generator` starts from real commands of a protocol (as tokens)
and mutates them the ways hostile or broken clients do: tokens replaced by
numbers at and past every limit, NUL, bad UTF-8, unbalanced parentheses and
quotes, huge literals, ``..`` and ``/`` in mailbox names; tokens dropped,
doubled, swapped; lines over the length limit, without CRLF or with bare LF;
random bytes; several commands pipelined in one write.

A :class:`FuzzRun` sends them to a server, one connection at a time (so a
log line can be tied to the input that caused it), and records a
:class:`Finding` when

* the server neither answers nor closes within :data:`REPLY_BOUND` (a hang);
* the log gains a traceback or a critical event.

Everything is drawn from one seeded ``random.Random``: a failing run prints
its seed, and ``MAILSRV_FUZZ_SEED=<seed>`` replays the same inputs.
"""

from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass, field

from attack import (
    PASSWORD, Closed, Conn, LogWatch, Refused, Silent, attacker_source, imap_login, plain_auth, pop3_login,
    smtp_open,
)
from twistd_server import Server

from mailsrv.config import LimitsConfig

#: Seconds within which every complete input must get a reply or a close.
REPLY_BOUND = 5.0
#: Longest line each listener accepts by default (``limits.max_line_length``,
#: ``limits.imap_max_line_length``); the generator goes past them.  A
#: shorter line left unfinished rightly gets no answer.
_LIMITS = LimitsConfig()
MAX_LINE = {"smtp": _LIMITS.max_line_length, "pop3": _LIMITS.max_line_length, "imap": _LIMITS.imap_max_line_length}
#: What ends a command line: SMTP (RFC 5321 2.3.8) and IMAP (RFC 3501 2.2)
#: need CRLF; POP3 takes a bare LF too, as most servers do.
LINE_END = {"smtp": b"\r\n", "pop3": b"\n", "imap": b"\r\n"}
#: Batches sent on one connection before a fresh one is opened.
BATCHES_PER_CONNECTION = 25
ADDRESS = "alice@example.test"

#: Values that sit on or past a limit, or break a grammar, for any token.
INTERESTING: list[bytes] = [
    b"", b"0", b"-1", b"1", b"4294967295", b"4294967296", b"18446744073709551616", b"99999999999999999999",
    b"*", b"1:*", b"*:1", b"1:", b":", b",", b"1,,2", b"2:1", b"0:0", b"(", b")", b"((((((((((", b"))))", b"()",
    b'"', b'"\\', b'"a\\"', b'""', b"{0}", b"{999999999}", b"{999999999+}", b"{-1}", b"{18446744073709551617}",
    b"\x00", b"a\x00b", b"\xff\xfe", b"\xc3(", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82",
    b"..", b"../..", b"../../../etc/passwd", b"/", b"/etc", b"INBOX/../..", b"INBOX.", b".INBOX", b"~root",
    b"&", b"&-", b"&AGE", b"&AGEA-", b"&ZeVnLIqe-", b"%", b"*%*", b"\\Seen", b"\\Bogus", b"\\", b"NIL",
    b"<>", b"<", b">", b"<@a,@b:c@d>", b"a@b@c", b"@", b"a@", b"\"a b\"@example.test", b"postmaster",
    b"[", b"]", b"BODY[", b"BODY[]<0.>", b"BODY[HEADER.FIELDS (", b"\t", b" ", b"A" * 1000,
    b"=?utf-8?b?AAA=?=", b"%s%s%n", b"\r", b"\n", b"+", b"=", b"SIZE=", b"BODY=", b"AUTH=<>",
]

#: Real commands per protocol and phase; the generator mutates these.
SEEDS: dict[str, list[bytes]] = {
    "smtp": [
        b"EHLO client.example.org", b"HELO client.example.org", b"MAIL FROM:<a@remote.test> SIZE=100 BODY=8BITMIME",
        b"MAIL FROM:<>", b"RCPT TO:<alice@example.test>", b"RCPT TO:<postmaster@example.test> NOTIFY=NEVER",
        b"RSET", b"NOOP", b"VRFY alice", b"EXPN staff", b"HELP MAIL", b"DATA", b"BDAT 10 LAST",
        b"AUTH PLAIN " + plain_auth(ADDRESS, "x"), b"AUTH LOGIN", b"STARTTLS", b"QUIT",
    ],
    "pop3-auth": [
        b"USER alice@example.test", b"PASS " + PASSWORD.encode(), b"CAPA", b"APOP alice 0123456789abcdef",
        b"AUTH PLAIN " + plain_auth(ADDRESS, "x"), b"AUTH", b"NOOP", b"STLS", b"QUIT",
    ],
    "pop3-transaction": [
        b"STAT", b"LIST", b"LIST 1", b"RETR 1", b"TOP 1 0", b"TOP 2 10", b"DELE 3", b"UIDL", b"UIDL 2", b"RSET",
        b"NOOP", b"CAPA", b"USER alice", b"LAST", b"QUIT",
    ],
    "imap-nonauth": [
        b"t CAPABILITY", b"t NOOP", b"t LOGIN alice@example.test x", b'"t" LOGIN "alice@example.test" {1}\r\nx',
        b"t AUTHENTICATE PLAIN", b"t AUTHENTICATE PLAIN " + plain_auth(ADDRESS, "x"), b"t ID (\"name\" \"fuzz\")",
        b"t ENABLE UTF8=ACCEPT", b"t STARTTLS", b"t SELECT INBOX", b"t LOGOUT",
    ],
    "imap-selected": [
        b"t SELECT INBOX", b"t EXAMINE INBOX", b"t CREATE Fuzz/Sub", b"t DELETE Fuzz/Sub", b"t RENAME Fuzz Fuzz2",
        b"t SUBSCRIBE Fuzz", b"t UNSUBSCRIBE Fuzz", b't LIST "" *', b't LSUB "" %',
        b"t STATUS INBOX (MESSAGES UIDNEXT UNSEEN)",
        b"t APPEND INBOX (\\Seen) {12}\r\nSubject: x\r\n", b't APPEND INBOX "01-Jan-2020 00:00:00 +0000" {5}\r\nhello',
        b"t CHECK", b"t CLOSE", b"t UNSELECT", b"t EXPUNGE", b"t SEARCH OR FROM a NOT (SEEN LARGER 100) TEXT x",
        b"t SEARCH CHARSET UTF-8 SUBJECT {3}\r\nabc", b"t SEARCH UID 1:* SINCE 1-Jan-2020 HEADER X-A b",
        b"t FETCH 1:* (FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE)",
        b"t FETCH 1 (BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)] BODY.PEEK[1]<0.10> BODY.PEEK[TEXT] BINARY.PEEK[1])",
        b"t FETCH 2:3 (BODY[1.MIME] RFC822.HEADER)", b"t STORE 1 +FLAGS (\\Seen $Fuzz)",
        b"t STORE 1:2 -FLAGS.SILENT (\\Flagged)", b"t STORE 1 FLAGS", b"t COPY 1:2 Fuzz", b"t MOVE 1 Fuzz",
        b"t UID FETCH 1:* (FLAGS)", b"t UID STORE 1 +FLAGS (\\Deleted)", b"t UID COPY 1 Fuzz", b"t UID SEARCH ALL",
        b"t UID EXPUNGE 1", b"t IDLE", b"t NAMESPACE", b"t GETQUOTAROOT INBOX",
        b"t UID MOVE 1 Fuzz", b"t CREATE Fuzz3 (USE (\\Archive))", b"t APPEND INBOX {5+}\r\nhello",
        b't LIST (SUBSCRIBED RECURSIVEMATCH) "" (* %) RETURN (CHILDREN STATUS (MESSAGES SIZE))',
        b"t STATUS INBOX (SIZE)",
        b"t NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (Subject)]) MessageExpunge "
        b"FlagChange)) (subtree Fuzz (MessageNew MessageExpunge MailboxName SubscriptionChange))",
        b"t NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxMetadataChange))", b"t NOTIFY NONE",
        b"t LOGOUT",
    ],
}

#: A batch holding one of these may leave the server legitimately waiting for
#: more input (a literal, a message body, a SASL response, IDLE's DONE).
_MAY_WAIT = re.compile(rb"\{\d*\+?\}|DATA|BDAT|AUTH|IDLE", re.I)
#: A batch holding one of these may end the session or switch it to TLS.
_FINAL = re.compile(rb"STARTTLS|STLS|QUIT|LOGOUT", re.I)
#: Sent after a batch that may leave the server waiting: ends a literal of up
#: to 80 octets, a message body, a SASL exchange or IDLE, then asks for a reply.
#: SMTP's also fills a BDAT chunk of up to 101 octets: the corpus's ``BDAT 10``
#: with a digit appended (the mutation that appends an interesting token) is
#: one the server must wait for; longer ones the mutations reach are refused at once.
FLUSH = {
    "smtp": b"x" * 101 + b"\r\n.\r\nNOOP\r\n",
    "pop3": b"\r\n*\r\nNOOP\r\n",
    "imap": b"x" * 90 + b"\r\nDONE\r\nzz NOOP\r\n",
}


@dataclass(frozen=True)
class Batch:
    """Octets sent in one write, and what the server may do with them."""

    data: bytes
    may_wait: bool  # the server may wait for more input before it answers
    final: bool  # the session may end or turn to TLS after it
    terminated: bool  # it ends with the protocol's line end (else the next octets continue its last line)


@dataclass
class Finding:
    """A hang or a log problem, with the inputs sent just before it."""

    kind: str  # "hang" or "log"
    detail: str
    phase: str
    inputs: list[bytes] = field(default_factory=list)

    def describe(self) -> str:
        """One paragraph: what happened and the last inputs (each shortened)."""
        shown = "\n".join(f"    sent {_short(data)}" for data in self.inputs[-3:])
        return f"{self.kind} in phase {self.phase}: {self.detail}\n{shown}"


def _short(data: bytes, limit: int = 160) -> str:
    """*data* as a repr, with long runs of one octet collapsed so a 70 kB line stays readable."""
    text = re.sub(rb"(.)\1{15,}", lambda m: m.group(1) + b"<x%d>" % len(m.group(0)), data, flags=re.S)
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + f"... ({len(data)} octets)"


class Generator:
    """Malformed and random input for one protocol, from a seeded random source."""

    def __init__(self, rnd: random.Random, protocol: str) -> None:
        self.rnd = rnd
        self.protocol = protocol
        self.max_line = MAX_LINE[protocol]

    def tokens(self, phase: str) -> list[bytes]:
        """A real command of *phase*, split into tokens (a literal's data stays with its line)."""
        return self.rnd.choice(SEEDS[phase]).split(b" ")

    def mutate(self, tokens: list[bytes]) -> list[bytes]:
        """Apply one to three grammar-level mutations."""
        rnd = self.rnd
        tokens = list(tokens)
        for _ in range(rnd.randint(1, 3)):
            choice = rnd.randrange(10)
            at = rnd.randrange(len(tokens)) if tokens else 0
            if choice <= 2 and tokens:
                tokens[at] = rnd.choice(INTERESTING)
            elif choice == 3 and tokens:
                del tokens[at]
            elif choice == 4 and tokens:
                tokens.insert(at, tokens[at])
            elif choice == 5:
                tokens.insert(at, rnd.choice(INTERESTING))
            elif choice == 6 and len(tokens) > 1:
                other = rnd.randrange(len(tokens))
                tokens[at], tokens[other] = tokens[other], tokens[at]
            elif choice == 7 and tokens:
                tokens[at] = tokens[at].swapcase() if rnd.random() < 0.5 else tokens[at] + rnd.choice(INTERESTING)
            elif choice == 8:
                tokens = tokens[: rnd.randint(0, len(tokens))]
            elif tokens:
                tokens[at] = b"(" * rnd.randint(1, 300) + tokens[at] if rnd.random() < 0.5 else tokens[at] + b")" * 50
        return tokens

    def line(self, phase: str) -> bytes:
        """One command line, usually CRLF-terminated."""
        rnd = self.rnd
        kind = rnd.random()
        if kind < 0.08:
            text = rnd.randbytes(rnd.randint(1, 200))
        elif kind < 0.12:
            filler = rnd.choice([b"A", b"(", b"\x00", b"\xff", b"{1}"])
            text = self.tokens(phase)[0] + b" " + filler * (self.max_line // len(filler) + rnd.randint(2, 5000))
        elif kind < 0.2:
            text = b" ".join(self.tokens(phase))
        else:
            separator = rnd.choice([b" ", b" ", b" ", b"  ", b"\t", b""])
            text = separator.join(self.mutate(self.tokens(phase)))
        if len(text) > self.max_line and rnd.random() < 0.3:
            return text  # an over-long line whose end never comes: the error must come at once
        ending = rnd.choices([b"\r\n", b"\n", b"\r", b"\x00\r\n", b" \r\n", b""], [80, 8, 3, 3, 3, 3])[0]
        return text + ending

    def batch(self, phase: str) -> Batch:
        """One to four lines in one write, sometimes many copies of one (pipelined garbage)."""
        rnd = self.rnd
        if rnd.random() < 0.05:
            lines = [self.line(phase)] * rnd.randint(10, 500)
        else:
            lines = [self.line(phase) for _ in range(rnd.randint(1, 4))]
        data = b"".join(lines)
        terminated = data.endswith(LINE_END[self.protocol])
        # An unfinished line may be waited for, unless it is already too long: that is an error at once.
        unfinished = not terminated and len(lines[-1]) <= self.max_line
        return Batch(data, bool(_MAY_WAIT.search(data)) or unfinished, bool(_FINAL.search(data)), terminated)

    def body(self) -> bytes:
        """Message body octets for inside DATA (never the final dot alone)."""
        rnd = self.rnd
        pieces = []
        for _ in range(rnd.randint(1, 20)):
            kind = rnd.randrange(10)
            if kind == 0:
                pieces.append(rnd.randbytes(rnd.randint(1, 300)))
            elif kind == 1:
                pieces.append(b"X" * rnd.choice([self.max_line + 10, 100_000, 300_000]) + b"\r\n")
            elif kind == 2:
                pieces.append(rnd.choice([b"..\r\n", b".x\r\n", b". \r\n", b".\n", b"\n.\n", b".\r", b"\r.\r\n"]))
            elif kind == 3:
                pieces.append(b"\x00\x00\r\n" if rnd.random() < 0.5 else b"\xff\xfe\xc3(\r\n")
            elif kind == 4:
                pieces.append(b"Subject: " + b" ".join(self.mutate([b"=?utf-8?q?hi?=", b"there"])) + b"\r\n")
            else:
                pieces.append(b"Body line %d\r\n" % rnd.randint(0, 999))
        return b"".join(pieces)


class FuzzRun:
    """Fuzz one protocol of *server* for *seconds*; :attr:`findings` holds what broke."""

    def __init__(self, server: Server, protocol: str, seconds: float, seed: int) -> None:
        self.server = server
        self.protocol = protocol
        self.seconds = seconds
        self.seed = seed
        self.rnd = random.Random(f"{seed}-{protocol}")
        self.generator = Generator(self.rnd, protocol)
        self.log = LogWatch(server)
        self.findings: list[Finding] = []
        #: Every finding with its inputs in full (the report shortens them), kept beside the server log.
        self.record = os.path.join(os.path.dirname(server.root), f"fuzz-{protocol}-{seed}.txt")
        self.connections = self.batches = 0
        self._source = 0

    @property
    def phases(self) -> list[str]:
        """The phases this protocol is fuzzed in."""
        return {"smtp": ["smtp", "smtp-data"], "pop3": ["pop3-auth", "pop3-transaction"],
                "imap": ["imap-nonauth", "imap-selected"]}[self.protocol]

    def run(self) -> list[Finding]:
        """Connect, fuzz, reconnect, until the time is up."""
        ends = time.monotonic() + self.seconds
        while time.monotonic() < ends:
            phase = self.rnd.choice(self.phases)
            sent: list[bytes] = []
            try:
                conn = self.open(phase)
            except (Silent, Closed, Refused, OSError) as e:
                self.found(Finding("hang" if isinstance(e, Silent) else "setup", f"opening: {e}", phase))
                continue
            self.connections += 1
            with conn:
                try:
                    if phase == "smtp-data":
                        self.transactions(conn, sent, ends)
                    else:
                        self.commands(conn, phase, sent, ends)
                except Silent as e:
                    self.found(Finding("hang", f"no reply and no close within {REPLY_BOUND:.0f} s ({e})",
                                       phase, list(sent[-3:])))
                except (Closed, ConnectionError, OSError):
                    pass  # the server may hang up on garbage at any time
            self.check_log(phase, sent)
        return self.findings

    def open(self, phase: str) -> Conn:
        """A session in *phase*, from a rotating attacker address (no per-IP limit is hit)."""
        self._source = (self._source + 1) % 20
        source = attacker_source(self._source)
        if phase == "imap-selected":
            return imap_login(self.server, ADDRESS, source, timeout=REPLY_BOUND)
        if phase == "pop3-transaction":
            return pop3_login(self.server, ADDRESS, source, timeout=REPLY_BOUND)
        if phase in ("smtp", "smtp-data"):
            return smtp_open(self.server.ports["smtp"], source, timeout=REPLY_BOUND)
        conn = Conn.open(self.server.ports[self.protocol], source, timeout=REPLY_BOUND)
        conn.readline()
        return conn

    def exchange(self, conn: Conn, data: bytes, sent: list[bytes]) -> bytes:
        """Send *data*; return the first answer (``b""`` for a close); :class:`Silent` if neither comes."""
        sent.append(data)
        self.batches += 1
        conn.send(data)
        return conn.answer_or_close(REPLY_BOUND)

    def commands(self, conn: Conn, phase: str, sent: list[bytes], ends: float) -> None:
        """Batches of mutated commands, each answered in time.

        After a batch that may leave the server waiting, or one that ends in
        the middle of a line (whose next octets would continue that line),
        the flush ends whatever was pending and must be answered in turn.
        """
        for _ in range(BATCHES_PER_CONNECTION):
            if time.monotonic() > ends:
                return
            batch = self.generator.batch(phase)
            if batch.may_wait:
                conn.send(batch.data)
                sent.append(batch.data)
                self.batches += 1
                conn.drain(0.05)
                answer = self.exchange(conn, FLUSH[self.protocol], sent)
            else:
                answer = self.exchange(conn, batch.data, sent)
                if answer and not batch.terminated:
                    conn.drain(0.05)
                    answer = self.exchange(conn, FLUSH[self.protocol], sent)
            self.check_log(phase, sent)
            if not answer or batch.final:
                return
            conn.drain(0.05)

    def transactions(self, conn: Conn, sent: list[bytes], ends: float) -> None:
        """MAIL, RCPT, DATA, then fuzzed body octets and the final dot, which must be answered."""
        for _ in range(5):
            if time.monotonic() > ends:
                return
            try:
                for command in (b"MAIL FROM:<fuzz@remote.test>", b"RCPT TO:<alice@example.test>", b"DATA"):
                    sent.append(command)
                    conn.smtp(command, 354 if command == b"DATA" else 250, timeout=REPLY_BOUND)
            except Refused:
                conn.smtp(b"RSET", timeout=REPLY_BOUND)
                continue
            for _ in range(self.rnd.randint(1, 5)):
                body = self.generator.body()
                sent.append(body)
                conn.send(body)
            if not self.exchange(conn, b"\r\n.\r\n", sent):
                return
            conn.drain(0.05)
            self.check_log("smtp-data", sent)

    def check_log(self, phase: str, sent: list[bytes]) -> None:
        """Tie any new traceback or critical event to the inputs just sent."""
        for problem in self.log.new_problems():
            self.found(Finding("log", problem, phase, list(sent[-3:])))

    def found(self, finding: Finding) -> None:
        """Keep *finding*, and append it with its inputs in full to :attr:`record`."""
        self.findings.append(finding)
        with open(self.record, "a") as f:
            f.write(f"{finding.kind} in {finding.phase}: {finding.detail}\n")
            f.writelines(f"    sent {data!r}\n" for data in finding.inputs)

    def report(self) -> str:
        """Distinct findings (by kind and detail), each with the input that caused it first."""
        distinct: dict[tuple[str, str], tuple[Finding, int]] = {}
        for finding in self.findings:
            key = (finding.kind, re.sub(r"\d+x\)", "", finding.detail))
            first, count = distinct.get(key, (finding, 0))
            distinct[key] = (first, count + 1)
        lines = [f"{self.protocol}: {self.connections} connections, {self.batches} writes, "
                 f"{len(self.findings)} findings ({len(distinct)} distinct); replay with MAILSRV_FUZZ_SEED={self.seed}"]
        if self.findings:
            lines.append(f"inputs in full: {self.record}")
        lines += [f"[{count}x] {finding.describe()}" for finding, count in distinct.values()]
        return "\n".join(lines)


def check_tree(server: Server) -> list[str]:
    """Paths a client may have created outside the store's layout (``..`` or ``/`` in a folder name)."""
    problems = []
    expected = {"data", "mailsrv.toml", "twistd.log"}
    problems += [f"unexpected {name} in {server.root}" for name in set(_listdir(server.root)) - expected]
    mail = os.path.join(server.data_dir, "mail")
    problems += [f"unexpected {mail}/{name}" for name in set(_listdir(mail)) - {"example.test", "other.test"}]
    users = {"alice", "bob", "postmaster"}
    local = os.path.join(mail, "example.test")
    problems += [f"unexpected {local}/{name}" for name in set(_listdir(local)) - users]
    return problems


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []

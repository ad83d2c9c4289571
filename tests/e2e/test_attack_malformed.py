"""Attack: malformed commands, each answered with a protocol error, never a traceback.

Issue 5: ``STORE 1 FLAGS`` (no list) raised in Twisted's ``arg_flaglist``,
was answered ``BAD Server error`` and logged at critical level with a
traceback, every time: any user could flood the log.  Every command here is
sent in the state where it is most likely to reach a handler (after login,
with a mailbox selected); each must get the protocol's error reply, and
the log must stay free of tracebacks and critical events.  The fuzzers
(``test_fuzz.py``) cover random input; this is the fixed list of known
shapes, one reply each.
"""

from __future__ import annotations

import pytest

from attack import (
    Closed, Probe, Silent, attack_server, attacker_source, fill_maildir, imap_login, log_problems, maildir_of,
    pop3_login, running, smtp_open, verdict,
)

ADDRESS = "alice@example.test"

#: Malformed IMAP commands for a selected mailbox (tags are added).
IMAP_COMMANDS = [
    b"STORE 1 FLAGS", b"STORE 1 +FLAGS", b"STORE 1 -FLAGS.SILENT", b"STORE 1", b"STORE", b"STORE 1 FLAGS (",
    b"STORE 1 FLAGS (\\Seen", b"STORE 1 FLAGS \\Bogus", b"STORE 1 BOGUS (\\Seen)", b"STORE 0 FLAGS (\\Seen)",
    b"STORE 1:* FLAGS ((\\Seen))", b"STORE 4294967296 FLAGS (\\Seen)", b"UID STORE 1 FLAGS",
    b"FETCH", b"FETCH 1", b"FETCH 1 (", b"FETCH 1 ()", b"FETCH 1 BODY[", b"FETCH 1 BODY[]<", b"FETCH 1 BODY[]<1>",
    b"FETCH 1 BODY[]<5.0>", b"FETCH 1 BODY[HEADER.FIELDS]", b"FETCH 1 BODY[HEADER.FIELDS (]",
    b"FETCH 1 BODY[1.2.3.4.5.6.7.8.9]",
    b"FETCH 1 BODY[0]", b"FETCH 1 BINARY[]", b"FETCH * (FLAGS", b"FETCH 1:4294967296 FLAGS", b"FETCH -1 FLAGS",
    b"FETCH 1,,2 FLAGS", b"FETCH a:b FLAGS", b"UID FETCH", b"UID", b"UID BOGUS 1", b"UID FETCH 1:* (FLAGS",
    b"SEARCH", b"SEARCH (", b"SEARCH )", b"SEARCH OR", b"SEARCH NOT", b"SEARCH BEFORE", b"SEARCH BEFORE 32-Foo-2020",
    b"SEARCH LARGER", b"SEARCH LARGER -1", b"SEARCH LARGER 99999999999999999999", b"SEARCH CHARSET",
    b"SEARCH CHARSET BOGUS TEXT x",
    b"SEARCH HEADER", b"SEARCH UID", b"SEARCH " + b"(" * 200 + b"ALL" + b")" * 200, b"SEARCH " + b"NOT " * 500 + b"ALL",
    b"COPY", b"COPY 1", b"COPY 1 \"\"", b"COPY 1 ../../etc", b"MOVE 1", b"UID COPY", b"UID EXPUNGE", b"UID EXPUNGE x",
    b"EXPUNGE now", b"CLOSE now", b"CHECK x", b"NOOP x y z",
    b"APPEND", b"APPEND INBOX", b"APPEND INBOX (\\Seen", b"APPEND INBOX {-1}",
    b"APPEND INBOX {999999999999}", b"APPEND INBOX {1a}",
    b"SELECT", b"SELECT \"", b"EXAMINE", b"CREATE", b"CREATE \"\"", b"CREATE ../x", b"CREATE a/../../b", b"CREATE /abs",
    b"CREATE &", b"CREATE &Jjo", b"CREATE \xff\xfe", b"DELETE", b"DELETE INBOX", b"RENAME", b"RENAME a",
    b"RENAME INBOX ../out", b"SUBSCRIBE", b"UNSUBSCRIBE", b"LIST", b"LIST \"\"", b"LIST \"\" (", b"LSUB",
    b"STATUS", b"STATUS INBOX", b"STATUS INBOX (", b"STATUS INBOX (BOGUS)", b"STATUS INBOX ()",
    b"LOGIN", b"LOGIN a", b"AUTHENTICATE", b"AUTHENTICATE BOGUS", b"ENABLE", b"ENABLE BOGUS",
    b"NAMESPACE x", b"ID (", b"ID (\"a\" \"b\" \"c\")", b"LIST (", b"LIST () \"\" * RETURN (STATUS",
    b"LIST (SUBSCRIBED) \"\" (", b"CREATE x (USE (", b"CREATE x (USE (\\All))", b"UID MOVE", b"UID MOVE 1:* \"\"",
    b"APPEND INBOX {99999999999+}", b"AUTHENTICATE PLAIN ====", b"GETQUOTAROOT", b"IDLE x", b"STARTTLS x", b"CAPABILITY x",
    b"\x00", b"FETCH \x00 FLAGS", b"FETCH 1 (FLAGS\x00)", b"SELECT \"INBOX\x00\"", b"\"quoted\" NOOP",
]

#: Raw IMAP writes (pipelined commands with literals) that left a session
#: broken; after each, a NOOP must still be answered.
IMAP_WRITES = [
    # Found by test_fuzz.py: the second APPEND is answered BAD, and Twisted's
    # literal state is left behind, so the next command raises in
    # rawDataReceived ("Unhandled Error") and the connection drops.
    b't1 APPEND INBOX {1}\r\nx\r\nt2 APPEND INBOX "x" {5}\r\nhello\r\n',
    b't3 APPEND INBOX {1}\r\nx\r\nt4 APPEND INBOX (\\Bogus) {5}\r\nhello\r\n',
]

#: Malformed POP3 commands in the TRANSACTION state.
POP3_COMMANDS = [
    b"STAT x", b"LIST x", b"LIST 0", b"LIST -1", b"LIST 99999999999999999999", b"LIST 1 2", b"RETR", b"RETR 0",
    b"RETR x", b"RETR 99999999", b"TOP", b"TOP 1", b"TOP 1 -1", b"TOP 1 x", b"TOP 0 0", b"DELE", b"DELE 0",
    b"DELE x", b"UIDL x", b"UIDL 0", b"NOOP x", b"RSET x", b"USER", b"PASS", b"APOP a b", b"AUTH", b"AUTH BOGUS",
    b"CAPA x", b"STLS x", b"LAST", b"RPOP x", b"", b" ", b"\x00", b"\xff\xfe", b"STAT\x00",
]

#: Malformed SMTP commands after EHLO.
SMTP_COMMANDS = [
    b"MAIL", b"MAIL FROM", b"MAIL FROM:", b"MAIL FROM:<", b"MAIL FROM:<a@b> BOGUS=1", b"MAIL FROM:<a@b> SIZE=x",
    b"MAIL FROM:<a@b> SIZE=99999999999999999999", b"MAIL FROM:<a@b> BODY=BOGUS", b"MAIL FROM:<\x00@b>",
    b"RCPT TO:<alice@example.test>", b"RCPT", b"RCPT TO:", b"RCPT TO:<>", b"DATA x", b"BDAT", b"BDAT x",
    b"AUTH", b"AUTH PLAIN", b"AUTH BOGUS", b"HELO", b"EHLO", b"VRFY", b"EXPN", b"HELP \xff", b"NOOP \x00",
    b"STARTTLS x", b"RSET x", b"\xff\xfe", b"", b" ",
]


@pytest.fixture
def server(tmp_path):
    srv = attack_server(str(tmp_path / "mailsrv"))
    fill_maildir(maildir_of(srv, ADDRESS), ADDRESS, 3)
    with running(srv):
        yield srv


def test_malformed_imap_pop3_and_smtp_commands(server):
    """Each command gets a reply of its protocol, and none reveals an internal error.

    IMAP: a tagged BAD/NO/OK, never ``BAD Server error`` (``STORE 1 FLAGS``
    and an unclosed FETCH list must be BAD or NO); POP3: ``-ERR`` or
    ``+OK``, never the ``[SYS/TEMP]`` of a command that raised; SMTP: a
    reply, never the 421 "internal error" of a command that raised.  Each
    command gets a fresh session; one left unanswered fails, and so does a
    close without a reply (an IMAP ``* BYE`` before it is a reply).  The log
    must hold no traceback and no critical event; the probe runs meanwhile.
    """
    problems: list[str | None] = []
    with Probe(server) as probe:
        problems += imap_replies(server)
        problems += pop3_replies(server)
        problems += smtp_replies(server)
    problems += [probe.problem(min_rounds=1)]
    problems += log_problems(server.log())
    verdict(problems, probe.summary())


#: Replies to a syntax error that a client may not get: each one means a
#: command raised inside the server.
INTERNAL_ERRORS = (b"Server error", b"SYS/TEMP", b"internal error")


def source(n: int) -> str:
    """Sessions come from 50 addresses in turn, so no per-IP limit is reached."""
    return attacker_source(n % 50)


def imap_replies(server) -> list[str]:
    """The problems with the IMAP replies; each command in a fresh session with INBOX selected.

    A fresh session per command means a server that answers a command with
    ``* BYE`` and closes is judged on that answer alone.
    """
    problems = []
    for n, command in enumerate(IMAP_COMMANDS):
        with imap_login(server, ADDRESS, source(n)) as conn:
            bye: list[bytes] = []

            def untagged(text: bytes, _literals: list[bytes]) -> None:
                if text.startswith(b"+"):  # IDLE or AUTHENTICATE took its arguments: end it
                    conn.send(b"DONE\r\n" if command.startswith(b"IDLE") else b"*\r\n")
                elif text.startswith(b"* BYE"):
                    bye.append(text)

            try:
                reply = conn.imap(b"m", command, timeout=10, untagged=untagged)
            except Closed as e:
                reply = bye[0] if bye else f"{e}".encode()
            except Silent as e:
                reply = f"{e}".encode()
        if not reply.startswith((b"m BAD", b"m NO", b"m OK", b"* BYE")) or any(t in reply for t in INTERNAL_ERRORS):
            problems.append(f"IMAP {command[:60]!r} answered {reply[:100]!r}")
        elif reply.startswith(b"m OK") and command.startswith((b"STORE 1 FLAGS", b"FETCH 1 (")):
            problems.append(f"IMAP {command[:60]!r} was accepted: {reply!r}")
    for n, data in enumerate(IMAP_WRITES):
        with imap_login(server, ADDRESS, source(n)) as conn:
            conn.send(data)
            replies = conn.drain(0.3)
            try:
                after = conn.imap(b"zz", b"NOOP", timeout=10)
            except (Silent, Closed) as e:
                after = f"{e}".encode()
        if not after.startswith(b"zz OK") or any(text in replies for text in INTERNAL_ERRORS):
            problems.append(f"IMAP {data[:60]!r} answered {replies[-100:]!r}, then NOOP: {after[:60]!r}")
    return problems


#: POP3 commands whose +OK reply is multi-line (RFC 1939, RFC 2449).
_MULTILINE = (b"LIST", b"UIDL", b"RETR", b"TOP", b"CAPA")


def pop3_replies(server) -> list[str]:
    """The problems with the POP3 replies; each command in a fresh session after login."""
    problems = []
    for n, command in enumerate(POP3_COMMANDS):
        with pop3_login(server, ADDRESS, source(n)) as conn:
            try:
                reply = conn.pop(command, multiline=command.upper().startswith(_MULTILINE), timeout=10)
            except (Silent, Closed) as e:
                reply = f"{e}".encode()
        if not reply.startswith((b"-ERR", b"+OK")) or any(text in reply for text in INTERNAL_ERRORS):
            problems.append(f"POP3 {command!r} answered {reply[:100]!r}")
    return problems


def smtp_replies(server) -> list[str]:
    """The problems with the SMTP replies; each command in a fresh session after EHLO."""
    problems = []
    for n, command in enumerate(SMTP_COMMANDS):
        with smtp_open(server.ports["smtp"], source(n)) as conn:
            try:
                code, text = conn.smtp(command, timeout=10)
            except (Silent, Closed) as e:
                code, text = 0, f"{e}".encode()
        if not 200 <= code < 600 or any(t in text for t in INTERNAL_ERRORS):
            problems.append(f"SMTP {command!r} answered {text[:100]!r}")
    return problems

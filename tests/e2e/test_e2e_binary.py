"""End to end: BINARY (RFC 3516) against the running ``twistd mailsrv``, with imaplib's raw commands.

imaplib knows neither literal8 nor BINARY, so the commands go out with
``send`` and the replies are read with ``readline``/``read``: what crosses
the socket is exactly what is asserted.
"""

from __future__ import annotations

import base64
import imaplib
import re
import smtplib
from collections.abc import Iterator

import pytest

from twistd_server import Server

PASSWORD = "correct horse battery staple"
USER = "alice@example.test"
PAYLOAD = b"\x00\x01\x02PNG\r\n\x1a\n\x00\xff end"
ATTACHED = (
    b"From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: attachment\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    b"--b1\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
    b"--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    + base64.b64encode(PAYLOAD) + b"\r\n"
    b"--b1\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-bogus\r\n\r\n???\r\n"
    b"--b1--\r\n"
)
RAW = b"Subject: raw\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\r\n\x00"
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n\Z")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")))
    srv.start()
    srv.add_user(USER, PASSWORD)
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=srv.tls())
        s.sendmail("bob@remote.test", [USER], ATTACHED)
    yield srv
    srv.stop()


@pytest.fixture
def conn(server: Server) -> Iterator[imaplib.IMAP4_SSL]:
    c = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    c.login(USER, PASSWORD)
    c.select("INBOX")
    yield c
    c.logout()


def raw(conn: imaplib.IMAP4_SSL, tag: bytes, command: bytes) -> bytes:
    """Send *command* as is; everything up to the tagged reply, literals read by their counts."""
    conn.send(command)
    out = b""
    while True:
        line = conn.readline()
        out += line
        match = _LITERAL.search(line)
        if match:
            out += conn.read(int(match.group(1)))
        elif line.startswith(tag + b" "):
            return out


def test_binary_is_advertised(conn: imaplib.IMAP4_SSL) -> None:
    assert "BINARY" in conn.capabilities


def test_base64_attachment_with_nul_as_literal8(conn: imaplib.IMAP4_SSL) -> None:
    reply = raw(conn, b"a1", b"a1 FETCH 1 (BINARY.SIZE[2] BINARY.PEEK[2])\r\n")
    assert reply.startswith(b"* 1 FETCH (BINARY.SIZE[2] %d BINARY[2] ~{%d}\r\n%s)\r\n" % (
        len(PAYLOAD), len(PAYLOAD), PAYLOAD)), reply
    assert reply.endswith(b"a1 OK FETCH completed\r\n")
    reply = raw(conn, b"a2", b"a2 FETCH 1 BINARY.PEEK[2]<3.3>\r\n")
    assert reply.startswith(b"* 1 FETCH (BINARY[2]<3> {3}\r\nPNG)\r\n"), reply


def test_bad_cte_is_unknown_cte(conn: imaplib.IMAP4_SSL) -> None:
    typ, data = conn.fetch("1", "(BINARY.PEEK[3])")
    assert typ == "NO" and data[0].startswith(b"[UNKNOWN-CTE]"), (typ, data)


def test_binary_sets_seen_peek_does_not(conn: imaplib.IMAP4_SSL) -> None:
    raw(conn, b"b1", b"b1 FETCH 1 BINARY.PEEK[1]\r\n")
    assert b"\\Seen" not in conn.fetch("1", "(FLAGS)")[1][0]
    reply = raw(conn, b"b2", b"b2 FETCH 1 BINARY[1]\r\n")
    assert b"BINARY[1] {13}\r\nSee attached. FLAGS" in reply and b"\\Seen" in reply, reply
    conn.store("1", "-FLAGS", "\\Seen")


def test_append_literal8_round_trip(conn: imaplib.IMAP4_SSL) -> None:
    reply = raw(conn, b"c1", b"c1 APPEND INBOX ~{%d+}\r\n%s\r\n" % (len(RAW), RAW))
    assert b"c1 OK [APPENDUID " in reply, reply
    number = int(re.search(rb"\* (\d+) EXISTS", reply + raw(conn, b"c2", b"c2 NOOP\r\n")).group(1))
    reply = raw(conn, b"c3", b"c3 FETCH %d BINARY.PEEK[]\r\n" % number)
    assert b"BINARY[] ~{%d}\r\n%s)" % (len(RAW), RAW) in reply, reply


def test_nul_in_a_normal_literal_is_bad(conn: imaplib.IMAP4_SSL) -> None:
    reply = raw(conn, b"d1", b"d1 APPEND INBOX {%d+}\r\n%s\r\n" % (len(RAW), RAW))
    assert reply.startswith(b"d1 BAD "), reply
    assert raw(conn, b"d2", b"d2 NOOP\r\n").endswith(b"d2 OK NOOP completed\r\n")

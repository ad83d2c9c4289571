"""End to end: BDAT (RFC 3030) into the running ``twistd mailsrv`` from a raw socket, read back over IMAP and POP3.

No stdlib client (nor swaks) speaks BDAT, so the SMTP side is a socket:
what crosses it is exactly what is asserted.  A BINARYMIME message (NUL,
8-bit octets, bare CRs, a line far past 1000 octets) sent in chunks cut
across writes and pipelined in one write comes back octet for octet
through IMAP ``BINARY.PEEK[]`` and ``BODY.PEEK[]`` and POP3 ``RETR``.
"""

from __future__ import annotations

import imaplib
import poplib
import re
import socket
from collections.abc import Iterator

import pytest

from twistd_server import Server

PASSWORD = "correct horse battery staple"
USER = "alice@example.test"
BINARY = (b"From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: raw chunks\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n"
          b"\x00\x01\xff\r\x80\r\r\n.\r\n..\r\n" + bytes(range(14, 256)) * 40 + b"\r\nend\r\n")
_LITERAL = re.compile(rb"~?\{(\d+)\}\r\n\Z")


class RawSMTP:
    """A socket client that sends octets as given and reads whole replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

    def replies(self, count: int) -> list[bytes]:
        """The next *count* replies, each with all its lines."""
        out: list[bytes] = []
        current = b""
        while len(out) < count:
            while b"\r\n" not in self.buffer:
                data = self.sock.recv(65536)
                if not data:
                    raise ConnectionError(f"closed after {out!r} {current!r} {self.buffer!r}")
                self.buffer += data
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            current += line + b"\r\n"
            if line[3:4] != b"-":
                out.append(current)
                current = b""
        return out

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed(self) -> bool:
        """True once the server closed the connection (after any replies still unread)."""
        return self.buffer == b"" and self.sock.recv(65536) == b""

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")))
    srv.start()
    srv.add_user(USER, PASSWORD)
    yield srv
    srv.stop()


@pytest.fixture
def smtp(server: Server) -> Iterator[RawSMTP]:
    client = RawSMTP(server.ports["smtp"])
    assert client.replies(1)[0].startswith(b"220 ")
    client.send(b"EHLO client.remote.test\r\n")
    [ehlo] = client.replies(1)
    assert b"250-CHUNKING\r\n" in ehlo and b"250-BINARYMIME\r\n" in ehlo, ehlo
    yield client
    client.close()


def imap_fetch(server: Server, item: bytes) -> bytes:
    """The octets of *item* of the last message in INBOX, read by its literal's count."""
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    try:
        conn.login(USER, PASSWORD)
        typ, data = conn.select("INBOX")
        conn.send(b"f1 FETCH %s (%s)\r\n" % (data[0], item))
        octets = None
        while not (line := conn.readline()).startswith(b"f1 "):
            match = _LITERAL.search(line)
            if match:
                octets = conn.read(int(match.group(1)))
        assert line.startswith(b"f1 OK ") and octets is not None, line
        return octets
    finally:
        conn.logout()


def pop3_last(server: Server) -> bytes:
    """The last message over POP3, its lines joined with CRLF (poplib undoes the dot-stuffing)."""
    conn = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=server.tls(), timeout=30)
    try:
        conn.user(USER)
        conn.pass_(PASSWORD)
        count = len(conn.list()[1])
        return b"".join(line + b"\r\n" for line in conn.retr(count)[1])
    finally:
        conn.quit()


def without_trace(message: bytes) -> bytes:
    """The message as the client sent it: our Return-Path and the three lines of our Received removed."""
    assert message.startswith(b"Return-Path: <bob@remote.test>\r\nReceived: "), message[:200]
    assert b" with ESMTP id " in message[:300]  # RFC 3848: BDAT changes nothing of the protocol named
    return message.split(b"\r\n", 4)[4]


def test_binarymime_in_pipelined_chunks_comes_back_byte_exact(server: Server, smtp: RawSMTP,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(poplib, "_MAXLINE", 1 << 20)  # poplib refuses lines past 2048 octets; BINARYMIME has no limit
    cuts = [0, 10, 150, 151, 152, 900, len(BINARY)]
    chunks = [BINARY[a:b] for a, b in zip(cuts, cuts[1:])]
    # Every command and chunk in one write (RFC 3030 4.2), then the last chunk in small writes.
    smtp.send(b"MAIL FROM:<bob@remote.test> BODY=BINARYMIME\r\nRCPT TO:<alice@example.test>\r\n"
              + b"".join(b"BDAT %d\r\n" % len(c) + c for c in chunks[:-1]) + b"BDAT %d LAST\r\n" % len(chunks[-1]))
    for start in range(0, len(chunks[-1]), 700):
        smtp.send(chunks[-1][start:start + 700])
    replies = smtp.replies(2 + len(chunks))
    assert replies[:2] == [b"250 2.1.0 Ok\r\n", b"250 2.1.5 Ok\r\n"]
    assert replies[2:-1] == [b"250 2.0.0 %d octets received\r\n" % len(c) for c in chunks[:-1]]
    assert re.fullmatch(rb"250 2\.0\.0 Ok: queued as \w+\r\n", replies[-1]), replies[-1]

    assert without_trace(imap_fetch(server, b"BINARY.PEEK[]")) == BINARY
    # A plain literal cannot carry NUL (RFC 3501 9): BODY[] has 0x80 in its place, the rest as stored.
    assert without_trace(imap_fetch(server, b"BODY.PEEK[]")) == BINARY.replace(b"\0", b"\x80")
    assert without_trace(pop3_last(server)) == BINARY


def test_refused_chunks_are_read_and_the_session_goes_on(server: Server, smtp: RawSMTP) -> None:
    # No transaction: 503 after the chunk's octets, which look like commands and are not run.
    smtp.send(b"BDAT 12\r\nQUIT\r\nQUIT\r\nNOOP\r\n")
    assert smtp.replies(2) == [b"503 5.5.1 Error: need MAIL command\r\n", b"250 2.0.0 Ok\r\n"]
    # A bare LF cannot be stored as sent: refused, never changed.
    body = b"Subject: lf\r\n\r\nbare\nLF\r\n"
    smtp.send(b"MAIL FROM:<bob@remote.test> BODY=BINARYMIME\r\nRCPT TO:<alice@example.test>\r\n"
              b"BDAT %d LAST\r\n" % len(body) + body + b"DATA\r\nNOOP\r\n")
    assert smtp.replies(5)[2:] == [b"554 5.6.1 Error: binary content with a bare LF cannot be stored here\r\n",
                                   b"503 5.5.1 Error: need MAIL command\r\n", b"250 2.0.0 Ok\r\n"]


@pytest.mark.parametrize("arguments", [b"-1", b"x", b"99999999999999999999"])
def test_hostile_chunk_sizes_close_the_connection_and_the_server_answers(server: Server, smtp: RawSMTP,
                                                                        arguments: bytes) -> None:
    smtp.send(b"MAIL FROM:<bob@remote.test>\r\nRCPT TO:<alice@example.test>\r\nBDAT " + arguments + b" LAST\r\n")
    replies = smtp.replies(4)
    assert replies[2][:4] in (b"501 ", b"552 "), replies
    assert replies[3].startswith(b"421 "), replies
    assert smtp.closed()
    assert server.alive()

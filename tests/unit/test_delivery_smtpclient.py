"""The SMTP client's pieces without sockets: DATA's dot-stuffing, reply framing, timeouts."""

from __future__ import annotations

import io

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport

from mailsrv.delivery.smtpclient import ClientConnection, Reply, SMTPClientError
from mailsrv.message.wire import stuffed

MESSAGE = b".first\r\nplain\r\n.\r\n..two\r\nend.\r\n.\r\n"


def reference(message: bytes) -> bytes:
    """RFC 5321 4.5.2 done line by line."""
    lines = message.split(b"\r\n")
    if lines[-1] == b"":
        lines.pop()
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines) + b".\r\n"


@pytest.mark.parametrize("message", [MESSAGE, b".", b"a\r\n.", b"", b"\r\n.\r\n"])
def test_dot_stuffing_does_not_depend_on_where_chunks_end(message: bytes) -> None:
    for i in range(len(message) + 1):
        for j in range(i, len(message) + 1):
            chunks = [message[:i], message[i:j], message[j:]]
            assert b"".join(stuffed(chunks)) == reference(message), (i, j)


def connection() -> tuple[ClientConnection, StringTransport, task.Clock]:
    clock = task.Clock()
    conn = ClientConnection(clock)
    transport = StringTransport()
    conn.makeConnection(transport)
    return conn, transport, clock


def test_a_multiline_reply_is_one_reply() -> None:
    conn, _, _ = connection()
    d = conn.read_reply(10)
    conn.dataReceived(b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n")
    reply = d.result
    assert reply == Reply(250, ("mx.example", "PIPELINING", "SIZE 100"))
    assert str(reply) == "250 mx.example PIPELINING SIZE 100"


def test_replies_that_came_early_wait_in_order() -> None:
    conn, _, _ = connection()
    conn.dataReceived(b"250 ok\r\n550 5.1.1 no\r\n354 go")
    assert str(conn.read_reply(10).result) == "250 ok"
    assert conn.read_reply(10).result.permanent
    d = conn.read_reply(10)
    assert not d.called
    conn.dataReceived(b" ahead\r\n")
    assert d.result.code == 354


def test_a_line_that_is_no_reply_drops_the_connection() -> None:
    conn, transport, _ = connection()
    d = conn.read_reply(10)
    conn.dataReceived(b"HTTP/1.1 400 Bad Request\r\n")
    assert isinstance(d.result.value, SMTPClientError)
    d.addErrback(lambda _: None)
    assert transport.disconnecting


def test_a_silent_peer_times_out() -> None:
    conn, transport, clock = connection()
    d = conn.read_reply(300)
    clock.advance(299)
    assert not d.called
    clock.advance(1)
    failure = d.result
    d.addErrback(lambda _: None)
    assert "timed out after 300 s" in str(failure.value)
    assert transport.disconnecting


def test_reading_after_the_connection_is_lost_fails() -> None:
    conn, _, _ = connection()
    conn.connectionLost(None)
    d = conn.read_reply(10)
    assert isinstance(d.result.value, SMTPClientError)
    d.addErrback(lambda _: None)


def test_the_body_goes_out_stuffed_and_each_block_resets_the_timeout() -> None:
    conn, transport, clock = connection()
    d = conn.send_body(io.BytesIO(b".a\n" * 30000), 180)
    producer = transport.producer
    while not d.called:
        clock.advance(179)  # less than the timeout between blocks, far more in all
        producer.resumeProducing()
    assert d.result is None
    assert transport.value() == b"..a\r\n" * 30000 + b".\r\n"

"""End to end: a 451 to RCPT is retried, and the retry delivers the message once.

The real twistd sends to an MX that is a small threaded SMTP responder of
the test's own (the real sender is a subprocess, so the reactor-based
``tests/smtp_receiver.py`` cannot serve it from a plain pytest test).  It
answers ``451`` to the first RCPT it is given and ``250`` after, and
records every command, so the test sees the deferral, the retry (``[delivery]
retry = ["1s"]``) and exactly one message.
"""

from __future__ import annotations

import socketserver
import threading

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import PASSWORD, numbered, queue_is_empty, queue_list, submit, wait_for
from twistd_server import Server


class Responder(socketserver.ThreadingTCPServer):
    """An SMTP server on 127.0.0.1 that refuses the first RCPT with 451; :attr:`commands` and :attr:`messages`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Session)
        self.port: int = self.server_address[1]
        self.lock = threading.Lock()
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self.refused = False

    def __enter__(self) -> "Responder":
        threading.Thread(target=self.serve_forever, name="test-smtp", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def rcpt_reply(self) -> bytes:
        with self.lock:
            if not self.refused:
                self.refused = True
                return b"451 4.3.0 try again later\r\n"
        return b"250 2.1.5 ok\r\n"


class _Session(socketserver.StreamRequestHandler):
    server: Responder

    def reply(self, line: bytes) -> None:
        self.wfile.write(line)
        self.wfile.flush()

    def handle(self) -> None:
        self.reply(b"220 responder.test ESMTP\r\n")
        while line := self.rfile.readline():
            command = line.rstrip(b"\r\n").decode("ascii", "replace")
            verb = command.split(" ", 1)[0].upper()
            with self.server.lock:
                self.server.commands.append(command)
            if verb == "EHLO":
                self.reply(b"250-responder.test\r\n250 8BITMIME\r\n")
            elif verb == "RCPT":
                self.reply(self.server.rcpt_reply())
            elif verb == "DATA":
                self.reply(b"354 go ahead\r\n")
                self.read_data()
                self.reply(b"250 2.0.0 queued\r\n")
            elif verb == "QUIT":
                self.reply(b"221 2.0.0 bye\r\n")
                return
            else:  # HELO, MAIL, RSET, NOOP
                self.reply(b"250 2.0.0 ok\r\n")

    def read_data(self) -> None:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line)
        with self.server.lock:
            self.server.messages.append(b"".join(lines))


@pytest.fixture
def sender_and_mx(tmp_path):
    zone = Zone()
    zone.add("remote.test", "MX", "10 mx.remote.test.")
    zone.add("mx.remote.test", "A", "127.0.0.1")
    with ThreadedDNS(zone) as dns, Responder() as mx:
        sender = Server(
            str(tmp_path),
            extra_config=f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
                         f'[delivery]\nmx_port = {mx.port}\nretry = ["1s"]\n',
        )
        sender.add_user("alice@example.test", PASSWORD)
        sender.start()
        try:
            yield sender, mx
        finally:
            sender.stop()


def test_451_to_rcpt_defers_and_the_retry_delivers_once(sender_and_mx):
    sender, mx = sender_and_mx
    submit(sender, "alice@example.test", [("bob@remote.test", numbered("alice@example.test", "bob@remote.test", 1))])

    assert wait_for(lambda: len(mx.messages) == 1 and queue_is_empty(sender), 30), (mx.commands, queue_list(sender))
    rcpts = [c for c in mx.commands if c.upper().startswith("RCPT")]
    assert len(rcpts) == 2 and all("<bob@remote.test>" in c for c in rcpts), mx.commands
    assert sum(c.upper() == "DATA" for c in mx.commands) == 1, mx.commands  # no DATA after the 451
    assert b"X-Seq: 1\r\n" in mx.messages[0]
    assert 'send deferred: ' in sender.log() and 'reply="451 4.3.0 try again later"' in sender.log()

"""A threaded SMTP responder on loopback for the outbound end-to-end tests: scripted replies, recorded commands.

The real twistd sends from a subprocess, so the reactor-based
``tests/smtp_receiver.py`` cannot serve it from a plain pytest test; this
one runs in threads.  It offers the ESMTP ``extensions`` it is given
(``REQUIRETLS`` only once TLS is up, RFC 8689 3), STARTTLS with a Python
``ssl`` context, answers each RCPT from ``script`` (a list of replies per
address: the first is used up, the last repeats; 250 for others), and
records every command line and every accepted message (:class:`Message`:
MAIL's and each accepted RCPT's argument as sent, and the data).  Several
may share one port on different 127.0.0.x addresses, since every MX is
reached on the sender's one ``mx_port``.
"""

from __future__ import annotations

import socketserver
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Message:
    """One message the responder took (250 after the data)."""

    mail_from: str
    rcpt_to: list[str]
    data: bytes
    tls: bool


class Responder(socketserver.ThreadingTCPServer):
    """See the module docstring; use it as a context manager (serves until the block ends)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, extensions: Iterable[str] = ("8BITMIME",),
                 tls: ssl.SSLContext | None = None, script: dict[str, list[str]] | None = None) -> None:
        super().__init__((host, port), _Session)
        self.port: int = self.server_address[1]
        self.extensions = list(extensions)
        self.tls = tls
        self.script = {address: list(replies) for address, replies in (script or {}).items()}
        self.lock = threading.Lock()
        self.commands: list[str] = []
        self.messages: list[Message] = []

    def __enter__(self) -> "Responder":
        threading.Thread(target=self.serve_forever, name="test-smtp", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def rcpt_reply(self, address: str) -> str:
        with self.lock:
            replies = self.script.get(address)
            if not replies:
                return "250 2.1.5 ok"
            return replies.pop(0) if len(replies) > 1 else replies[0]


@dataclass
class _Transaction:
    mail_from: str = ""
    rcpt_to: list[str] = field(default_factory=list)


class _Session(socketserver.StreamRequestHandler):
    server: Responder

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")
        self.wfile.flush()

    def handle(self) -> None:
        self.tls = False
        tx = _Transaction()
        self.reply("220 responder.test ESMTP")
        while line := self.rfile.readline():
            command = line.rstrip(b"\r\n").decode("ascii", "replace")
            verb, _, arg = command.partition(" ")
            verb = verb.upper()
            with self.server.lock:
                self.server.commands.append(command)
            if verb == "EHLO":
                self.ehlo()
            elif verb == "STARTTLS" and self.server.tls is not None and not self.tls:
                self.reply("220 2.0.0 go ahead")
                self.start_tls()
            elif verb == "MAIL":
                tx = _Transaction(mail_from=arg)
                self.reply("250 2.1.0 ok")
            elif verb == "RCPT":
                answer = self.server.rcpt_reply(arg.split(">", 1)[0].partition("<")[2])
                if answer.startswith("2"):
                    tx.rcpt_to.append(arg)
                self.reply(answer)
            elif verb == "DATA":
                self.reply("354 go ahead")
                self.read_data(tx)
                self.reply("250 2.0.0 queued")
            elif verb == "QUIT":
                self.reply("221 2.0.0 bye")
                return
            else:  # HELO, RSET, NOOP
                self.reply("250 2.0.0 ok")

    def ehlo(self) -> None:
        lines = ["responder.test", *(e for e in self.server.extensions if e != "REQUIRETLS" or self.tls)]
        if self.server.tls is not None and not self.tls:
            lines.append("STARTTLS")
        for line in lines[:-1]:
            self.wfile.write(f"250-{line}\r\n".encode())
        self.reply(f"250 {lines[-1]}")

    def start_tls(self) -> None:
        assert self.server.tls is not None
        self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        self.rfile = self.request.makefile("rb")
        self.wfile = self.request.makefile("wb")
        self.tls = True

    def read_data(self, tx: _Transaction) -> None:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b".") else line)
        with self.server.lock:
            self.server.messages.append(Message(tx.mail_from, tx.rcpt_to, b"".join(lines), self.tls))

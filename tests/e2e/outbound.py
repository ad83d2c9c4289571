"""Helpers of the outbound end-to-end tests: submit numbered messages, count what arrived, read the queue.

Every message a test submits carries ``X-Seq: N`` so the receiving side can
tell which arrived, and how often, whatever order and however many times
the sender delivered them.
"""

from __future__ import annotations

import http.server
import os
import re
import signal
import smtplib
import ssl
import threading
import time
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

from dns_harness import ThreadedDNS, Zone
from twistd_server import Server, mailsrv_cli

PASSWORD = "correct horse battery staple"
_SEQ = re.compile(rb"^X-Seq: (\d+)\r?$", re.MULTILINE)


def numbered(sender: str, recipient: str, seq: int, body: bytes = b"hello\r\n") -> bytes:
    """A message from *sender* to *recipient* that says which one it is."""
    return (f"From: {sender}\r\nTo: {recipient}\r\nSubject: message {seq}\r\nX-Seq: {seq}\r\n\r\n").encode() + body


def submit(server: Server, login: str, messages: Iterable[tuple[str, bytes]]) -> int:
    """Send ``(recipient, message)`` pairs over one authenticated submission session; how many got 250."""
    accepted = 0
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=60) as s:
        s.starttls(context=server.tls())
        s.login(login, PASSWORD)
        for recipient, message in messages:
            assert s.sendmail(login, [recipient], message) == {}
            accepted += 1
    return accepted


def arrived(maildir: str) -> Counter:
    """How many copies of each ``X-Seq`` are in *maildir*'s new/ and cur/."""
    seen: Counter = Counter()
    for sub in ("new", "cur"):
        folder = os.path.join(maildir, sub)
        if not os.path.isdir(folder):
            continue
        for name in os.listdir(folder):
            try:
                with open(os.path.join(folder, name), "rb") as f:
                    match = _SEQ.search(f.read())
            except FileNotFoundError:  # moved from new/ to cur/ meanwhile
                continue
            if match:
                seen[int(match.group(1))] += 1
    return seen


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll *condition* until it holds or *timeout* seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def queue_list(server: Server) -> str:
    """``mailsrv queue list`` of *server*, as the operator reads it."""
    listed = mailsrv_cli(server.config, "queue", "list")
    assert listed.returncode == 0, listed.stderr
    return listed.stdout


def queue_is_empty(server: Server) -> bool:
    return "0 messages in the queue" in queue_list(server)


def kill(server: Server) -> None:
    """SIGKILL *server*'s twistd, as a power cut or the OOM killer would: no shutdown code runs."""
    assert server.process is not None and server.process.poll() is None
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=20)
    server.process.stdout.close()


def remote_zone() -> Zone:
    """remote.test with its MX on loopback."""
    zone = Zone()
    zone.add("remote.test", "MX", "10 mx.remote.test.")
    zone.add("mx.remote.test", "A", "127.0.0.1")
    return zone


def sending_config(dns: ThreadedDNS, mx_port: int) -> str:
    """The config of a server that asks *dns* and sends to MX hosts on *mx_port*, retrying after a second."""
    return (f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
            f'[delivery]\nmx_port = {mx_port}\nretry = ["1s"]\n')


@contextmanager
def sending_server(root: str, dns: ThreadedDNS, mx_port: int) -> Iterator[Server]:
    """A started mailsrv with alice@example.test that sends as :func:`sending_config` says; stopped after."""
    sender = Server(root, extra_config=sending_config(dns, mx_port))
    sender.add_user("alice@example.test", PASSWORD)
    sender.start()
    try:
        yield sender
    finally:
        sender.stop()


def files_in(maildir: str, timeout: float = 30, count: int = 1) -> list[bytes]:
    """The messages of a Maildir's new/ and cur/ once there are *count*, waiting up to *timeout*."""
    deadline = time.monotonic() + timeout
    while True:
        names = [os.path.join(maildir, sub, n) for sub in ("new", "cur") if os.path.isdir(os.path.join(maildir, sub))
                 for n in sorted(os.listdir(os.path.join(maildir, sub)))]
        if len(names) >= count or time.monotonic() > deadline:
            out = []
            for name in names:
                with open(name, "rb") as f:
                    out.append(f.read().replace(b"\n", b"\r\n"))
            return out
        time.sleep(0.1)


def remote_and_sender(
    tmp_path_factory, dns: ThreadedDNS, receiver_users: Iterable[str], sender_name: str,
    domains: tuple[str, ...] = ("remote.test",),
) -> tuple[Server, Server]:
    """A receiving mailsrv for *domains* with *receiver_users*, and one for example.test (with
    alice) that asks *dns* and sends to it: configured, not started."""
    receiver = Server(str(tmp_path_factory.mktemp("receiver")), domains=domains)
    for user in receiver_users:
        receiver.add_user(user, PASSWORD)
    receiver.write_config()
    sender = Server(str(tmp_path_factory.mktemp(sender_name)), extra_config=sending_config(dns, receiver.ports["smtp"]))
    sender.add_user("alice@example.test", PASSWORD)
    return receiver, sender


class PolicyServer:
    """MTA-STS policy hosts on 127.0.0.1 over HTTPS, from a thread: ``policies`` maps a host to its text.

    Every ``mta-sts.<domain>`` name the test's DNS points here is served
    by one certificate (*cert*, *key*: made out to all of them); a host
    without a policy gets 404.  Use as a context manager; :attr:`port` is
    where, for ``[delivery] mta_sts_port``; :attr:`requests` counts the
    fetches per host.
    """

    def __init__(self, cert: str, key: str, policies: dict[str, str]) -> None:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").rpartition(":")[0]
                server.requests[host] += 1
                text = policies.get(host)
                if self.path != "/.well-known/mta-sts.txt" or text is None:
                    self.send_error(404)
                    return
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.requests: Counter = Counter()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self.port: int = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="test-mta-sts", daemon=True)

    def __enter__(self) -> "PolicyServer":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

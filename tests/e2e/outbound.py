"""Helpers of the outbound end-to-end tests: submit numbered messages, count what arrived, read the queue.

Every message a test submits carries ``X-Seq: N`` so the receiving side can
tell which arrived, and how often, whatever order and however many times
the sender delivered them.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import time
from collections import Counter
from typing import Callable, Iterable

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

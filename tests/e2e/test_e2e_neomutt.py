"""End to end with neomutt, the terminal mail reader, driven through tmux as a person types.

neomutt runs as a user configures it for an IMAP account: implicit TLS to
``localhost`` with the server's certificate as the one CA it trusts, no
header or body cache, IDLE on, ``imap_peek`` off (it then reads a message
with ``BODY[]``, as most clients do), and a home of the test's own.  tmux gives
it a terminal of fixed size on a socket of the test's own; the test reads
the screen (``capture-pane``) and types keys (``send-keys``), and checks
on the server, through imaplib, what each key should have changed there:
opening a message sets ``\\Seen``, ``d`` then ``$`` expunges it, and mail
delivered while neomutt sits in its index appears on the screen.
``.ci/run`` installs both (Debian: neomutt, tmux); without them this test
skips.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import smtplib
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from twistd_server import Server

PASSWORD = "correct horse battery staple"
USER = "alice@example.test"
NEOMUTT, TMUX = shutil.which("neomutt"), shutil.which("tmux")

pytestmark = pytest.mark.skipif(NEOMUTT is None or TMUX is None, reason="neomutt and tmux (Debian) are not installed")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(str(tmp_path / "mailsrv"))
    srv.start()
    srv.add_user(USER, PASSWORD)
    yield srv
    srv.stop()


def deliver(server: Server, subject: str, date: str) -> None:
    message = (f"From: bob@remote.test\r\nTo: {USER}\r\nSubject: {subject}\r\nDate: {date}\r\n"
               f"Message-ID: <{subject}@remote.test>\r\n\r\nThe body of {subject}.\r\n")
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        s.sendmail("bob@remote.test", [USER], message)


def on_server(server: Server) -> dict[str, bytes]:
    """Subject -> the flags of each INBOX message, read-only (no \\Recent taken from neomutt)."""
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    try:
        conn.login(USER, PASSWORD)
        conn.select("INBOX", readonly=True)
        typ, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        found = {}
        for item in data:
            if isinstance(item, tuple):
                subject = item[1].decode().split(":", 1)[1].strip()
                found[subject] = item[0].split(b"FLAGS (", 1)[1].split(b")", 1)[0]
        return found
    finally:
        conn.logout()


class Terminal:
    """neomutt in a detached tmux session on a socket of the test's own."""

    def __init__(self, tmp_path: Path, server: Server) -> None:
        self.socket = str(tmp_path / "tmux.sock")
        home = tmp_path / "home"
        home.mkdir()
        muttrc = home / "muttrc"
        muttrc.write_text(
            f'set folder = "imaps://{USER.replace("@", "%40")}@localhost:{server.ports["imaps"]}/"\n'
            f'set spoolfile = "+INBOX"\nset imap_pass = "{PASSWORD}"\n'
            f'set ssl_ca_certificates_file = "{server.cafile}"\nset ssl_force_tls = yes\n'
            f'set certificate_file = "{home}/certificates"\nset header_cache = ""\nset message_cachedir = ""\n'
            # imap_peek off: neomutt fetches BODY[], so the server, not a later STORE, sets \Seen.
            "set imap_idle = yes\nset imap_peek = no\nset mail_check = 1\nset timeout = 1\nset sort = date\n"
            'set index_format = "%4C %Z %s"\nset delete = yes\nset quit = yes\nset move = no\n'
        )
        self.environment = {**os.environ, "HOME": str(home), "TERM": "xterm"}
        self.tmux("new-session", "-d", "-x", "160", "-y", "40", f"{NEOMUTT} -n -F {muttrc}")

    def tmux(self, *args: str) -> str:
        done = subprocess.run([TMUX, "-S", self.socket, *args], env=self.environment, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p")

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", *keys)

    def wait(self, what: str, ready: Callable[[str], bool], timeout: float = 20) -> str:
        """The screen once *ready* holds for it; fails with the screen after *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if ready(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"neomutt never showed {what}:\n{screen}")
            time.sleep(0.2)

    def exited(self, timeout: float = 10) -> bool:
        """Whether neomutt quit (its tmux session ends with it) within *timeout* seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = subprocess.run([TMUX, "-S", self.socket, "has-session"], env=self.environment,
                                  capture_output=True, timeout=30)
            if done.returncode != 0:
                return True
            time.sleep(0.2)
        return False

    def close(self) -> None:
        subprocess.run([TMUX, "-S", self.socket, "kill-server"], env=self.environment, capture_output=True, timeout=30)


def wait_on_server(server: Server, what: str, ready: Callable[[dict[str, bytes]], bool]) -> dict[str, bytes]:
    deadline = time.monotonic() + 20
    while True:
        seen = on_server(server)
        if ready(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"the server never had {what}: {seen}")
        time.sleep(0.2)


def test_neomutt_reads_deletes_and_sees_new_mail(server: Server, tmp_path: Path) -> None:
    deliver(server, "first-letter", "Mon, 1 Jan 2024 10:00:00 +0000")
    deliver(server, "second-letter", "Tue, 2 Jan 2024 10:00:00 +0000")
    terminal = Terminal(tmp_path, server)
    try:
        terminal.wait("its index", lambda s: "first-letter" in s and "second-letter" in s and "Msgs:2" in s)
        # Sorted by date, the cursor on the first: Enter opens it in the pager (BODY[], not BODY.PEEK).
        terminal.keys("Enter")
        terminal.wait("the message", lambda s: "The body of first-letter." in s)
        wait_on_server(server, "first-letter \\Seen", lambda m: b"\\Seen" in m["first-letter"])
        assert b"\\Seen" not in on_server(server)["second-letter"]
        terminal.keys("q")
        terminal.wait("the index again", lambda s: "Msgs:2" in s)
        # Mail delivered while neomutt idles shows up (IDLE's EXISTS), without a key pressed.
        deliver(server, "third-letter", "Wed, 3 Jan 2024 10:00:00 +0000")
        terminal.wait("the new mail", lambda s: "third-letter" in s and "Msgs:3" in s)
        # d marks the message under the cursor (the first), $ syncs: STORE \Deleted and EXPUNGE.
        terminal.keys("d")
        terminal.keys("$")
        terminal.wait("the expunge", lambda s: "first-letter" not in s and "Msgs:2" in s)
        assert sorted(on_server(server)) == ["second-letter", "third-letter"]
        terminal.keys("q")
        assert terminal.exited(), terminal.screen()
    finally:
        terminal.close()
    assert "Traceback" not in server.log()

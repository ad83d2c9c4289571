"""The real twistd with a real rspamd (Debian's package) on loopback: GTUBE refused, mail scanned, Junk learnt.

The test starts rspamd itself, with a configuration of its own in a temp
dir: one normal worker (the scanner) and one controller on free loopback
ports, no Lua rules (GTUBE is rspamd's core, nothing here needs Redis or
DNS) and a two-line public suffix list instead of the 9,600-entry one,
whose compilation alone takes rspamd 8 seconds: so configured it answers
its ``/ping`` about 0.2 s after it was started.  As root it runs with
``-i`` (its workers stay root: a test on loopback, nothing more).  Skips
when rspamd is not installed or does not start.

mailsrv trusts no network, so mail from 127.0.0.1 is scanned as mail from
the internet; its lookups go to a test DNS that knows no name.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import smtplib
import subprocess
import time
import urllib.request

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import files_in
from rspamd_harness import GTUBE
from senderauth_harness import message
from twistd_server import HOSTNAME, Server, free_ports

ALICE = "alice@example.test"
PASSWORD = "secret"

CONFIG = """\
options {{
  pidfile = "{root}/rspamd.pid";
  dbdir = "{root}";
  url_tld = "{root}/tld.dat";
  dns {{ nameserver = ["127.0.0.1:{dead}"]; timeout = 1s; retransmits = 1; }}
}}
logging {{ type = "file"; filename = "{root}/rspamd.log"; level = "info"; }}
actions {{ reject = 15; add_header = 6; greylist = 4; }}
worker "normal" {{ bind_socket = "127.0.0.1:{scanner}"; count = 1; }}
worker "controller" {{
  bind_socket = "127.0.0.1:{controller}"; count = 1; password = "mailsrv-test"; enable_password = "mailsrv-test";
}}
"""


class Rspamd:
    """rspamd started from *root*, with its scanner and controller on free ports."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.scanner, self.controller, dead = free_ports(3)
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "tld.dat"), "w") as f:
            f.write("test\nnet\n")
        with open(os.path.join(root, "rspamd.conf"), "w") as f:
            f.write(CONFIG.format(root=root, scanner=self.scanner, controller=self.controller, dead=dead))
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> float:
        """Start it and wait for both workers; the seconds that took.  Skips the test if it cannot start."""
        started = time.monotonic()
        insecure = ["-i"] if os.getuid() == 0 else []
        self.process = subprocess.Popen(
            ["rspamd", "-f", *insecure, "-c", os.path.join(self.root, "rspamd.conf")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.root)
        pending = [self.scanner, self.controller]
        while pending:
            if self.process.poll() is not None or time.monotonic() - started > timeout:
                output = self.process.stdout.read().decode(errors="replace") if self.process.poll() is not None else ""
                self.stop()
                pytest.skip(f"rspamd did not start: {output[-500:]} {self.log()[-500:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{pending[0]}/ping", timeout=1) as reply:
                    if reply.read().strip() == b"pong":
                        pending.pop(0)
            except OSError:
                time.sleep(0.02)
        return time.monotonic() - started

    def log(self) -> str:
        try:
            with open(os.path.join(self.root, "rspamd.log"), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory):
    if shutil.which("rspamd") is None:
        pytest.skip("rspamd is not installed (Debian: apt-get install rspamd; .ci/run does)")
    daemon = Rspamd(str(tmp_path_factory.mktemp("rspamd")))
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, rspamd):
    root = tmp_path_factory.mktemp("spam")
    (root / "controller-password").write_text("mailsrv-test\n")
    with ThreadedDNS(Zone()) as dns:
        (root / "mailsrv").mkdir()
        srv = Server(str(root / "mailsrv"), extra_config=(
            f'[policy]\ntrusted_networks = []\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
            f'[spam]\nrspamd = "http://127.0.0.1:{rspamd.scanner}"\n'
            f'controller = "http://127.0.0.1:{rspamd.controller}"\ntimeout = "10s"\n'
            f'password_file = "{root / "controller-password"}"\n'
        ))
        srv.add_user(ALICE, PASSWORD)
        srv.start()
        yield srv
        srv.stop()


def maildir(srv: Server) -> str:
    return os.path.join(srv.data_dir, "mail", "example.test", "alice")


def send(srv: Server, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
        s.sendmail("bob@example.net", [ALICE], data)


def test_gtube_is_refused_with_550_5_7_1(server):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, message(subject="gtube").replace(b"Hello.", GTUBE))
    assert (refused.value.smtp_code, refused.value.smtp_error[:6]) == (550, b"5.7.1 ")
    assert not [m for m in files_in(maildir(server), timeout=0) if b"Subject: gtube" in m]


def test_a_normal_message_passes_with_its_score_below_our_authentication_results(server):
    send(server, message(subject="normal"))
    [stored] = [m for m in files_in(maildir(server)) if b"Subject: normal" in m]
    header = stored.split(b"\r\n\r\n", 1)[0]
    return_path, _, header = header.partition(b"\r\n")
    assert return_path == b"Return-Path: <bob@example.net>"
    assert header.startswith(f"Authentication-Results: {HOSTNAME};".encode())
    assert b"\r\nX-Spam-Status: No, score=" in header
    assert b"\r\nX-Spam-Action: no action\r\nReceived: " in header


def test_moving_into_junk_teaches_rspamd(server, rspamd):
    send(server, message(subject="teach me").replace(b"<1@example.net>", b"<teach@example.net>"))
    files_in(maildir(server), count=2)
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    try:
        conn.login(ALICE, PASSWORD)
        conn.select("INBOX")
        _, found = conn.search(None, "SUBJECT", '"teach me"')
        assert conn.copy(found[0].decode(), "Junk")[0] == "OK"
    finally:
        conn.logout()
    deadline = time.monotonic() + 30
    while "learned message as spam: teach@example.net" not in rspamd.log():
        assert time.monotonic() < deadline, (
            rspamd.log()[-2000:] + "\nmailsrv: " + "\n".join(
                line for line in server.log().splitlines() if "learn" in line or "rspamd" in line))
        time.sleep(0.05)

"""The real twistd started, reloaded and stopped as an admin does it: -n and daemon, SIGHUP, SIGTERM.

* A start that fails (a port in use, a broken config or certificate) exits
  non-zero at once with one line on stderr and leaves no pid file.
* SIGHUP reloads the certificate for new connections on every TLS
  listener (open sessions keep theirs), keeps the old one when the new one
  is broken, and reopens the log file after logrotate moved it.
* SIGTERM stops accepting, says goodbye to idle sessions of all three
  protocols, lets a message in DATA finish (250, stored), then exits; all
  of it on the server's prompt-write reactor (:mod:`mailsrv.net.reactor`).
"""

from __future__ import annotations

import imaplib
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import textwrap
import time
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mailsrv import tls
from twistd_server import REPO, Server, env, free_ports, twistd

PASSWORD = "pw-for-alice"
PLAINTEXT_ON_LOOPBACK = "[auth]\nallow_plaintext_auth_on_loopback = true\n"


def wait_for(condition, what: str, seconds: float = 30) -> None:
    """Poll *condition* until it holds (no timing is asserted: *seconds* only bounds a hang)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# -- failed starts ---------------------------------------------------------------


def config_with_busy_port(root, port: int) -> str:
    path = root / "mailsrv.toml"
    path.write_text(f'data_dir = "{root}/data"\n[listen]\nsmtp = ["tcp:{port}:interface=127.0.0.1"]\n'
                    + "".join(f"{k} = []\n" for k in ("submission", "submissions", "pop3", "pop3s", "imap", "imaps")))
    return str(path)


def start(root, config: str, daemon: bool) -> subprocess.CompletedProcess:
    """``twistd [-n] --pidfile=... --logfile=... mailsrv --config ...``, as the README says; a hang fails."""
    mode = [] if daemon else ["-n"]
    return subprocess.run(
        [*twistd(), *mode, f"--pidfile={root}/mailsrv.pid", f"--logfile={root}/mailsrv.log",
         "mailsrv", "--config", config],
        capture_output=True, text=True, env=env(), timeout=60, cwd=root,
    )


@pytest.mark.parametrize("daemon", [False, True], ids=["-n", "daemon"])
def test_port_in_use_ends_the_start_with_one_line_and_no_pid_file(tmp_path, daemon):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = start(tmp_path, config_with_busy_port(tmp_path, port), daemon)
    reason = f"mailsrv: cannot listen for smtp tcp:{port}:interface=127.0.0.1: Address already in use"
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    if daemon:  # what twistd's waiting parent prints of the reason (docs/twisted-notes.rst, "Daemon start failures")
        assert done.stderr.splitlines()[0] == f"An error has occurred: b'{reason}'"
    else:
        assert done.stderr == reason + "\n"
    assert reason in (tmp_path / "mailsrv.log").read_text()
    assert not (tmp_path / "mailsrv.pid").exists()


def broken_config(root) -> tuple[str, str]:
    path = root / "bad.toml"
    path.write_text('[limits]\nmax_recipients = "many"\n')
    return str(path), f"mailsrv: {path}: limits.max_recipients: expected a non-negative integer"


def broken_certificate(root) -> tuple[str, str]:
    cert, key = root / "cert.pem", root / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    path = root / "cert.toml"
    path.write_text(f'data_dir = "{root}/data"\n[tls]\ncert = "{cert}"\nkey = "{key}"\n')
    return str(path), f"mailsrv: {path}: tls.key/tls.cert: unreadable PEM"


@pytest.mark.parametrize("broken", [broken_config, broken_certificate])
def test_a_broken_config_or_certificate_ends_a_daemon_start_with_one_line(tmp_path, broken):
    config, reason = broken(tmp_path)
    done = start(tmp_path, config, daemon=True)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(reason)
    assert len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "mailsrv.pid").exists()


# -- SIGHUP ----------------------------------------------------------------------


class Certificates:
    """The certificate files the server's [tls] names, replaced by the test."""

    def __init__(self, root: str) -> None:
        self.cert, self.key = os.path.join(root, "cert.pem"), os.path.join(root, "key.pem")

    def issue(self, name: str) -> bytes:
        """New files for *name*; the DER of the new certificate."""
        tls.generate_self_signed(self.cert, self.key, name)
        with open(self.cert, "rb") as f:
            return x509.load_pem_x509_certificate(f.read()).public_bytes(Encoding.DER)

    def config(self) -> str:
        return f'[tls]\ncert = "{self.cert}"\nkey = "{self.key}"\n'


def any_certificate() -> ssl.SSLContext:
    """A client that takes whatever certificate it is shown (the test compares it itself)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def served_certificate(server: Server, kind: str) -> bytes:
    """The DER certificate a new TLS connection to listener *kind* gets (STARTTLS or implicit)."""
    port, ctx = server.ports[kind], any_certificate()
    if kind == "submissions":
        client = smtplib.SMTP_SSL("127.0.0.1", port, context=ctx, timeout=30)
    elif kind in ("smtp", "submission"):
        client = smtplib.SMTP("127.0.0.1", port, timeout=30)
        client.starttls(context=ctx)
    elif kind == "imaps":
        client = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx, timeout=30)
    elif kind == "imap":
        client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        client.starttls(ssl_context=ctx)
    elif kind == "pop3s":
        client = poplib.POP3_SSL("127.0.0.1", port, context=ctx, timeout=30)
    else:
        client = poplib.POP3("127.0.0.1", port, timeout=30)
        client.stls(context=ctx)
    der = client.sock.getpeercert(binary_form=True)
    client.sock.close()
    return der


def reloads(server: Server) -> int:
    return server.log().count("SIGHUP: reloaded")


def sighup(server: Server) -> None:
    """Send SIGHUP and wait for the reload's line."""
    before = reloads(server)
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: reloads(server) > before, "the reload line")


@pytest.fixture
def hup_server(tmp_path) -> Iterator[tuple[Server, Certificates]]:
    certificates = Certificates(str(tmp_path))
    certificates.issue("old.example.test")
    server = Server(str(tmp_path), extra_config=certificates.config())
    server.add_user("alice@example.test", PASSWORD)
    server.start()
    yield server, certificates
    server.stop()


TLS_KINDS = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")


def test_sighup_serves_a_new_certificate_to_new_connections_and_keeps_open_sessions(hup_server):
    server, certificates = hup_server
    old = served_certificate(server, "imaps")
    session = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=any_certificate(), timeout=30)
    session.login("alice@example.test", PASSWORD)
    new = certificates.issue("new.example.test")
    sighup(server)
    assert server.process.poll() is None
    assert {kind: served_certificate(server, kind) == new for kind in TLS_KINDS} == dict.fromkeys(TLS_KINDS, True)
    assert session.noop()[0] == "OK"  # the open session goes on, with its certificate
    assert session.sock.getpeercert(binary_form=True) == old
    session.logout()
    [line] = [line for line in server.log().splitlines() if "SIGHUP: reloaded" in line]
    assert (f"SIGHUP: reloaded log file {server.logfile}; configuration {server.config} unchanged; 1 users, 0 aliases; "
            "DKIM keys; TLS certificate CN=new.example.test") in line


def test_sighup_with_a_broken_certificate_keeps_the_current_one_and_says_why(hup_server):
    server, certificates = hup_server
    old = served_certificate(server, "submissions")
    with open(certificates.cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nhalf a file\n")
    sighup(server)
    assert "SIGHUP: TLS certificate not reloaded, the current one stays: " in server.log()
    assert served_certificate(server, "submissions") == old
    assert served_certificate(server, "imap") == old
    assert server.alive()


def readme_logrotate(log: str, pidfile: str) -> str:
    """The logrotate file README.rst shows, for *log* and *pidfile*."""
    with open(os.path.join(REPO, "README.rst"), encoding="utf-8") as f:
        readme = f.read()
    start = readme.index("      /var/log/mailsrv/mailsrv.log {")
    block = textwrap.dedent(readme[start:readme.index("\n      }\n", start) + 9])
    return block.replace("/var/log/mailsrv/mailsrv.log", log).replace("/run/mailsrv.pid", pidfile)


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="logrotate is not installed")
def test_logrotate_as_the_readme_shows_it(tmp_path):
    server = Server(str(tmp_path), extra_config="[log]\nrotate_size = 0\n")
    server.start()
    try:
        pidfile = tmp_path / "mailsrv.pid"
        pidfile.write_text(str(server.process.pid))
        conf = tmp_path / "logrotate.conf"
        conf.write_text(readme_logrotate(server.logfile, str(pidfile)))
        done = subprocess.run(["logrotate", "--force", "--state", str(tmp_path / "state"), str(conf)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        wait_for(lambda: "SIGHUP: reloaded log file" in server.log(), "the reload line in a new log file")
        with open(server.logfile + ".1") as f:
            assert "listening" in f.read()  # the lines from before are in the rotated file
        assert server.alive()
    finally:
        server.stop()


# -- SIGTERM ---------------------------------------------------------------------


class Line:
    """A raw client connection read line by line."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buffer = b""

    def read(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError(self.buffer)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def say(self, data: bytes) -> bytes:
        self.sock.sendall(data)
        return self.read()

    def rest(self) -> bytes:
        """Everything until the server closes."""
        data = self.buffer
        while chunk := self.sock.recv(4096):
            data += chunk
        return data


def smtp_session(server: Server) -> Line:
    client = Line(server.ports["smtp"])
    assert client.read().startswith(b"220 ")
    client.sock.sendall(b"EHLO client.example\r\n")
    while not client.read().startswith(b"250 "):
        pass
    return client


def test_sigterm_says_goodbye_lets_data_finish_and_exits(tmp_path):
    server = Server(str(tmp_path), extra_config=PLAINTEXT_ON_LOOPBACK)
    server.add_user("alice@example.test", PASSWORD)
    server.start()
    try:
        idle_smtp = smtp_session(server)
        imap = Line(server.ports["imap"])
        imap.read()
        assert imap.say(b'a LOGIN alice@example.test "' + PASSWORD.encode() + b'"\r\n').startswith(b"a OK")
        pop3 = Line(server.ports["pop3"])
        pop3.read()
        assert pop3.say(b"USER alice@example.test\r\n").startswith(b"+OK")
        assert pop3.say(b"PASS " + PASSWORD.encode() + b"\r\n").startswith(b"+OK")
        sending = smtp_session(server)
        assert sending.say(b"MAIL FROM:<bob@remote.test>\r\n").startswith(b"250")
        assert sending.say(b"RCPT TO:<alice@example.test>\r\n").startswith(b"250")
        assert sending.say(b"DATA\r\n").startswith(b"354")
        sending.sock.sendall(b"Subject: in flight\r\n\r\nfirst half\r\n")

        server.process.send_signal(signal.SIGTERM)
        assert idle_smtp.rest() == b"421 4.3.2 mail.example.test Service shutting down, closing transmission channel\r\n"
        assert imap.rest() == b"* BYE Server shutting down\r\n"
        assert pop3.rest() == b"-ERR [SYS/TEMP] Server shutting down, try again later\r\n"
        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=10)

        assert sending.say(b"second half\r\n.\r\n").startswith(b"250 2.0.0 Ok: queued as ")
        assert sending.rest() == b"421 4.3.2 mail.example.test Service shutting down, closing transmission channel\r\n"
        # After a clean stop twistd ends by raising the signal again, as Unix daemons do.
        assert server.process.wait(timeout=30) == -signal.SIGTERM
        assert "Server Shut Down." in server.log()
        # Every reply above went out through the server's own reactor
        # (docs/twisted-notes.rst, "Every write waits for the poller").
        assert "reactor class: mailsrv.net.reactor.PromptWriteReactor." in server.log()
    finally:
        server.stop()
    new = os.path.join(server.data_dir, "mail", "example.test", "alice", "new")
    [stored] = os.listdir(new)
    with open(os.path.join(new, stored), "rb") as f:
        assert f.read().endswith(b"Subject: in flight\n\nfirst half\nsecond half\n")


# -- daemon mode -------------------------------------------------------------------


def answers(server: Server) -> bool:
    try:
        return server.alive()
    except OSError:
        return False


def test_a_daemon_reloads_on_sighup_and_removes_its_pid_file_on_sigterm(tmp_path):
    server = Server(str(tmp_path), ports=dict(zip(("smtp", "imaps"), free_ports(2))))
    server.write_config()
    pidfile, log = tmp_path / "mailsrv.pid", tmp_path / "mailsrv.log"
    done = subprocess.run(
        [*twistd(), f"--pidfile={pidfile}", f"--logfile={log}", "mailsrv", "--config", server.config],
        capture_output=True, text=True, env=env(), timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    pid = int(pidfile.read_text())
    try:
        wait_for(lambda: answers(server), "the daemon to answer")
        os.kill(pid, signal.SIGHUP)
        wait_for(lambda: "SIGHUP: reloaded log file" in log.read_text(), "the reload line")
        assert server.alive()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pidfile.exists(), "the pid file to go")
    assert "Server Shut Down." in log.read_text()

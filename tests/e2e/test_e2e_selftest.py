"""End to end: ``mailsrv selftest`` against the real twistd, passing, with a listener off, and interrupted.

One server runs for the module; the failing cases run the command with a
copy of its configuration in which a listener is turned off or points at
a port where nothing (or something mute) listens, as after a firewall
change or a listener that failed.  Every case checks that the temporary
user and its Maildir are gone afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys

import pytest

from twistd_server import Server, env, free_ports, mailsrv_cli

MAIL_KINDS = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("selftest")))
    srv.start()
    made = mailsrv_cli(srv.config, "dkim", "keygen", "example.test")
    assert made.returncode == 0, made.stderr
    yield srv
    srv.stop()


def variant(server: Server, name: str, **listen: str) -> str:
    """A copy of the server's configuration with the ``[listen]`` lines of *listen* replaced."""
    with open(server.config) as f:
        text = f.read()
    for kind, endpoints in listen.items():
        text, count = re.subn(rf"(?m)^{kind} = .*$", f"{kind} = {endpoints}", text)
        assert count == 1
    path = os.path.join(server.root, f"{name}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def steps(output: str) -> dict[str, tuple[str, str]]:
    """The report's lines by step name: (result, detail)."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"(pass|fail|skip)  (\S+(?: \S+)?) +\d+\.\d\ds  (.*)", line)
        if match:
            found[match.group(2)] = (match.group(1), match.group(3))
    return found


def assert_cleaned_up(server: Server) -> None:
    listed = mailsrv_cli(server.config, "user", "list")
    assert listed.returncode == 0 and "selftest" not in listed.stdout
    domain_dir = os.path.join(server.data_dir, "mail", "example.test")
    assert not [name for name in os.listdir(domain_dir) if name.startswith("selftest")]


def test_selftest_passes_and_leaves_nothing_behind(server):
    done = mailsrv_cli(server.config, "selftest")
    assert done.returncode == 0, done.stdout + done.stderr
    report = steps(done.stdout)
    assert {result for result, _ in report.values()} <= {"pass", "skip"}
    assert report["submit"][0] == "pass" and "submissions" in report["submit"][1]
    assert "(implicit TLS, AUTH as selftest-" in report["submit"][1]
    assert report["imap exists"] == ("pass", "* 1 EXISTS in the IDLE session")
    # Our Return-Path, Received and DKIM signature on top; the rest exactly as sent.
    assert "byte-exact below Return-Path, DKIM-Signature, Received; deleted" in report["pop3 retr"][1]
    for kind in MAIL_KINDS + ("https",):
        result, detail = report[f"tls {kind}"]
        assert result == "pass" and "TLSv1.3, certificate for mail.example.test" in detail
    assert report["tls http"][0] == "skip"
    assert report["dns"][0] == "skip" and "special-use" in report["dns"][1]
    assert report["cleanup"][0] == "pass"
    assert done.stdout.endswith(f"selftest passed: {len(report)} steps\n")
    assert_cleaned_up(server)


def test_selftest_falls_back_to_the_starttls_ports(server):
    config = variant(server, "starttls", submissions="[]", imaps="[]", pop3s="[]")
    done = mailsrv_cli(config, "selftest")
    assert done.returncode == 0, done.stdout + done.stderr
    report = steps(done.stdout)
    assert re.match(r"submission \S+ \(STARTTLS, AUTH as ", report["submit"][1])
    assert re.match(r"imap \S+ \(STARTTLS\)", report["imap idle"][1])
    assert re.match(r"pop3 \S+ \(STLS\): .* byte-exact", report["pop3 retr"][1])
    assert "tls pop3s" not in report
    assert_cleaned_up(server)


def test_pop3_not_configured_fails_the_step_and_the_command(server):
    config = variant(server, "nopop3", pop3="[]", pop3s="[]")
    done = mailsrv_cli(config, "selftest")
    assert done.returncode == 1
    report = steps(done.stdout)
    assert report["pop3 retr"] == ("fail", f"no pop3s or pop3 listener to connect to ([listen] in {config})")
    assert report["imap exists"][0] == "pass"
    # The message the failed step did not delete goes with the Maildir.
    assert report["cleanup"][0] == "pass" and "with 1 message(s) a failed step left" in report["cleanup"][1]
    assert "mailsrv: selftest failed: 1 of" in done.stderr and "(pop3 retr)" in done.stderr
    assert_cleaned_up(server)


def test_a_configured_listener_whose_port_is_closed_fails(server):
    closed = free_ports(1)[0]
    config = variant(server, "closed", pop3s=f'["tcp:{closed}:interface=127.0.0.1"]')
    done = mailsrv_cli(config, "selftest")
    assert done.returncode == 1
    report = steps(done.stdout)
    assert report["pop3 retr"][0] == "fail" and "Connection refused" in report["pop3 retr"][1]
    assert report["tls pop3s"][0] == "fail" and "Connection refused" in report["tls pop3s"][1]
    assert report["tls pop3"][0] == "pass"
    assert_cleaned_up(server)


def test_a_certificate_without_the_hostname_fails_every_tls_step(server):
    with open(server.config) as f:
        text = f.read()
    config = os.path.join(server.root, "renamed.toml")
    with open(config, "w") as f:
        f.write(text.replace('hostname = "mail.example.test"', 'hostname = "mx.example.test"'))
    done = mailsrv_cli(config, "selftest")
    assert done.returncode == 1
    report = steps(done.stdout)
    for kind in MAIL_KINDS:
        result, detail = report[f"tls {kind}"]
        assert result == "fail" and "certificate not accepted: Hostname mismatch" in detail
    assert report["imap idle"][0] == "fail" and report["submit"][0] == "fail"
    assert report["imap exists"] == ("skip", "needs imap idle, submit")
    assert report["pop3 retr"] == ("skip", "needs submit")
    assert_cleaned_up(server)


@pytest.fixture
def ctrl_c_reaches_children():
    """SIGINT not ignored in this process while a child starts, as at a shell prompt.

    A command started in the background by a non-interactive shell (``.ci/run
    &``) has SIGINT ignored, its children inherit that, and Python then leaves
    it ignored: the interrupted self-test would never see the Ctrl-C.
    """
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_still_removes_the_temporary_user(server, ctrl_c_reaches_children):
    with socket.create_server(("127.0.0.1", 0)) as mute:  # accepts, never greets: the self-test waits there
        config = variant(server, "mute", imaps=f'["tcp:{mute.getsockname()[1]}:interface=127.0.0.1"]')
        command = subprocess.Popen(
            [sys.executable, "-m", "mailsrv.cli", "-c", config, "selftest"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env(),
        )
        try:
            mute.settimeout(60)
            waiting, _ = mute.accept()  # the user exists now: it is made before IMAP is dialled
            with waiting:
                command.send_signal(signal.SIGINT)
                out, err = command.communicate(timeout=60)
        finally:
            command.kill()
            command.wait()
    assert command.returncode == 1
    report = steps(out)
    assert report["user"][0] == "pass"
    assert report["interrupted"][0] == "fail" and report["cleanup"][0] == "pass"
    assert "mailsrv: selftest interrupted" in err
    assert_cleaned_up(server)

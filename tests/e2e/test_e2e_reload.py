"""SIGHUP and the certificate watch on the real twistd, as an admin uses them.

* A certificate renewed on disk is served to new TLS clients without a
  SIGHUP (``[tls] check_interval``).
* A configuration file edited to something that does not load is refused
  with one error line on SIGHUP; logins and limits go on as before.
* A changed reloadable key (``[limits] max_recipients``) applies to the
  next connection while a session opened before goes on.
* A changed key that takes a restart (``hostname``) keeps its running
  value, with the line that says so.
"""

from __future__ import annotations

import imaplib
import signal
import smtplib
import socket
from collections.abc import Iterator

import pytest

from test_e2e_lifecycle import (PASSWORD, PLAINTEXT_ON_LOOPBACK, Certificates, any_certificate, served_certificate,
                                sighup, wait_for)
from twistd_server import HOSTNAME, Server

USER = "alice@example.test"


@pytest.fixture
def server(tmp_path) -> Iterator[tuple[Server, Certificates]]:
    """A server whose certificate files are looked at every second and whose recipient limit is 3."""
    certificates = Certificates(str(tmp_path))
    certificates.issue("old.example.test")
    server = Server(str(tmp_path), extra_config=certificates.config() + "check_interval = 1\n"
                    + PLAINTEXT_ON_LOOPBACK + "[limits]\nmax_recipients = 3\n")
    server.add_user(USER, PASSWORD)
    server.start()
    yield server, certificates
    server.stop()


def edit(server: Server, old: str, new: str) -> None:
    """Replace *old* by *new* in the server's configuration file, as an admin's editor does."""
    with open(server.config) as f:
        text = f.read()
    assert old in text
    with open(server.config, "w") as f:
        f.write(text.replace(old, new, 1))


def recipient_limit(client: smtplib.SMTP) -> str:
    """The RCPTMAX the server announces to *client* (RFC 9422 LIMITS)."""
    client.ehlo("client.example.net")
    return dict(item.split("=") for item in client.esmtp_features["limits"].split())["RCPTMAX"]


def new_client(server: Server) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30)


def test_a_renewed_certificate_is_served_without_a_sighup(server):
    server, certificates = server
    old = served_certificate(server, "imaps")
    session = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=any_certificate(), timeout=30)
    session.login(USER, PASSWORD)
    new = certificates.issue("new.example.test")
    wait_for(lambda: served_certificate(server, "imaps") == new, "the renewed certificate")
    assert served_certificate(server, "submission") == new
    assert f"TLS: {certificates.cert} changed: every TLS listener now serves CN=new.example.test" in server.log()
    assert "SIGHUP" not in server.log()
    assert session.noop()[0] == "OK"
    assert session.sock.getpeercert(binary_form=True) == old
    session.logout()


def test_a_configuration_that_does_not_load_is_refused_with_one_line_and_the_old_one_stays(server):
    server, _ = server
    edit(server, "max_recipients = 3\n", 'max_recipients = "many"\n')
    server.process.send_signal(signal.SIGHUP)
    wait_for(lambda: "SIGHUP: configuration refused" in server.log(), "the refusal line")
    errors = [line for line in server.log().splitlines() if "SIGHUP" in line]
    assert errors == [line for line in errors if "SIGHUP: configuration refused, the running one stays: "
                      f"{server.config}: limits.max_recipients: expected a non-negative integer" in line]
    assert len(errors) == 1
    with new_client(server) as client:
        assert recipient_limit(client) == "3"
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as client:
        client.ehlo("client.example.net")
        assert client.login(USER, PASSWORD)[0] == 235


def test_a_changed_limit_applies_to_the_next_connection_and_an_open_session_goes_on(server):
    server, _ = server
    with new_client(server) as before:
        assert recipient_limit(before) == "3"
        edit(server, "max_recipients = 3\n", "max_recipients = 2\n")
        sighup(server)
        with new_client(server) as after:
            assert recipient_limit(after) == "2"
            after.mail("bob@remote.test")
            assert [after.rcpt(USER)[0] for _ in range(3)] == [250, 250, 452]
        assert before.noop()[0] == 250
    [line] = [line for line in server.log().splitlines() if "SIGHUP: reloaded" in line]
    assert f"configuration {server.config} (changed: limits.max_recipients)" in line


def test_a_changed_key_that_takes_a_restart_keeps_its_value_with_one_line(server):
    server, _ = server
    edit(server, f'hostname = "{HOSTNAME}"', 'hostname = "renamed.example.test"')
    sighup(server)
    assert f"SIGHUP: hostname in {server.config} changed: takes effect after a restart" in server.log()
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=30) as client:
        assert client.recv(1024).startswith(f"220 {HOSTNAME} ".encode())

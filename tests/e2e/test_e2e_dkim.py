"""End to end: ``mailsrv dkim keygen`` before and while the real twistd runs, and the mail it signs.

The records the command prints are the only DNS the verifier (dkimpy) gets:
what an operator publishes is what makes the signature verify.
"""

from __future__ import annotations

import imaplib
import smtplib

import pytest

from support import dkim_verifies
from twistd_server import Server, mailsrv_cli

PASSWORD = "correct horse battery staple"
MESSAGE = b"Subject: signed\r\nTo: bob@example.test\r\n\r\nHello.\r\n"  # no Message-ID, no Date: we add them


def keygen(server: Server, *args: str) -> str:
    """The record ``dkim keygen`` prints (its last line)."""
    made = mailsrv_cli(server.config, "dkim", "keygen", *args)
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")))
    srv.add_user("alice@example.test", PASSWORD)  # makes the config and the data dir
    srv.add_user("carol@other.test", PASSWORD)
    srv.add_user("bob@example.test", PASSWORD)
    srv.records = {"example.test": keygen(srv, "example.test", "--selector", "before")}  # before the start
    srv.start()
    yield srv
    srv.stop()


def submit(server: Server, login: str, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as s:
        s.starttls(context=server.tls())
        s.login(login, PASSWORD)
        assert s.sendmail(login, ["bob@example.test"], b"From: " + login.encode() + b"\r\n" + data) == {}


def last_message(server: Server) -> bytes:
    """bob's newest message, as IMAP serves it (wire form, byte-exact)."""
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    m.login("bob@example.test", PASSWORD)
    m.select("INBOX")
    typ, fetched = m.fetch("*", "(BODY.PEEK[])")
    m.logout()
    assert typ == "OK"
    return fetched[0][1]


def test_submitted_mail_is_signed_with_the_key_made_before_start(server):
    submit(server, "alice@example.test", MESSAGE)
    stored = last_message(server)
    assert stored.startswith(b"Return-Path: <alice@example.test>\r\n"
                             b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;")
    assert b" s=before;" in stored
    assert dkim_verifies(stored, server.records["example.test"])
    for added in (b"\r\nMessage-ID: <", b"\r\nDate: "):  # added by us, and covered
        assert added in stored.split(b"\r\n\r\n", 1)[0]
        assert not dkim_verifies(stored.replace(added, added + b"1", 1), server.records["example.test"])


def test_a_key_made_while_running_signs_without_a_restart(server):
    submit(server, "carol@other.test", MESSAGE)
    assert b"DKIM-Signature" not in last_message(server)  # other.test has no key yet
    record = keygen(server, "other.test", "--selector", "live", "--algorithm", "ed25519")
    submit(server, "carol@other.test", MESSAGE)
    stored = last_message(server)
    assert stored.startswith(b"Return-Path: <carol@other.test>\r\n"
                             b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=other.test;")
    assert dkim_verifies(stored, record)


def test_port_25_mail_is_not_signed(server):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.starttls(context=server.tls())
        s.sendmail("alice@example.test", ["bob@example.test"], b"From: alice@example.test\r\n" + MESSAGE)
    assert b"DKIM-Signature" not in last_message(server)

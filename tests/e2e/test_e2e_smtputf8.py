"""SMTPUTF8 (RFC 6531) on the real twistd: smtplib sends to a user whose address is not ASCII, who reads the
message back over IMAP byte for byte; swaks (a real client without SMTPUTF8) gets RFC 6531 3.5's refusal."""

from __future__ import annotations

import imaplib
import shutil
import smtplib
import subprocess

import pytest

from test_e2e import strip_trace
from twistd_server import Server

PASSWORD = "pässwörd"
USER = "jösé@bücher.example"
#: The user's canonical address: the domain as its A-label.
CANONICAL = "jösé@xn--bcher-kva.example"
MESSAGE = (
    "From: Sénder <sénder@remote.test>\r\nTo: Jösé <jösé@bücher.example>\r\nSubject: Grüße aus Köln\r\n"
    "Message-ID: <1@remote.test>\r\nDate: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\nÇa va? 👋\r\n"
).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")), domains=("example.test", "bücher.example"))
    srv.start()
    srv.add_user(USER, PASSWORD)
    yield srv
    srv.stop()


def fetch_all(server: Server, address: str) -> list[bytes]:
    """Every INBOX message of *address*, logged in with AUTHENTICATE PLAIN (UTF-8 inside base64)."""
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    try:
        conn.authenticate("PLAIN", lambda _: f"\0{address}\0{PASSWORD}".encode())
        conn.select("INBOX", readonly=True)
        _, [numbers] = conn.search(None, "ALL")
        out = []
        for n in numbers.split():
            _, data = conn.fetch(n, "(BODY.PEEK[])")
            out.append(data[0][1])
        return out
    finally:
        conn.logout()


def test_smtputf8_mail_to_a_utf8_user_reads_back_over_imap(server):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        s.ehlo("client.remote.test")
        assert s.has_extn("smtputf8") and s.has_extn("8bitmime")
        assert s.esmtp_features["limits"].startswith("RCPTMAX=")
        # The U-label of the user's domain, in the decomposed spelling (o + combining diaeresis).
        refused = s.sendmail("sénder@remote.test", ["jo\u0308sé@BÜCHER.example"], MESSAGE,
                             mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert refused == {}
    # The A-label and a login by the U-label are the same user.
    for login in (USER, CANONICAL):
        [stored] = fetch_all(server, login)
        assert strip_trace(stored) == MESSAGE
    assert stored.startswith("Return-Path: <sénder@remote.test>\r\nReceived: from client.remote.test".encode())
    assert b" with UTF8SMTPS id " in stored  # RFC 6531 4.3


def test_a_utf8_address_without_smtputf8_is_refused_with_553_5_6_7(server):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.ehlo("client.remote.test")
        s.send("MAIL FROM:<sénder@remote.test>\r\n".encode())
        assert s.getreply() == (553, b"5.6.7 Non-ASCII address without SMTPUTF8 in MAIL FROM")
        s.send(b"MAIL FROM:<j\xf6s\xe9@remote.test> SMTPUTF8\r\n")  # Latin-1, not UTF-8
        assert s.getreply() == (501, b"5.1.7 Bad sender address syntax: the address is not UTF-8")
        assert s.noop()[0] == 250


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed (apt-get install swaks)")
def test_swaks_sees_the_extensions_and_the_refusal(server):
    """swaks has no SMTPUTF8 option: a real client without the parameter, sending a UTF-8 recipient."""
    done = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.ports['smtp']}", "--helo", "client.remote.test",
         "--from", "sender@remote.test", "--to", USER, "--timeout", "20"],
        capture_output=True, timeout=60,
    )
    out = done.stdout.decode("utf-8", "replace")
    assert "<-  250-SMTPUTF8" in out and "<-  250-LIMITS RCPTMAX=" in out, out
    assert "<** 553 5.6.7 Non-ASCII address without SMTPUTF8 in MAIL FROM" in out, out
    assert done.returncode != 0

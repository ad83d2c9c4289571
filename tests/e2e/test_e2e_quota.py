"""End to end: a mailbox fills up over SMTP until 452 4.2.2, and IMAP QUOTA shows it (real twistd).

``[quota] storage_kib = 8`` for every user; bob's own line in the user file
(``mailsrv user quota bob@example.test 0``) lifts his limit.
"""

from __future__ import annotations

import imaplib
import poplib
import smtplib

import pytest

from twistd_server import Server, mailsrv_cli

PASSWORD = "correct horse battery staple"
ALICE, BOB = "alice@example.test", "bob@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")), extra_config="[quota]\nstorage_kib = 8\n")
    for user in (ALICE, BOB):
        srv.add_user(user, PASSWORD)
    done = mailsrv_cli(srv.config, "user", "quota", BOB, "0")
    assert done.returncode == 0, done.stderr
    srv.start()
    yield srv
    srv.stop()


def message(number: int) -> bytes:
    return (f"From: <sender@remote.test>\r\nSubject: fill {number}\r\n\r\n".encode()
            + (b"x" * 78 + b"\r\n") * 20)  # about 1.6 KiB


def smtp(server: Server) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30)
    s.starttls(context=server.tls())
    s.ehlo("client.remote.test")
    return s


def imap(server: Server, user: str) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    conn.login(user, PASSWORD)
    return conn


def test_mailbox_fills_until_452_and_quota_shows_it(server):
    refused = None
    with smtp(server) as s:
        for number in range(20):
            try:
                s.sendmail("sender@remote.test", [ALICE], message(number))
            except smtplib.SMTPRecipientsRefused as e:
                refused = e.recipients[ALICE]
                break
        assert refused is not None and refused[0] == 452 and refused[1].startswith(b"4.2.2 "), refused
        # The others of a transaction still get the mail.
        assert s.sendmail("sender@remote.test", [ALICE, BOB], message(99)) == {ALICE: refused}
    stored = number
    assert 3 <= stored <= 5

    conn = imap(server, ALICE)
    try:
        typ, data = conn.getquotaroot("INBOX")
        assert typ == "OK"
        assert data[0] == [b'"INBOX" "User quota"']
        used = int(data[1][0].split(b"STORAGE ")[1].split()[0])
        assert data[1] == [b'"User quota" (STORAGE %d 8)' % used] and 4 <= used <= 8
        typ, data = conn.append("INBOX", None, None, message(100))
        assert typ == "NO" and data[0].startswith(b"[OVERQUOTA]")
        # Making room: the next message is taken again.
        conn.select("INBOX")
        conn.store("1:2", "+FLAGS.SILENT", "(\\Deleted)")
        conn.expunge()
    finally:
        conn.logout()
    with smtp(server) as s:
        assert s.sendmail("sender@remote.test", [ALICE], message(101)) == {}

    bob = imap(server, BOB)
    try:
        typ, data = bob.getquotaroot("INBOX")
        assert (typ, data[0]) == ("OK", [b'"INBOX"'])  # no limit, no quota root
    finally:
        bob.logout()


def test_pop3_reads_a_full_mailbox(server):
    conn = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=server.tls(), timeout=30)
    try:
        conn.user(ALICE)
        conn.pass_(PASSWORD)
        count, _ = conn.stat()
        assert count >= 1
        assert conn.retr(1)[0].startswith(b"+OK")
    finally:
        conn.quit()

"""End to end: a user of one real mailsrv writes to a user of another, through MX, STARTTLS and DKIM.

Two twistd processes on loopback: *sender* (example.test) and *receiver*
(remote.test, the MX of that domain in a DNS served by the test).  alice
submits to bob@remote.test and to an address the receiver refuses; bob
gets the message signed and without the sender's Return-Path, alice gets
one RFC 3464 bounce, and the sender's queue ends empty.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib
import time

import pytest

from dns_harness import ThreadedDNS, Zone
from support import dkim_verifies
from twistd_server import Server, mailsrv_cli

PASSWORD = "correct horse battery staple"


def keygen(server: Server, domain: str) -> str:
    made = mailsrv_cli(server.config, "dkim", "keygen", domain, "--selector", "e2e")
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


def remote_zone() -> Zone:
    """remote.test with its MX on loopback."""
    zone = Zone()
    zone.add("remote.test", "MX", "10 mx.remote.test.")
    zone.add("mx.remote.test", "A", "127.0.0.1")
    return zone


def sending_config(dns: ThreadedDNS, receiver: Server) -> str:
    """The config of a server that asks *dns* and sends to *receiver*'s port 25, retrying after a second."""
    return (f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
            f'[delivery]\nmx_port = {receiver.ports["smtp"]}\nretry = ["1s"]\n')


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with ThreadedDNS(remote_zone()) as dns:
        receiver = Server(str(tmp_path_factory.mktemp("receiver")), domains=("remote.test",))
        receiver.add_user("bob@remote.test", PASSWORD)
        receiver.write_config()
        sender = Server(str(tmp_path_factory.mktemp("sender")), extra_config=sending_config(dns, receiver))
        sender.add_user("alice@example.test", PASSWORD)
        sender.record = keygen(sender, "example.test")
        receiver.start()
        sender.start()
        yield sender, receiver
        sender.stop()
        receiver.stop()


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


def test_mail_to_another_server_arrives_signed_and_a_refusal_comes_back_as_one_bounce(servers):
    sender, receiver = servers
    message = (b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hello over there\r\n\r\n"
               b".a line that starts with a dot\r\nbye\r\n")
    with smtplib.SMTP("127.0.0.1", sender.ports["submission"], timeout=30) as s:
        s.starttls(context=sender.tls())
        s.login("alice@example.test", PASSWORD)
        assert s.sendmail("alice@example.test", ["bob@remote.test", "nobody@remote.test"], message) == {}

    [arrived] = files_in(os.path.join(receiver.data_dir, "mail", "remote.test", "bob"))
    header = arrived.split(b"\r\n\r\n", 1)[0]
    assert header.count(b"Return-Path:") == 1  # the receiver's own, on top (RFC 5321 4.4)
    assert arrived.startswith(b"Return-Path: <alice@example.test>\r\n")
    assert b"with ESMTPS" in header  # the hop between the two went over STARTTLS
    assert dkim_verifies(arrived, sender.record)
    assert arrived.endswith(b"\r\n\r\n.a line that starts with a dot\r\nbye\r\n")

    [bounce] = files_in(os.path.join(sender.data_dir, "mail", "example.test", "alice"))
    report = email.message_from_bytes(bounce, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    assert report["Return-Path"] == "<>"
    status = [part for part in report.walk() if part.get_content_type() == "message/delivery-status"]
    assert len(status) == 1
    text = status[0].as_string()
    assert "nobody@remote.test" in text and "Status: 5." in text and "bob@remote.test" not in text

    deadline = time.monotonic() + 30
    while True:
        listed = mailsrv_cli(sender.config, "queue", "list")
        if "0 messages in the queue" in listed.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert "0 messages in the queue" in listed.stdout, listed.stdout
    log = sender.log()
    assert "bob@remote.test" in log and "nobody@remote.test" in log

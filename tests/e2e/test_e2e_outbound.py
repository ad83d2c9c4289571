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

from dns_harness import ThreadedDNS
from outbound import PASSWORD, files_in, remote_and_sender, remote_zone
from support import dkim_verifies
from twistd_server import Server, mailsrv_cli


def keygen(server: Server, domain: str) -> str:
    made = mailsrv_cli(server.config, "dkim", "keygen", domain, "--selector", "e2e")
    assert made.returncode == 0, made.stderr
    return made.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with ThreadedDNS(remote_zone()) as dns:
        receiver, sender = remote_and_sender(tmp_path_factory, dns, ["bob@remote.test"], "sender")
        sender.record = keygen(sender, "example.test")
        receiver.start()
        sender.start()
        yield sender, receiver
        sender.stop()
        receiver.stop()


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
    top_received = email.message_from_bytes(arrived, policy=email.policy.compat32).get_all("Received")[0]
    assert " with ESMTPS " in " ".join(top_received.split())  # the receiver's hop: STARTTLS (not the ESMTPSA below)
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

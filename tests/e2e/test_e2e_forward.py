"""End to end: an alias of one real mailsrv forwards to another server, with an SRS sender.

Two twistd processes on loopback: *forwarder* (example.test, where
``info@`` forwards to alice here and to bob and nobody at remote.test) and
*receiver* (remote.test, the MX of that domain in a DNS served by the
test, where carol writes from and bob reads).  carol's message to info@
is stored for alice and arrives at bob unchanged but for the trace, with
an ``SRS0=...@example.test`` Return-Path; the receiver's refusal of nobody
comes back to carol as a bounce through the SRS address, DKIM-signed by
the forwarder's key for example.test (its hostname's parent), and so does a
bounce that a client sends to that address later on port 25.
"""

from __future__ import annotations

import email
import email.policy
import os
import smtplib

import pytest

from dns_harness import ThreadedDNS
from outbound import files_in, remote_and_sender, remote_zone
from support import dkim_verifies
from twistd_server import mailsrv_cli

MESSAGE = (b"From: Carol <carol@remote.test>\r\nTo: info@example.test\r\nSubject: please forward\r\n\r\n"
           b".a line that starts with a dot\r\nbye\r\n")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    with ThreadedDNS(remote_zone()) as dns:
        receiver, forwarder = remote_and_sender(
            tmp_path_factory, dns, ["bob@remote.test", "carol@remote.test"], "forwarder"
        )
        added = mailsrv_cli(forwarder.config, "alias", "add", "info@example.test", "alice@example.test",
                            "bob@remote.test", "nobody@remote.test")
        assert added.returncode == 0, added.stderr
        made = mailsrv_cli(forwarder.config, "dkim", "keygen", "example.test", "--selector", "s1")
        assert made.returncode == 0, made.stderr
        forwarder.record = made.stdout.strip()
        name, _, value = forwarder.record.partition(". IN TXT ")
        dns.zone.add(name, "TXT", value)
        receiver.start()
        forwarder.start()
        yield forwarder, receiver
        forwarder.stop()
        receiver.stop()


def forged_hash(srs_address: str) -> str:
    """*srs_address* with another hash."""
    tag, hash_, rest = srs_address.split("=", 2)
    return f"{tag}={'AAAA' if hash_ != 'AAAA' else 'BBBB'}={rest}"


def body_of(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[1]


def test_alias_forwards_with_an_srs_sender_and_bounces_come_back_to_the_original_sender(servers):
    forwarder, receiver = servers
    with smtplib.SMTP("127.0.0.1", forwarder.ports["smtp"], timeout=30) as s:
        assert s.sendmail("carol@remote.test", ["info@example.test"], MESSAGE) == {}
        # A plain remote recipient on port 25 stays relaying.
        s.mail("carol@remote.test")
        assert s.rcpt("bob@remote.test")[0] == 554
        s.rset()

    [local] = files_in(os.path.join(forwarder.data_dir, "mail", "example.test", "alice"))
    assert local.startswith(b"Return-Path: <carol@remote.test>\r\n")

    [arrived] = files_in(os.path.join(receiver.data_dir, "mail", "remote.test", "bob"))
    return_path = arrived.split(b"\r\n", 1)[0].decode()
    assert return_path.startswith("Return-Path: <SRS0=") and return_path.endswith("=remote.test=carol@example.test>")
    assert arrived.split(b"\r\n\r\n", 1)[0].count(b"Return-Path:") == 1
    assert b"\r\nFrom: Carol <carol@remote.test>\r\n" in arrived
    assert body_of(arrived) == body_of(local) == b".a line that starts with a dot\r\nbye\r\n"

    # The receiver refused nobody@: the forwarder's bounce goes to the SRS sender, and on to carol.
    [refusal] = files_in(os.path.join(receiver.data_dir, "mail", "remote.test", "carol"))
    report = email.message_from_bytes(refusal, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report" and report["Return-Path"] == "<>"
    assert "nobody@remote.test" in report.as_string()
    assert dkim_verifies(refusal, forwarder.record)  # the bounce we made, signed as example.test

    # A bounce sent later to the SRS address (the receiver's own DSN, say) reaches carol too.
    srs_address = return_path[len("Return-Path: <"):-1]
    with smtplib.SMTP("127.0.0.1", forwarder.ports["smtp"], timeout=30) as s:
        assert s.sendmail("<>", [srs_address], b"Subject: late bounce\r\n\r\nundeliverable\r\n") == {}
        s.mail("<>")
        assert s.rcpt(forged_hash(srs_address))[0] == 550
    carols = files_in(os.path.join(receiver.data_dir, "mail", "remote.test", "carol"), count=2)
    assert len(carols) == 2
    [late] = [m for m in carols if b"Subject: late bounce" in m]
    assert late.startswith(b"Return-Path: <>\r\n") and late.endswith(b"\r\n\r\nundeliverable\r\n")

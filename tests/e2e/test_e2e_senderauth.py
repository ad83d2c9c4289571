"""The real twistd authenticates port 25 senders: SPF, DKIM and DMARC from a test DNS, over smtplib.

The server trusts no network (``[policy] trusted_networks = []``), so mail
from 127.0.0.1 is checked as mail from the internet; the name server on
loopback publishes example.net's SPF record (127.0.0.1 may send for it),
DKIM key and ``p=reject`` DMARC policy, and quarantine.example's
``p=quarantine``.
"""

from __future__ import annotations

import os
import smtplib

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import files_in
from senderauth_harness import key, message, publish_key, sign
from twistd_server import HOSTNAME, Server

ALICE = "alice@example.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    zone = Zone()
    zone.add("example.net", "TXT", '"v=spf1 ip4:127.0.0.1 -all"')
    zone.add("_dmarc.example.net", "TXT", '"v=DMARC1; p=reject"')
    zone.add("_dmarc.quarantine.example", "TXT", '"v=DMARC1; p=quarantine"')
    publish_key(zone, "example.net", "s1", key("example.net"))
    with ThreadedDNS(zone) as dns:
        srv = Server(str(tmp_path_factory.mktemp("senderauth")), extra_config=(
            f'[policy]\ntrusted_networks = []\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
        ))
        srv.add_user(ALICE, "secret")
        srv.start()
        yield srv
        srv.stop()


def maildir(srv: Server, folder: str = "") -> str:
    return os.path.join(srv.data_dir, "mail", "example.test", "alice", f".{folder}" if folder else "")


def send(srv: Server, data: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", srv.ports["smtp"], timeout=30) as s:
        s.sendmail(sender, [ALICE], data)


def test_signed_mail_gets_our_results_below_return_path_and_a_forged_one_is_removed(server):
    forged = f"Authentication-Results: {HOSTNAME}; dkim=pass header.d=example.net\r\n".encode()
    send(server, sign(message(subject="signed", extra=forged)), "bob@example.net")
    [stored] = [m for m in files_in(maildir(server)) if b"Subject: signed" in m]
    header = stored.split(b"\r\n\r\n", 1)[0]
    return_path, _, header = header.partition(b"\r\n")  # final delivery puts Return-Path first (RFC 5321 4.4)
    assert return_path == b"Return-Path: <bob@example.net>"
    assert header.startswith(f"Authentication-Results: {HOSTNAME};\r\n\tspf=pass smtp.mailfrom=bob@example.net;".encode())
    assert header.count(b"Authentication-Results:") == 1
    assert b"\tdkim=pass header.d=example.net header.s=s1 " in header
    assert b"\tdmarc=pass header.from=example.net;\r\n\tarc=none\r\n" in header


def test_forged_author_of_a_reject_domain_gets_550_5_7_1(server):
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(server, message(subject="forged"), "forger@elsewhere.example")
    assert refused.value.smtp_code == 550
    assert refused.value.smtp_error.startswith(b"5.7.1 ")
    assert not [m for m in files_in(maildir(server), timeout=0) if b"Subject: forged" in m]


def test_quarantine_goes_to_junk(server):
    junk = maildir(server, "Junk")
    assert not os.path.isdir(junk)  # alice never logged in over IMAP: the delivery makes it
    send(server, message("eve@quarantine.example", subject="quarantined"), "eve@quarantine.example")
    [stored] = files_in(junk)
    assert b"Subject: quarantined" in stored
    assert b"dmarc=fail (p=quarantine dis=quarantine) header.from=quarantine.example" in stored

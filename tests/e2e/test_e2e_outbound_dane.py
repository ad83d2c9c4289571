"""End to end: DANE (RFC 7672) from the real twistd, with TLSA records in a signed test DNS.

The receiver is a second mailsrv with its generated self-signed
certificate, which only DANE-EE(3) can vouch for; its ``3 1 1`` record is
computed from the certificate file once it started.  DANE is on by default,
so the sender's configuration only names the DNS and the receiver's port.
Every MX host is 127.0.0.1: what differs between the recipient domains is
what the DNS says about their hosts.

* remote.test: the right record, validated;
* fallback.test: a wrong record on the preferred MX, the right one on the next;
* wrong.test: only a wrong record (the mail waits);
* insecure.test: a wrong record that is not validated (no AD: ignored).

A host that offers no STARTTLS while its validated TLSA records demand it
is tried against ``responder.Responder`` (no STARTTLS by default).
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import os
import re

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from dns_harness import ThreadedDNS, Zone
from outbound import files_in, numbered, queue_list, remote_and_sender, sending_server, submit, wait_for
from responder import Responder
from twistd_server import Server

DOMAINS = ("remote.test", "fallback.test", "wrong.test", "insecure.test")
WRONG = "00" * 32


def spki_sha256(pem_path: str) -> str:
    """The data of a ``3 1 1`` record for the certificate in *pem_path*."""
    with open(pem_path, "rb") as f:
        key = x509.load_pem_x509_certificate(f.read()).public_key()
    return hashlib.sha256(key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def signed_host(zone: Zone, domain: str, port: int, *hosts: tuple[str, str, bool]) -> None:
    """*domain*'s MX *hosts* ``(name, TLSA digest, TLSA validated)`` in preference order, all on 127.0.0.1."""
    zone.add(domain, "MX", *(f"{10 * (i + 1)} {name}." for i, (name, _, _) in enumerate(hosts)))
    zone.sign(domain)
    for name, digest, validated in hosts:
        zone.add(name, "A", "127.0.0.1")
        zone.add(f"_{port}._tcp.{name}", "TLSA", f"3 1 1 {digest}")
        zone.sign(name, *([f"_{port}._tcp.{name}"] if validated else []))


def send_line(server: Server, recipient: str) -> str:
    """The audit line of the delivery to *recipient* (waiting for it)."""
    pattern = re.compile(rf"^.*send delivered: .*recipients={re.escape(recipient)} .*$", re.MULTILINE)
    assert wait_for(lambda: pattern.search(server.log()) is not None, 30), server.log()[-3000:]
    return pattern.search(server.log()).group(0)


def mail(sender: Server, *recipients: str) -> None:
    submit(sender, "alice@example.test",
           [(r, numbered("alice@example.test", r, seq)) for seq, r in enumerate(recipients, 1)])


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    zone = Zone()
    with ThreadedDNS(zone) as dns:
        receiver, sender = remote_and_sender(
            tmp_path_factory, dns, [f"bob@{d}" for d in DOMAINS], "dane-sender", domains=DOMAINS,
        )
        receiver.start()
        try:
            port, right = receiver.ports["smtp"], spki_sha256(receiver.cafile)
            signed_host(zone, "remote.test", port, ("mx.remote.test", right, True))
            signed_host(zone, "fallback.test", port, ("bad.fallback.test", WRONG, True),
                        ("good.fallback.test", right, True))
            signed_host(zone, "wrong.test", port, ("mx.wrong.test", WRONG, True))
            signed_host(zone, "insecure.test", port, ("mx.insecure.test", WRONG, False))
            sender.start()
            mail(sender, *(f"bob@{d}" for d in DOMAINS))
            yield sender, receiver
        finally:
            sender.stop()
            receiver.stop()


def maildir(receiver: Server, domain: str) -> str:
    return os.path.join(receiver.data_dir, "mail", domain, "bob")


def test_a_dane_ee_record_for_a_self_signed_certificate_delivers_over_tls(servers):
    sender, receiver = servers
    [arrived] = files_in(maildir(receiver, "remote.test"))
    top_received = email.message_from_bytes(arrived, policy=email.policy.compat32).get_all("Received")[0]
    assert " with ESMTPS " in " ".join(top_received.split())  # the receiver's own: over STARTTLS
    line = send_line(sender, "bob@remote.test")
    assert "host=mx.remote.test" in line and " DANE-EE 3 1 1" in line, line


def test_a_wrong_digest_skips_the_host_and_the_next_mx_that_matches_delivers(servers):
    sender, receiver = servers
    assert len(files_in(maildir(receiver, "fallback.test"))) == 1
    assert "host=good.fallback.test" in send_line(sender, "bob@fallback.test")
    assert re.search(r"bad\.fallback\.test \[127\.0\.0\.1\]:\d+: TLS handshake failed: DANE: .*; next host",
                     sender.log())


def test_a_wrong_digest_defers_and_nothing_goes_in_plaintext(servers):
    sender, receiver = servers
    assert wait_for(lambda: "matches none of the TLSA records" in queue_list(sender), 30), queue_list(sender)
    listed = queue_list(sender)
    assert "bob@wrong.test  deferred" in listed, listed
    assert files_in(maildir(receiver, "wrong.test"), timeout=0) == []


def test_a_tlsa_record_that_is_not_validated_is_ignored(servers):
    sender, receiver = servers
    assert len(files_in(maildir(receiver, "insecure.test"))) == 1
    line = send_line(sender, "bob@insecure.test")
    assert "TLSv1" in line and "DANE" not in line, line


@pytest.fixture
def sender_and_plain_mx(tmp_path):
    zone = Zone()
    with ThreadedDNS(zone) as dns, Responder() as mx:
        # Any digest: the host offers no STARTTLS, so no certificate is ever seen.
        signed_host(zone, "remote.test", mx.port, ("mx.remote.test", WRONG, True))
        with sending_server(str(tmp_path), dns, mx.port) as sender:
            yield sender, mx


def test_validated_tlsa_records_for_a_host_without_starttls_defer(sender_and_plain_mx):
    sender, mx = sender_and_plain_mx
    mail(sender, "bob@remote.test")
    assert wait_for(lambda: "STARTTLS is required by DANE" in queue_list(sender), 30), queue_list(sender)
    assert "bob@remote.test  deferred" in queue_list(sender)
    assert any(c.upper().startswith("EHLO") for c in mx.commands)
    assert not any(c.upper().startswith(("MAIL", "STARTTLS")) for c in mx.commands), mx.commands
    assert mx.messages == []

"""End to end: the real twistd ARC-seals what an alias forwards, and passes the DSN requests on (RFC 3461 5.2.7).

The forwarder trusts no network (``[policy] trusted_networks = []``), so
bob@example.net's message from 127.0.0.1 is checked as mail from the
internet; ``fwd@example.test`` forwards to one address, ``list@`` to alice
here and two addresses at remote.test, whose MX is a threaded
:class:`responder.Responder` that offers DSN.  The test's name server
publishes example.net's SPF record and DKIM key and the key ``mailsrv dkim
keygen`` made for example.test, which is what dkimpy's ``arc_verify`` of
the arrived copy asks for.
"""

from __future__ import annotations

import email
import email.policy
import smtplib

import dkim
import pytest

from dns_harness import ThreadedDNS, Zone
from mailsrv import config as configuration
from mailsrv.dns import make_resolver
from mailsrv.policy.senderauth.lookups import KeyLookup
from outbound import wait_for
from responder import Responder
from senderauth_harness import key, message, publish_key, sign
from twistd_server import HOSTNAME, Server, mailsrv_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    zone = Zone()
    zone.add("example.net", "TXT", '"v=spf1 ip4:127.0.0.1 -all"')
    publish_key(zone, "example.net", "s1", key("example.net"))
    for domain in ("remote.test", "example.net"):
        zone.add(domain, "MX", "10 mx.remote.test.")
    zone.add("mx.remote.test", "A", "127.0.0.1")
    with ThreadedDNS(zone) as dns, Responder(extensions=("8BITMIME", "DSN", "PIPELINING")) as mx:
        forwarder = Server(str(tmp_path_factory.mktemp("forwarder")), extra_config=(
            f'[policy]\ntrusted_networks = []\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
            f'[delivery]\nmx_port = {mx.port}\nretry = ["1s"]\n'))
        forwarder.add_user("alice@example.test", "secret")
        for alias, *targets in (("fwd@example.test", "someone@remote.test"),
                                ("list@example.test", "alice@example.test", "carol@remote.test", "dave@remote.test")):
            added = mailsrv_cli(forwarder.config, "alias", "add", alias, *targets)
            assert added.returncode == 0, added.stderr
        made = mailsrv_cli(forwarder.config, "dkim", "keygen", "example.test", "--selector", "s1")
        assert made.returncode == 0, made.stderr
        name, _, value = made.stdout.strip().splitlines()[-1].partition(". IN TXT ")
        zone.add(name, "TXT", value)
        forwarder.start()
        resolver = make_resolver(configuration.DNSConfig(nameservers=(f"127.0.0.1:{dns.port}",), timeout=2))
        try:
            yield forwarder, mx, resolver
        finally:
            forwarder.stop()


def send(forwarder: Server, data: bytes, recipient: str, rcpt_options: list[str]) -> None:
    with smtplib.SMTP("127.0.0.1", forwarder.ports["smtp"], timeout=30) as s:
        assert s.sendmail("bob@example.net", [recipient], data, rcpt_options=rcpt_options) == {}


def arrived(mx: Responder, subject: str, count: int = 1) -> list:
    """The messages with *subject* the MX took, once there are *count*."""
    def found():
        with mx.lock:
            return [m for m in mx.messages if f"Subject: {subject}\r\n".encode() in m.data]
    assert wait_for(lambda: len(found()) >= count, 30), mx.commands
    return found()


def test_a_forwarded_message_arrives_arc_sealed_with_the_request_passed_on(world):
    forwarder, mx, resolver = world
    send(forwarder, sign(message(subject="sealed")), "fwd@example.test", ["NOTIFY=SUCCESS,FAILURE"])
    [copy] = arrived(mx, "sealed")
    assert copy.mail_from.startswith("FROM:<SRS0=") and copy.mail_from.endswith("=example.net=bob@example.test>")
    # RFC 3461 5.2.7.2: one target relays NOTIFY, and ORCPT names the alias the sender wrote to.
    assert copy.rcpt_to == ["TO:<someone@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;fwd@example.test"]
    assert copy.data.startswith(b"ARC-Seal: i=1; cv=none; a=rsa-sha256; d=example.test; s=s1;")
    status, [arc_set], _ = dkim.arc_verify(copy.data, dnsfunc=KeyLookup(resolver))
    assert (status, arc_set["instance"]) == (dkim.CV_Pass, 1)
    assert arc_set["aar-value"].startswith(f"i=1; {HOSTNAME}; spf=pass smtp.mailfrom=bob@example.net;".encode())
    assert dkim.verify(copy.data, dnsfunc=KeyLookup(resolver))  # the author's signature survived


def test_an_expanding_alias_reports_expanded_and_its_copies_ask_no_success(world):
    forwarder, mx, _ = world
    send(forwarder, sign(message(subject="expanded")), "list@example.test", ["NOTIFY=SUCCESS,FAILURE"])
    both = arrived(mx, "expanded", count=2)  # the copy, and the report that quotes its header
    [copy] = [m for m in both if m.mail_from != "FROM:<>"]
    assert sorted(copy.rcpt_to) == [f"TO:<{user}@remote.test> NOTIFY=FAILURE ORCPT=rfc822;list@example.test"
                                    for user in ("carol", "dave")]
    [data] = [m.data for m in both if m.mail_from == "FROM:<>"]
    report = email.message_from_bytes(data, policy=email.policy.default)
    assert report.get_content_type() == "multipart/report"
    [status] = [part for part in report.walk() if part.get_content_type() == "message/delivery-status"]
    _, fields = status.get_payload()
    assert (fields["Action"], fields["Status"], fields["Final-Recipient"]) == (
        "expanded", "2.0.0", "rfc822; list@example.test")

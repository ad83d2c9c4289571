"""``mailsrv selftest``'s judgements that need no server: byte-exact, special-use names, where a listener is."""

from __future__ import annotations

import pytest

from mailsrv.listeners import Kind
from mailsrv.config import Config
from mailsrv.ops import dnscheck, probe, selftest

SENT = b"From: a@example.test\r\nSubject: hi\r\n\r\n.dot\r\nbody\r\n"


def test_the_message_as_sent_below_whole_header_fields_is_byte_exact():
    received = b"Return-Path: <a@example.test>\r\nReceived: from x\r\n\tby y; now\r\n" + SENT
    assert selftest.added_fields(received, SENT) == ["Return-Path", "Received"]
    assert selftest.added_fields(SENT, SENT) == []


@pytest.mark.parametrize("received, why", [
    (b"Return-Path: <a@example.test>\r\n" + SENT.replace(b"\r\n.dot", b"\r\ndot"),
     "line 4 sent as '.dot', read back as 'dot'"),
    (b"Return-Path: <a@example.test>\r\n" + SENT.replace(b"hi", b"Hi"), "line 2 sent as 'Subject: hi'"),
    (b"Return-Path: <a@example.test>\r\n" + SENT[:-2], "not the message sent"),
    (b"Received: x\r\ngarbage line\r\n" + SENT, "not a header field above the message sent: 'garbage line'"),
    (b"X-Junk: 1\r\nFrom: a@example.test\r\nX-Inserted: 1\r\nSubject: hi\r\n\r\n.dot\r\nbody\r\n",
     "line 2 sent as 'Subject: hi', read back as 'X-Inserted: 1'"),
    (b">" + SENT, "its first line begins with '>' before what was sent"),
])
def test_anything_else_is_not(received, why):
    with pytest.raises(selftest.StepFailed) as caught:
        selftest.added_fields(received, SENT)
    assert why in str(caught.value)


@pytest.mark.parametrize("name, special", [
    ("mail.example.test", True), ("localhost", True), ("mx.example", True), ("box.home.arpa", True),
    ("mail", True), ("MAIL.Example.Test.", True), ("mail.lan.internal", True), ("printer.local", True),
    ("mail.example.de", False), ("mx.testing.net", False), ("test.example.io", False), ("mail.example.org", False),
])
def test_special_use_names_have_no_public_dns(name, special):
    assert selftest.special_use(name) is special


@pytest.mark.parametrize("endpoint, host, port", [
    ("tcp:993:interface=192.0.2.7", "192.0.2.7", 993),
    ("tcp:993", "127.0.0.1", 993),
    ("tcp:port=465:interface=0.0.0.0", "127.0.0.1", 465),
    (r"tcp6:993:interface=\:\:", "::1", 993),
    (r"tcp:143:interface=\:\:1:backlog=50", "::1", 143),
    ("tcp6:143", "::1", 143),
])
def test_a_listener_is_dialled_where_it_binds(endpoint, host, port):
    assert probe.target(Kind.IMAPS, endpoint) == probe.Target(Kind.IMAPS, host, port)


@pytest.mark.parametrize("endpoint, why", [
    ("haproxy:tcp:25", "PROXY-protocol"), ("unix:/run/mailsrv.sock", "not a tcp: endpoint"),
])
def test_a_listener_it_cannot_dial_is_named(endpoint, why):
    with pytest.raises(probe.Unreachable, match=why):
        probe.target(Kind.SMTP, endpoint)


def test_a_target_shows_an_ipv6_address_in_brackets():
    assert str(probe.Target(Kind.IMAP, "::1", 143)) == "imap [::1]:143"


def dns_steps(monkeypatch, hostname: str, domains: tuple[str, ...], findings) -> list[selftest.Step]:
    """The DNS steps for a configuration, with ``dnscheck.check`` answering *findings(domain)*."""
    monkeypatch.setattr(dnscheck, "check", lambda config, domain: findings(domain))
    steps: list[selftest.Step] = []
    selftest.SelfTest(Config(hostname=hostname, domains=domains), steps.append, 1.0).dns()
    return steps


def test_the_dns_step_counts_the_checks_of_each_public_domain(monkeypatch):
    ok = dnscheck.Finding("MX example.de.", dnscheck.Status.OK)

    def findings(domain):
        if domain == "example.de":
            return [ok, ok]
        return [ok, dnscheck.Finding("MX other.de.", dnscheck.Status.MISSING),
                dnscheck.Finding("PTR 192.0.2.1", dnscheck.Status.WRONG)]

    steps = dns_steps(monkeypatch, "mail.example.de", ("example.de", "other.de", "lab.test"), findings)
    assert [(s.name, s.result, s.detail) for s in steps] == [
        ("dns example.de", "pass", "2 checks ok"),
        ("dns other.de", "fail",
         "2 of 3 checks not ok: MX other.de. missing; PTR 192.0.2.1 wrong (see mailsrv dns check other.de)"),
        ("dns lab.test", "skip", "a special-use name, not in public DNS"),
    ]


def test_a_special_use_hostname_skips_the_dns_check(monkeypatch):
    steps = dns_steps(monkeypatch, "mail.example.test", ("example.de",), lambda domain: pytest.fail("looked up"))
    assert [(s.name, s.result) for s in steps] == [("dns", "skip")]

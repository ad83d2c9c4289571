"""DNS list entries (postscreen's ``ZONE[=FILTER][*WEIGHT]``), the names asked (RFC 5782), the check's timeout."""

from __future__ import annotations

import pytest
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address

from mailsrv import config as configuration
from mailsrv.address import Mailbox
from mailsrv.dnslist import parse_entry, query_name
from mailsrv.listeners import Kind
from mailsrv.net.audit import Audit
from mailsrv.net.session import Session
from mailsrv.policy import ACCEPT, CheckContext
from mailsrv.policy.dnsbl import Blocklists
from mailsrv.workers import InlineExecutor


def load(tmp_path, text: str) -> configuration.Config:
    path = tmp_path / "mailsrv.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n' + text)
    return configuration.load(str(path))


def test_a_bare_zone_counts_any_answer_in_127_with_the_default_weight():
    entry = parse_entry("Zen.Spamhaus.org", 1)
    assert (entry.zone, entry.weight, entry.octets) == ("zen.spamhaus.org", 1, None)
    assert entry.matches("127.0.0.2") and entry.matches("127.255.255.254")
    assert not entry.matches("192.0.2.1") and not entry.matches("::1")


def test_a_filter_of_ranges_and_sets_and_a_weight():
    entry = parse_entry("zen.spamhaus.org=127.0.[0;5..6].[2..11]*3", 1)
    assert entry.weight == 3
    assert [entry.matches(a) for a in ("127.0.0.2", "127.0.6.11", "127.0.0.12", "127.0.1.4", "127.0.5.1")] == [
        True, True, False, False, False]


def test_a_negative_weight():
    assert parse_entry("list.dnswl.org=127.0.[0..255].[1..3]*-2", -1).weight == -2
    assert parse_entry("list.dnswl.org", -1).weight == -1


@pytest.mark.parametrize("entry", ["", "zen", "zen.example=127.0.0", "zen.example=127.0.0.256",
                                   "zen.example=127.0.0.[9..2]", "zen.example*x", "zen.example=127.0.0.2*",
                                   "a b.example", "zen.example=127.0.0.[2..]"])
def test_bad_entries(entry):
    with pytest.raises(ValueError):
        parse_entry(entry, 1)


def test_query_names_reverse_octets_and_nibbles():
    assert query_name("192.0.2.7", "bl.example") == "7.2.0.192.bl.example."
    # RFC 5782 2.4's example
    assert query_name("4321:0:1:2:3:4:567:89ab", "bl.example") == (
        "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.bl.example.")
    assert query_name("::ffff:192.0.2.7", "bl.example") == "7.2.0.192.bl.example."
    assert query_name("not-an-address", "bl.example") is None


def test_config_reads_the_lists(tmp_path):
    policy = load(tmp_path, '[policy]\ndnsbl = ["zen.example*2"]\ndnswl = ["wl.example"]\n'
                            'dnsbl_threshold = 2\ndnsbl_at = "connect"\n').policy
    assert [(entry.zone, entry.weight) for entry in policy.dns_lists()] == [("zen.example", 2), ("wl.example", -1)]
    assert (policy.dnsbl_threshold, policy.dnsbl_at) == (2, "connect")


@pytest.mark.parametrize("text, key, words", [
    ('dnsbl = ["zen.example=127.0.0"]', "policy.dnsbl", "address pattern"),
    ('dnsbl = ["zen.example*-1"]', "policy.dnsbl", "must be positive"),
    ('dnswl = ["wl.example*2"]', "policy.dnswl", "must be negative"),
    ('dnsbl_at = "helo"', "policy.dnsbl_at", "rcpt"),
    ("dnsbl_threshold = 0", "policy.dnsbl_threshold", "at least 1"),
])
def test_a_bad_key_names_the_file_and_the_key(tmp_path, text, key, words):
    with pytest.raises(configuration.ConfigError) as raised:
        load(tmp_path, f"[policy]\n{text}\n")
    message = str(raised.value)
    assert str(tmp_path / "mailsrv.toml") in message and key in message and words in message


class _Stuck:
    """A ``dns`` pool whose jobs never finish (full, or the resolver hung)."""

    pending = 0

    def run(self, fn, *args, **kwargs):
        return defer.Deferred()


def test_a_list_that_does_not_answer_in_time_is_ignored():
    clock = task.Clock()
    policy = configuration.PolicyConfig(trusted_networks=(), dnsbl=("bl.example",), dnsbl_timeout=5)
    check = Blocklists(policy, Audit(), clock)
    transport = type("T", (), {"getPeer": lambda self: IPv4Address("TCP", "192.0.2.7", 1)})()
    ctx = CheckContext(session=Session(Kind.named("smtp"), transport), resolver=None, disk=InlineExecutor(),
                       dns=_Stuck())
    verdict = defer.Deferred.fromCoroutine(check.rcpt(ctx, Mailbox("alice", "example.test")))
    assert not verdict.called
    clock.advance(5)
    assert verdict.result is ACCEPT

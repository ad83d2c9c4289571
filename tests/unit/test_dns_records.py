"""``mailsrv dns records``: the records a local domain needs, valid zone-file syntax, each with its reason."""

from __future__ import annotations

import dataclasses

import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from mailsrv.config import Config, DeliveryConfig, ListenConfig
from mailsrv.config.mtastspolicy import MTASTSPolicyConfig
from mailsrv.dkim.keys import Algorithm
from mailsrv.mtasts_policy import policy_id, policy_text
from mailsrv.ops import OpsError, dnsrecords
from mailsrv.ops import dkim as dkim_ops

ADDRESSES = ["198.51.100.25", "2001:db8::25"]


@pytest.fixture
def config(tmp_path):
    (tmp_path / "data").mkdir()
    return Config(hostname="mail.example.test", data_dir=str(tmp_path / "data"), domains=("example.test",),
                  public_addresses=tuple(ADDRESSES))


def by_type(config: Config, rtype: str, domain: str = "example.test") -> list[dnsrecords.Record]:
    return [r for r in dnsrecords.records(config, domain) if r.rtype == rtype]


def test_every_record_is_valid_zone_file_syntax_with_a_reason(config):
    dkim_ops.make_key(config, "example.test", "s1")
    dkim_ops.make_key(config, "example.test", "s2", Algorithm.ED25519)
    for record in dnsrecords.records(config, "example.test"):
        assert record.name.endswith(".") and record.why
        dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(record.rtype), record.value)


def test_mx_addresses_and_spf(config):
    [mx] = by_type(config, "MX")
    assert (mx.name, mx.value) == ("example.test.", "10 mail.example.test.")
    assert [(r.name, r.value) for r in by_type(config, "A") + by_type(config, "AAAA")] == [
        ("mail.example.test.", "198.51.100.25"), ("mail.example.test.", "2001:db8::25")]
    [spf] = [r for r in by_type(config, "TXT") if "spf1" in r.value]
    assert (spf.name, spf.value) == ("example.test.", '"v=spf1 mx -all"')


def test_spf_includes_the_relays_domain(config):
    relayed = dataclasses.replace(config, delivery=DeliveryConfig(relay="smtp.mailgun.org:587"))
    [spf] = [r for r in by_type(relayed, "TXT") if "spf1" in r.value]
    assert spf.value == '"v=spf1 mx include:mailgun.org -all"'
    assert "smtp.mailgun.org" in spf.why


def test_each_dkim_key_of_the_domain_is_listed(config):
    key, _ = dkim_ops.make_key(config, "example.test", "s1")
    dkim = [r for r in by_type(config, "TXT") if r.name.endswith("._domainkey.example.test.")]
    assert [f"{r.name} IN TXT {r.value}" for r in dkim] == [key.record]


def test_dmarc_mta_sts_and_tls_rpt(config):
    txt = {r.name: r.value for r in by_type(config, "TXT")}
    assert txt["_dmarc.example.test."] == '"v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"'
    assert txt["_mta-sts.example.test."] == f'"v=STSv1; id={policy_id(config)}"'
    assert txt["_smtp._tls.example.test."] == '"v=TLSRPTv1; rua=mailto:tlsrpt@example.test"'
    cnames = {r.name: r.value for r in by_type(config, "CNAME")}
    assert cnames == {name: "mail.example.test." for name in (
        "mta-sts.example.test.", "autoconfig.example.test.", "autodiscover.example.test.")}


def test_the_policy_id_changes_with_the_policy_and_only_then(config):
    enforcing = dataclasses.replace(config, mta_sts_policy=MTASTSPolicyConfig(mode="enforce"))
    assert policy_text(config) == "version: STSv1\r\nmode: testing\r\nmx: mail.example.test\r\nmax_age: 604800\r\n"
    assert policy_id(enforcing) != policy_id(config) == policy_id(dataclasses.replace(config))
    assert policy_id(config).isalnum() and len(policy_id(config)) <= 32  # RFC 8461 3.1


def test_srv_records_name_the_configured_ports_and_mark_kinds_turned_off(config):
    listen = ListenConfig(submissions=("tcp:465",), submission=("haproxy:tcp:587",), imaps=("tcp:993",),
                          imap=(), pop3s=(), pop3=())
    srv = {r.name: r.value for r in by_type(dataclasses.replace(config, listen=listen), "SRV")}
    assert srv == {
        "_submissions._tcp.example.test.": "0 1 465 mail.example.test.",
        "_submission._tcp.example.test.": "10 1 587 mail.example.test.",
        "_imaps._tcp.example.test.": "0 1 993 mail.example.test.",
        "_imap._tcp.example.test.": "0 0 0 .",
        "_pop3s._tcp.example.test.": "0 0 0 .",
        "_pop3._tcp.example.test.": "0 0 0 .",
    }


def test_loopback_listeners_are_flagged(config):
    [imaps] = [r for r in by_type(config, "SRV") if r.name.startswith("_imaps.")]
    assert "loopback only" in imaps.why


def test_ptr_records_are_the_providers_to_set(config):
    ptrs = by_type(config, "PTR")
    assert [r.name for r in ptrs] == ["25.100.51.198.in-addr.arpa.", "5.2.0.0." + "0." * 20 + "8.b.d.0.1.0.0.2.ip6.arpa."]
    assert all(r.elsewhere and r.line().startswith("; ") for r in ptrs)


def test_a_domain_that_is_not_local_is_refused(config):
    with pytest.raises(OpsError, match="not a local domain|local"):
        dnsrecords.records(config, "example.org")


def test_the_cli_prints_a_zone_snippet_with_a_comment_above_each_record(run):
    code, out, err = run("dns", "records", "example.test", "--address", "198.51.100.25")
    assert code == 0, err
    lines = out.splitlines()
    assert "example.test. IN MX 10 localhost." in lines
    assert "localhost. IN A 198.51.100.25" in lines
    records = [i for i, line in enumerate(lines) if not line.startswith(";")]
    assert records and all(lines[i - 1].startswith("; ") for i in records)
    assert ";   mode: testing" in lines


def test_https_names_say_whether_our_https_listener_serves_them(config):
    names = ("autoconfig.example.test.", "autodiscover.example.test.", "mta-sts.example.test.")
    off = [r.why for r in by_type(config, "CNAME") if r.name in names]
    assert len(off) == 3 and all("turn on [listen] https" in why for why in off)
    served = dataclasses.replace(config, listen=dataclasses.replace(config.listen, https=("tcp:443",)))
    on = [r.why for r in by_type(served, "CNAME") if r.name in names]
    assert len(on) == 3 and all(why.endswith("served by the https listener") for why in on)

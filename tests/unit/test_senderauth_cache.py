"""What the sender checks keep between messages: SPF results (by triple, within TTL), TXT answers, parsed DKIM keys."""

from __future__ import annotations

import time

import dkim
import dns.resolver
import pytest

from mailsrv.dkim import keymemo
from mailsrv.dkim.keys import Algorithm, generate, load
from mailsrv.policy.senderauth import lookups, spfresults, verify
from mailsrv.policy.senderauth.spfresults import SPFResults

KEY = ("192.0.2.7", "bob@example.net", "client.example.net")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class TestSPFResults:
    def test_a_result_holds_until_its_answers_expire(self):
        clock = Clock()
        kept = SPFResults(clock)
        kept.put(KEY, "pass", expires=clock.now + 10)
        clock.now += 9.9
        assert kept.get(KEY) == "pass"
        clock.now += 0.1
        assert kept.get(KEY) is None

    def test_and_never_longer_than_a_minute(self):
        clock = Clock()
        kept = SPFResults(clock)
        kept.put(KEY, "fail", expires=clock.now + 86400)
        clock.now += spfresults.KEEP - 0.1
        assert kept.get(KEY) == "fail"
        clock.now += 0.1
        assert kept.get(KEY) is None

    @pytest.mark.parametrize("result", ["temperror", "permerror"])
    def test_errors_are_not_kept(self, result):
        kept = SPFResults(Clock())
        kept.put(KEY, result, expires=2000)
        assert kept.get(KEY) is None

    def test_an_answer_without_a_ttl_keeps_nothing(self):
        kept = SPFResults(Clock())
        kept.put(KEY, "none", expires=0)
        assert kept.get(KEY) is None

    def test_each_part_of_the_triple_counts(self):
        kept = SPFResults(Clock())
        kept.put(KEY, "pass", expires=2000)
        for other in (("192.0.2.8", *KEY[1:]), (KEY[0], "eve@example.net", KEY[2]), (*KEY[:2], "other.example")):
            assert kept.get(other) is None
        assert kept.get(KEY) == "pass"

    def test_the_table_never_grows_past_its_capacity(self, monkeypatch):
        monkeypatch.setattr(spfresults, "CAPACITY", 3)
        kept = SPFResults(Clock())
        for i in range(5):
            kept.put((f"192.0.2.{i}", *KEY[1:]), "pass", expires=2000)
        assert [kept.get((f"192.0.2.{i}", *KEY[1:])) for i in range(5)] == [None, None, "pass", "pass", "pass"]


class Answer(list):
    """A dnspython answer as pyspf's lookup reads it: its records and when they expire."""

    def __init__(self, records, expiration: float) -> None:
        super().__init__(records)
        self.expiration = expiration
        self.rrset = self or None


class TXT:
    def __init__(self, text: bytes) -> None:
        self.strings = (text,)


class TXTZone:
    """A resolver of TXT *records* by name (``[]``: NODATA; other names NXDOMAIN), answers expiring in *ttl* s."""

    def __init__(self, records: dict[str, list[bytes]], ttl: float) -> None:
        self.records = records
        self.ttl = ttl
        self.queries = 0

    def resolve(self, name, qtype, raise_on_no_answer=True):
        self.queries += 1
        values = self.records.get(str(name).rstrip(".").lower())
        if values is None or qtype != "TXT":
            raise dns.resolver.NXDOMAIN()
        return Answer([TXT(value) for value in values], time.time() + self.ttl)


def spf_zone(ttl: float) -> TXTZone:
    """example.net lets 192.0.2.7 send."""
    return TXTZone({"example.net": [b"v=spf1 ip4:192.0.2.7 -all"]}, ttl)


def dmarc_zone(ttl: float) -> TXTZone:
    """_dmarc.example.net says p=reject; example.net has no TXT record."""
    return TXTZone({"_dmarc.example.net": [b"v=DMARC1; p=reject"], "example.net": []}, ttl)


def test_spf_is_evaluated_once_for_a_run_of_messages_and_again_when_the_record_expires():
    kept = SPFResults()
    zone = spf_zone(ttl=300)
    assert verify._spf(zone, *KEY, kept) == "pass"
    asked = zone.queries
    assert verify._spf(zone, *KEY, kept) == "pass"
    assert zone.queries == asked
    assert verify._spf(zone, "192.0.2.8", *KEY[1:], kept) == "fail"  # another client: evaluated
    assert zone.queries > asked
    short = spf_zone(ttl=0)  # the answer expires at once: nothing to keep it by
    kept = SPFResults()
    verify._spf(short, *KEY, kept)
    verify._spf(short, *KEY, kept)
    assert short.queries == 2 * asked


class TestKeyMemo:
    def test_a_key_record_is_parsed_once_per_text_and_a_bad_one_always_raises(self):
        keymemo.install()
        keymemo.install()  # idempotent: one memo, not two
        dkim.evaluate_pk.cache_clear()
        record = load(generate(Algorithm.RSA), "example.net", "s1").record.partition(" IN TXT ")[2]
        text = "".join(record.split('"')[1::2]).encode()
        first = dkim.evaluate_pk(b"s1._domainkey.example.net.", text)
        assert dkim.evaluate_pk(b"s1._domainkey.example.net.", text) is first
        assert dkim.evaluate_pk.cache_info().hits == 1
        assert dkim.evaluate_pk(b"s2._domainkey.example.org.", text) is not first  # another name: its own entry
        for _ in range(2):
            with pytest.raises(dkim.KeyFormatError):
                dkim.evaluate_pk(b"s1._domainkey.example.net.", b"v=DKIM1; p=bm90IGEga2V5")


class TestTXTAnswers:
    def test_an_answer_is_kept_per_resolver_until_it_expires(self):
        zone = dmarc_zone(ttl=300)
        assert lookups.txt(zone, "_dmarc.example.net") == [b"v=DMARC1; p=reject"]
        assert lookups.txt(zone, "_DMARC.example.NET") == [b"v=DMARC1; p=reject"]
        assert lookups.txt(zone, "example.net") == []
        assert lookups.txt(zone, "example.net") == []
        assert zone.queries == 2
        other = dmarc_zone(ttl=300)  # another resolver (another test's name server) asks its own
        lookups.txt(other, "_dmarc.example.net")
        assert other.queries == 1

    def test_an_expired_answer_and_nxdomain_are_asked_again(self):
        zone = dmarc_zone(ttl=0)
        for _ in range(2):
            lookups.txt(zone, "_dmarc.example.net")
            assert lookups.txt(zone, "nowhere.example") == []
        assert zone.queries == 4

    def test_what_a_caller_does_with_the_list_changes_nothing_kept(self):
        zone = dmarc_zone(ttl=300)
        lookups.txt(zone, "_dmarc.example.net").append(b"junk")
        assert lookups.txt(zone, "_dmarc.example.net") == [b"v=DMARC1; p=reject"]

"""MX selection (RFC 5321 5.1, RFC 7505) over a fake dnspython resolver."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Iterable

import dns.exception
import dns.flags
import dns.name
import dns.resolver
import pytest

from mailsrv.delivery import mx
from mailsrv.delivery.mx import DNSTrouble, Host, Unroutable, address_literal, resolve_hosts, resolve_relay


class Answer(list):
    """A list of records with the response they came in and the name they belong to, as dnspython's ``Answer``."""

    response: SimpleNamespace
    canonical_name: dns.name.Name


class FakeResolver:
    """Answers from a dict ``(name, type) -> list or exception``; anything else is NXDOMAIN.

    Answers (and NODATA) for the ``(name, type)`` pairs in *signed* carry AD;
    the answers for a name in *aliases* were found at the name it maps to.
    """

    def __init__(self, records: dict, signed: Iterable[tuple[str, str]] = (), aliases: dict | None = None) -> None:
        self.records = records
        self.signed = set(signed)
        self.aliases = aliases or {}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, name: str, rdtype: str) -> Answer:
        self.asked.append((name, rdtype))
        answer = self.records.get((name, rdtype), dns.resolver.NXDOMAIN())
        response = SimpleNamespace(flags=dns.flags.AD if (name, rdtype) in self.signed else 0, question=[])
        if isinstance(answer, dns.resolver.NoAnswer):
            raise dns.resolver.NoAnswer(response=response)
        if isinstance(answer, Exception):
            raise answer
        result = Answer(answer)
        result.response = response
        result.canonical_name = dns.name.from_text(self.aliases.get(name, name))
        return result


def mx_record(preference: int, host: str) -> SimpleNamespace:
    return SimpleNamespace(preference=preference, exchange=dns.name.from_text(host))


def address(ip: str) -> SimpleNamespace:
    return SimpleNamespace(address=ip)


def hosts(records: dict, domain: str = "example.test") -> list[Host]:
    return resolve_hosts(FakeResolver(records), domain)


def test_preference_order_and_ipv6_first() -> None:
    records = {
        ("example.test", "MX"): [mx_record(20, "b.example.test."), mx_record(10, "a.example.test.")],
        ("a.example.test", "AAAA"): [address("2001:db8::1")], ("a.example.test", "A"): [address("192.0.2.1")],
        ("b.example.test", "AAAA"): dns.resolver.NoAnswer(), ("b.example.test", "A"): [address("192.0.2.2")],
    }
    assert hosts(records) == [
        Host("a.example.test", ("2001:db8::1", "192.0.2.1")), Host("b.example.test", ("192.0.2.2",))
    ]


def test_equal_preferences_come_in_random_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mx.random, "shuffle", lambda names: names.reverse())
    records = {("example.test", "MX"): [mx_record(10, "a.test."), mx_record(10, "b.test."), mx_record(5, "c.test.")]}
    records.update({(n, "A"): [address("192.0.2.9")] for n in ("a.test", "b.test", "c.test")})
    assert [h.name for h in hosts(records)] == ["c.test", "b.test", "a.test"]


def test_no_mx_means_the_domain_itself() -> None:
    records = {("example.test", "MX"): dns.resolver.NoAnswer(), ("example.test", "A"): [address("192.0.2.1")]}
    assert hosts(records) == [Host("example.test", ("192.0.2.1",))]


def test_null_mx_is_unroutable_with_556() -> None:
    with pytest.raises(Unroutable, match=r"^556 5\.1\.10 "):
        hosts({("example.test", "MX"): [mx_record(0, ".")]})


def test_a_null_mx_beside_real_ones_is_ignored() -> None:
    records = {("example.test", "MX"): [mx_record(0, "."), mx_record(10, "a.test.")], ("a.test", "A"): [address("192.0.2.1")]}
    assert [h.name for h in hosts(records)] == ["a.test"]


def test_we_and_every_mx_after_us_are_left_out() -> None:
    records = {
        ("example.test", "MX"): [mx_record(10, "a.test."), mx_record(20, "Mail.Ours.test."), mx_record(30, "c.test.")],
        ("a.test", "A"): [address("192.0.2.1")], ("c.test", "A"): [address("192.0.2.3")],
    }
    assert [h.name for h in resolve_hosts(FakeResolver(records), "example.test", me="mail.ours.test")] == ["a.test"]
    records[("example.test", "MX")] = [mx_record(10, "mail.ours.test."), mx_record(20, "c.test.")]
    with pytest.raises(Unroutable, match=r"^554 5\.4\.6 .*loop"):
        resolve_hosts(FakeResolver(records), "example.test", me="mail.ours.test")


def test_nxdomain_is_unroutable() -> None:
    with pytest.raises(Unroutable, match="no such domain"):
        hosts({})


@pytest.mark.parametrize("error", [dns.exception.Timeout(), dns.resolver.NoNameservers()])
def test_a_failed_mx_lookup_is_trouble(error: Exception) -> None:
    with pytest.raises(DNSTrouble, match=r"^451 4\.4\.3 "):
        hosts({("example.test", "MX"): error})


def test_a_host_whose_lookup_failed_is_skipped_when_another_has_an_address() -> None:
    records = {
        ("example.test", "MX"): [mx_record(10, "a.test."), mx_record(20, "b.test.")],
        ("a.test", "AAAA"): dns.exception.Timeout(), ("a.test", "A"): dns.exception.Timeout(),
        ("b.test", "A"): [address("192.0.2.2")],
    }
    assert [h.name for h in hosts(records)] == ["b.test"]


def test_lookup_trouble_for_every_host_defers_but_hosts_without_addresses_fail() -> None:
    records = {("example.test", "MX"): [mx_record(10, "a.test.")], ("a.test", "A"): dns.exception.Timeout()}
    with pytest.raises(DNSTrouble):
        hosts(records)
    with pytest.raises(Unroutable, match="no address"):
        hosts({("example.test", "MX"): [mx_record(10, "a.test.")]})


def test_address_literals_need_no_lookup() -> None:
    resolver = FakeResolver({})
    assert resolve_hosts(resolver, "[192.0.2.1]") == [Host("[192.0.2.1]", ("192.0.2.1",))]
    assert resolve_hosts(resolver, "[IPv6:2001:db8::1]") == [Host("[IPv6:2001:db8::1]", ("2001:db8::1",))]
    assert resolver.asked == []
    assert address_literal("[not an ip]") is None and address_literal("example.test") is None


def test_a_relay_without_an_address_waits() -> None:
    assert resolve_relay(FakeResolver({}), "192.0.2.7") == Host("192.0.2.7", ("192.0.2.7",))
    with pytest.raises(DNSTrouble, match="relay"):
        resolve_relay(FakeResolver({}), "smtp.example.test")


SECURE_MX = {
    ("example.test", "MX"): [mx_record(10, "a.example.test.")],
    ("a.example.test", "AAAA"): dns.resolver.NoAnswer(), ("a.example.test", "A"): [address("192.0.2.1")],
}


def test_a_host_is_secure_when_its_mx_and_address_answers_were_validated() -> None:
    signed = [("example.test", "MX"), ("a.example.test", "A")]
    [host] = resolve_hosts(FakeResolver(SECURE_MX, signed), "example.test")
    assert host.secure


@pytest.mark.parametrize("unsigned", [("example.test", "MX"), ("a.example.test", "A")])
def test_an_unvalidated_mx_or_address_answer_makes_the_host_insecure(unsigned: tuple[str, str]) -> None:
    signed = {("example.test", "MX"), ("a.example.test", "A")} - {unsigned}
    [host] = resolve_hosts(FakeResolver(SECURE_MX, signed), "example.test")
    assert not host.secure


def test_one_unvalidated_address_answer_of_two_makes_the_host_insecure() -> None:
    records = {**SECURE_MX, ("a.example.test", "AAAA"): [address("2001:db8::1")]}
    [host] = resolve_hosts(FakeResolver(records, [("example.test", "MX"), ("a.example.test", "A")]), "example.test")
    assert host.addresses == ("2001:db8::1", "192.0.2.1") and not host.secure


def test_a_failed_aaaa_lookup_leaves_a_host_with_validated_a_records_secure() -> None:
    records = {**SECURE_MX, ("a.example.test", "AAAA"): dns.exception.Timeout()}
    [host] = resolve_hosts(FakeResolver(records, [("example.test", "MX"), ("a.example.test", "A")]), "example.test")
    assert host.secure


def test_the_implicit_mx_is_secure_when_the_absence_of_mx_records_was_validated() -> None:
    records = {("example.test", "MX"): dns.resolver.NoAnswer(), ("example.test", "A"): [address("192.0.2.1")]}
    [host] = resolve_hosts(FakeResolver(records, [("example.test", "MX"), ("example.test", "A")]), "example.test")
    assert host == Host("example.test", ("192.0.2.1",), secure=True, mx_validated=True)
    [host] = resolve_hosts(FakeResolver(records, [("example.test", "A")]), "example.test")
    assert not host.secure and not host.mx_validated


def test_a_validated_mx_answer_is_mx_validated_whatever_the_address_answers() -> None:
    [host] = resolve_hosts(FakeResolver(SECURE_MX, [("example.test", "MX")]), "example.test")
    assert host.mx_validated and not host.secure
    [host] = resolve_hosts(FakeResolver(SECURE_MX, [("a.example.test", "A")]), "example.test")
    assert not host.mx_validated


def test_address_literals_and_relays_are_never_secure() -> None:
    assert not resolve_hosts(FakeResolver({}), "[192.0.2.1]")[0].secure
    relay = resolve_relay(FakeResolver({("smtp.test", "A"): [address("192.0.2.7")]}, [("smtp.test", "A")]), "smtp.test")
    assert not relay.secure


def test_a_host_that_is_an_alias_knows_its_canonical_name() -> None:
    resolver = FakeResolver(SECURE_MX, [("example.test", "MX"), ("a.example.test", "A")],
                            aliases={"a.example.test": "real.example.net"})
    [host] = resolve_hosts(resolver, "example.test")
    assert (host.name, host.canonical, host.secure) == ("a.example.test", "real.example.net", True)
    [host] = resolve_hosts(FakeResolver(SECURE_MX), "example.test")
    assert host.canonical == ""

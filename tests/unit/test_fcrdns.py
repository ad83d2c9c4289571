"""Forward-confirmed reverse DNS (mailsrv.policy.fcrdns) on a resolver of made-up records, and its time limit."""

from __future__ import annotations

from types import SimpleNamespace

import dns.exception
import dns.name
import dns.resolver
import dns.reversename
from twisted.internet import defer, task

from mailsrv.policy import fcrdns
from mailsrv.workers import InlineExecutor


class Records:
    """A resolver of ``{(name, type): [values]}``: PTR values are names, A/AAAA addresses; others NXDOMAIN.

    *failing* names raise a timeout, as a name server that does not answer.
    """

    def __init__(self, records: dict[tuple[str, str], list[str]], failing: tuple[str, ...] = ()) -> None:
        self.records = {(dns.name.from_text(name), rtype): values for (name, rtype), values in records.items()}
        self.failing = {dns.name.from_text(name) for name in failing}
        self.asked: list[tuple[str, str]] = []

    def resolve(self, name, rtype, raise_on_no_answer=True, lifetime=None, search=None):
        name = name if isinstance(name, dns.name.Name) else dns.name.from_text(name)
        self.asked.append((name.to_text(), rtype))
        if name in self.failing:
            raise dns.exception.Timeout()
        values = self.records.get((name, rtype))
        if values is None:
            raise dns.resolver.NXDOMAIN()
        if rtype == "PTR":
            rrset = [SimpleNamespace(target=dns.name.from_text(v)) for v in values]
        else:
            rrset = [SimpleNamespace(address=v) for v in values]
        return SimpleNamespace(rrset=rrset)


def ptr(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text()


IP = "192.0.2.7"


def test_a_ptr_name_whose_address_is_the_clients_is_confirmed():
    resolver = Records({(ptr(IP), "PTR"): ["Mail.Example.NET."], ("mail.example.net.", "A"): ["198.51.100.1", IP]})
    assert fcrdns.confirmed_name(resolver, IP, 2) == "mail.example.net"


def test_a_ptr_name_without_the_address_is_not():
    resolver = Records({(ptr(IP), "PTR"): ["mx.google.com."], ("mx.google.com.", "A"): ["198.51.100.1"]})
    assert fcrdns.confirmed_name(resolver, IP, 2) is None


def test_no_ptr_record_or_a_failing_lookup_confirms_nothing():
    assert fcrdns.confirmed_name(Records({}), IP, 2) is None
    failing = Records({(ptr(IP), "PTR"): ["mail.example.net."]}, failing=("mail.example.net.",))
    assert fcrdns.confirmed_name(failing, IP, 2) is None
    assert fcrdns.confirmed_name(Records({}, failing=(ptr(IP),)), IP, 2) is None


def test_the_first_of_several_names_that_confirms_and_no_more_than_ten_are_followed():
    names = [f"n{i}.example.net." for i in range(12)]
    records = {(ptr(IP), "PTR"): names, **{(name, "A"): ["198.51.100.1"] for name in names}}
    records[("n3.example.net.", "A")] = [IP]
    assert fcrdns.confirmed_name(Records(records), IP, 2) == "n3.example.net"
    records[("n3.example.net.", "A")] = ["198.51.100.1"]
    records[("n11.example.net.", "A")] = [IP]
    resolver = Records(records)
    assert fcrdns.confirmed_name(resolver, IP, 2) is None
    assert len([a for a in resolver.asked if a[1] == "A"]) == fcrdns.MAX_NAMES


def test_ipv6_asks_aaaa_and_compares_addresses_not_text():
    ip = "2001:db8::7"
    resolver = Records({(ptr(ip), "PTR"): ["v6.example.net."], ("v6.example.net.", "AAAA"): ["2001:DB8:0:0::7"]})
    assert fcrdns.confirmed_name(resolver, ip, 2) == "v6.example.net"
    assert ("v6.example.net.", "A") not in resolver.asked


def test_an_ipv4_mapped_address_is_looked_up_as_ipv4():
    resolver = Records({(ptr(IP), "PTR"): ["mail.example.net."], ("mail.example.net.", "A"): [IP]})
    assert fcrdns.confirmed_name(resolver, f"::ffff:{IP}", 2) == "mail.example.net"


def test_no_address_confirms_nothing():
    assert fcrdns.confirmed_name(Records({}), "", 2) is None


class Never:
    """A pool whose jobs never end (a name server that never answers, a pool that is full)."""

    def run(self, fn, *args, **kwargs):
        return defer.Deferred()


def test_look_up_gives_none_once_the_time_is_up():
    clock = task.Clock()
    found = []
    fcrdns.look_up(Never(), Records({}), IP, 5, clock).addCallback(found.append)
    clock.advance(4.9)
    assert found == []
    clock.advance(0.1)
    assert found == [None]


def test_look_up_gives_none_when_the_lookup_breaks():
    class Broken:
        def resolve(self, *args, **kwargs):
            raise RuntimeError("a bug")

    found = []
    fcrdns.look_up(InlineExecutor(), Broken(), IP, 5, task.Clock()).addCallback(found.append)
    assert found == [None]

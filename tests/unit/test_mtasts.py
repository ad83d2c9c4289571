"""MTA-STS (RFC 8461): the record and policy parsers, MX patterns, and the policy cache on a clock we control."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import dns.exception
import dns.resolver
import pytest
from twisted.internet import defer, task

from mailsrv.delivery.mtasts.cache import Entry, PolicyStore
from mailsrv.delivery.mtasts.discovery import Policies
from mailsrv.delivery.mtasts.fetch import FetchError
from mailsrv.delivery.mtasts.policy import MAX_AGE_LIMIT, Mode, Policy, PolicyError, mx_matches, parse_policy, record_id
from mailsrv.workers import InlineExecutor

POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.example.net\r\nmax_age: 86400\r\n"


# -- the TXT record (RFC 8461 3.1)

@pytest.mark.parametrize("records, expected", [
    (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
    (["v=STSv1;id=abc"], "abc"),
    (["v=STSv1 ;  id=abc ; ext=x.y"], "abc"),
    (["v=spf1 -all", "v=STSv1; id=abc;"], "abc"),  # records of other kinds are discarded
    (["v=STSv1; id=first; id=second"], "first"),
])
def test_record_id(records, expected):
    assert record_id(records) == expected


@pytest.mark.parametrize("records", [
    [],
    ["v=STSv1; id=a;", "v=STSv1; id=b;"],  # not exactly one
    ["v=STSv1;"],  # no id
    ["v=STSv1; id=has-a-dash"],
    ["v=STSv1; id=" + "a" * 33],
    ["v=STSv1; id=abc; =x"],
    ["v=STSv1; id=abc; bad value=x"],
    ["v=STSv10; id=abc"],
    ["V=STSv1; id=abc"],
])
def test_bad_records_mean_no_policy(records):
    with pytest.raises(PolicyError):
        record_id(records)


# -- the policy file (RFC 8461 3.2)

def test_a_policy_parses():
    assert parse_policy(POLICY) == Policy(Mode.ENFORCE, ("mx1.example.com", "*.example.net"), 86400)


def test_lf_line_ends_unknown_fields_and_first_of_repeated_fields():
    text = "version: STSv1\nmode: testing\nmode: enforce\nmx: MX.Example.COM\nmax_age:604800\nfuture_key: yes\n"
    assert parse_policy(text) == Policy(Mode.TESTING, ("mx.example.com",), 604800)


def test_mode_none_needs_no_mx_and_max_age_is_capped():
    assert parse_policy("version: STSv1\nmode: none\nmax_age: 99999999999"[:-1]) == Policy(Mode.NONE, (), MAX_AGE_LIMIT)


@pytest.mark.parametrize("text", [
    "",
    POLICY.replace("version: STSv1", "version: STSv2"),
    POLICY.replace("version: STSv1\r\n", ""),
    POLICY.replace("mode: enforce", "mode: strict"),
    POLICY.replace("max_age: 86400", "max_age: -1"),
    POLICY.replace("max_age: 86400", "max_age: 12345678901"),
    POLICY.replace("max_age: 86400\r\n", ""),
    "version: STSv1\nmode: enforce\nmax_age: 86400\n",  # enforce without mx
    POLICY + "mx: *.*.example.org\n",
    POLICY + "mx: mail.example.org:25\n",
    POLICY + "this line has no colon\n",
])
def test_bad_policies(text):
    with pytest.raises(PolicyError):
        parse_policy(text)


# -- MX patterns (RFC 8461 4.1)

@pytest.mark.parametrize("pattern, host, matches", [
    ("mail.example.com", "mail.example.com", True),
    ("mail.example.com", "MAIL.Example.com.", True),
    ("mail.example.com", "mail2.example.com", False),
    ("*.example.com", "mail.example.com", True),
    ("*.example.com", "example.com", False),
    ("*.example.com", "foo.bar.example.com", False),
    ("*.example.com", ".example.com", False),
    ("*.example.com", "mail.example.com.evil", False),
    ("*.Example.COM", "mx.example.com", True),
])
def test_mx_patterns(pattern, host, matches):
    assert mx_matches(pattern, host) is matches


# -- the cache

class FakeResolver:
    """TXT answers for ``_mta-sts`` names; a name without records is NXDOMAIN; *failing* times out."""

    def __init__(self) -> None:
        self.txt: dict[str, list[str]] = {}
        self.failing = False

    def resolve(self, name: str, rdtype: str) -> list:
        assert rdtype == "TXT"
        if self.failing:
            raise dns.exception.Timeout()
        if name not in self.txt:
            raise dns.resolver.NXDOMAIN()
        return [SimpleNamespace(strings=[s.encode()]) for s in self.txt[name]]


class FakeFetcher:
    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self.fetched: list[str] = []
        self.pending: defer.Deferred | None = None

    def url(self, domain: str) -> str:
        return f"https://mta-sts.{domain}/.well-known/mta-sts.txt"

    async def fetch(self, domain: str) -> str:
        self.fetched.append(domain)
        if self.pending is not None:
            await self.pending
        if domain not in self.texts:
            raise FetchError("connection refused")
        return self.texts[domain]


class Harness:
    def __init__(self, directory: str) -> None:
        self.clock = task.Clock()
        self.clock.advance(1_000_000)
        self.resolver = FakeResolver()
        self.fetcher = FakeFetcher()
        self.store = PolicyStore(directory)
        self.policies = self.new_process()

    def new_process(self) -> Policies:
        """The Policies of another server on the same data dir (or of this one after a restart)."""
        inline = InlineExecutor()
        return Policies(resolver=self.resolver, dns=inline, disk=inline, store=self.store, fetcher=self.fetcher,
                        clock=self.clock)

    def publish(self, domain: str, policy_id: str, text: str = POLICY) -> None:
        self.resolver.txt[f"_mta-sts.{domain}"] = [f"v=STSv1; id={policy_id};"]
        self.fetcher.texts[domain] = text

    def policy(self, domain: str = "example.com", policies: Policies | None = None) -> Policy | None:
        d = (policies or self.policies).policy(domain)
        assert d.called
        return d.result


@pytest.fixture
def h(tmp_path) -> Harness:
    return Harness(str(tmp_path / "mta-sts"))


def test_no_record_no_policy_and_no_fetch(h):
    assert h.policy() is None
    assert h.fetcher.fetched == []


def test_a_policy_is_fetched_once_and_cached_on_disk_as_readable_json(h):
    h.publish("example.com", "one")
    assert h.policy().mode is Mode.ENFORCE
    assert h.policy().mode is Mode.ENFORCE
    assert h.fetcher.fetched == ["example.com"]
    with open(os.path.join(h.store.directory, "example.com.json")) as f:
        data = json.load(f)
    assert data == {"domain": "example.com", "id": "one", "fetched": 1_000_000, "expires": 1_086_400,
                    "mode": "enforce", "mx": ["mx1.example.com", "*.example.net"], "max_age": 86400}


def test_a_new_id_fetches_the_new_policy(h):
    h.publish("example.com", "one")
    h.policy()
    h.publish("example.com", "two", POLICY.replace("enforce", "testing"))
    assert h.policy().mode is Mode.TESTING
    assert h.fetcher.fetched == ["example.com"] * 2


def test_past_max_age_the_policy_is_fetched_again(h):
    h.publish("example.com", "one")
    h.policy()
    h.clock.advance(86399)
    h.policy()
    assert len(h.fetcher.fetched) == 1
    h.clock.advance(1)
    h.policy()
    assert len(h.fetcher.fetched) == 2


def test_a_failed_fetch_keeps_the_cached_policy_until_it_expires(h):
    """RFC 8461 3.3: with no fresh policy to be had, an unexpired cached one applies."""
    h.publish("example.com", "one")
    h.policy()
    h.publish("example.com", "two")
    del h.fetcher.texts["example.com"]  # the policy host is down (or blocked)
    assert h.policy().mode is Mode.ENFORCE
    h.clock.advance(86400)
    assert h.policy() is None


def test_a_lost_txt_record_keeps_the_cached_policy(h):
    h.publish("example.com", "one")
    h.policy()
    h.resolver.failing = True
    assert h.policy().mode is Mode.ENFORCE
    h.resolver.failing = False
    h.resolver.txt.clear()
    assert h.policy().mode is Mode.ENFORCE
    assert len(h.fetcher.fetched) == 1


def test_the_disk_cache_survives_a_restart_and_serves_another_process(h):
    h.publish("example.com", "one")
    h.policy()
    del h.fetcher.texts["example.com"]
    assert h.policy(policies=h.new_process()).mode is Mode.ENFORCE
    assert len(h.fetcher.fetched) == 1


def test_a_policy_another_process_fetched_is_read_from_disk(h):
    ours = h.policies
    h.publish("example.com", "one")
    h.policy(policies=ours)
    h.publish("example.com", "two", POLICY.replace("enforce", "testing"))
    h.policy(policies=h.new_process())  # the other server sees the new id first and fetches
    assert h.policy(policies=ours).mode is Mode.TESTING
    assert len(h.fetcher.fetched) == 2


def test_a_broken_cache_file_is_ignored(h):
    os.makedirs(h.store.directory)
    with open(h.store.path("example.com"), "w") as f:
        f.write("{not json")
    h.publish("example.com", "one")
    assert h.policy().mode is Mode.ENFORCE


def test_an_unparsable_policy_is_no_policy(h):
    h.publish("example.com", "one", "<html>not a policy</html>")
    assert h.policy() is None


def test_attempts_at_once_share_one_fetch(h):
    h.publish("example.com", "one")
    h.fetcher.pending = defer.Deferred()
    first, second = h.policies.policy("example.com"), h.policies.policy("example.com")
    assert not first.called and not second.called
    h.fetcher.pending.callback(None)
    assert first.result == second.result and first.result.mode is Mode.ENFORCE
    assert h.fetcher.fetched == ["example.com"]


def test_a_name_that_cannot_be_a_file_has_no_policy(h):
    for odd in ("[192.0.2.1]", "localhost", "../etc", ".example.com"):
        assert h.policy(odd) is None
    assert h.fetcher.fetched == []


def test_entry_expiry():
    entry = Entry("x", Policy(Mode.ENFORCE, ("mx.example.com",), 60), 100.0)
    assert entry.expires == 160 and entry.fresh(159.9) and not entry.fresh(160)

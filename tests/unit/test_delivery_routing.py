"""Per-domain routes and the TLS decision: [delivery.domains] rules, the relay, MTA-STS, the default."""

from __future__ import annotations

from types import MappingProxyType

from twisted.internet import defer

from mailsrv.config.delivery import DeliveryConfig, DomainRule
from mailsrv.delivery.mtasts.policy import Mode, Policy
from mailsrv.delivery.mx import Host
from mailsrv.delivery.queuedir import Recipient
from mailsrv.delivery.routing import Route, group, route
from mailsrv.delivery.runner import groups
from mailsrv.delivery.tlspolicy import TLSPolicies

ENFORCE = Policy(Mode.ENFORCE, ("mx1.example.com", "*.mail.example.com"), 86400)
TESTING = Policy(Mode.TESTING, ("mx1.example.com",), 86400)


def delivery(relay: str = "", **rules: DomainRule) -> DeliveryConfig:
    return DeliveryConfig(relay=relay, domains=MappingProxyType({k.replace("_", "."): v for k, v in rules.items()}))


class FakePolicies:
    def __init__(self, **policies: Policy) -> None:
        self.policies = {k.replace("_", "."): v for k, v in policies.items()}
        self.asked: list[str] = []

    def policy(self, domain: str) -> defer.Deferred:
        self.asked.append(domain)
        return defer.succeed(self.policies.get(domain))


def decide(policies: TLSPolicies, domain: str, way: Route):
    d = defer.ensureDeferred(policies.decide(domain, way))
    assert d.called
    return d.result


def test_routes():
    config = delivery("smtp.example.net:587", gmail_com=DomainRule(route="mx"),
                      partner_example=DomainRule(route="in.partner.example:2525"))
    assert route(config, "other.example") == Route(("smtp.example.net", 587), configured=True)
    assert route(config, "GMail.com") == Route()
    assert route(config, "partner.example") == Route(("in.partner.example", 2525))
    assert route(delivery(), "other.example") == Route()


def test_one_transaction_per_domain_by_mx_and_per_relay():
    config = delivery("smtp.example.net:587", gmail_com=DomainRule(route="mx"),
                      a_example=DomainRule(route="in.partner.example:25"), b_example=DomainRule(route="in.partner.example:25"))
    recipients = [Recipient(a) for a in ("x@one.example", "y@two.example", "z@gmail.com", "w@gmail.com",
                                         "v@a.example", "u@b.example")]
    assert [[r.address for r in g] for g in groups(recipients, config)] == [
        ["x@one.example", "y@two.example"], ["z@gmail.com", "w@gmail.com"], ["v@a.example", "u@b.example"]]
    assert group(delivery(), "One.Example") == "one.example"


def test_a_rule_wins_over_mta_sts_which_is_not_even_asked():
    sts = FakePolicies(bank_example=ENFORCE)
    decision = decide(TLSPolicies(delivery(bank_example=DomainRule(tls="encrypt")), sts), "Bank.Example", Route())
    assert (decision.tls, decision.source, decision.sts) == ("encrypt", "rule", None)
    assert sts.asked == []


def test_enforce_means_verify_and_only_the_listed_hosts():
    decision = decide(TLSPolicies(delivery(), FakePolicies(example_com=ENFORCE)), "example.com", Route())
    assert (decision.tls, decision.source) == ("verify", "mta-sts")
    hosts = [Host("mx0.example.com", ()), Host("mx1.example.com", ()), Host("a.mail.example.com", ()),
             Host("a.b.mail.example.com", ())]
    assert [h.name for h in decision.hosts("q", hosts)] == ["mx1.example.com", "a.mail.example.com"]
    assert decision.hosts("q", hosts[:1]) == []
    assert decision.no_hosts_reply(hosts[:1]).startswith("451 4.7.5 ")


def test_testing_keeps_the_default_and_every_host():
    decision = decide(TLSPolicies(delivery(), FakePolicies(example_com=TESTING)), "example.com", Route())
    assert (decision.tls, decision.testing) == ("may", True)
    assert len(decision.hosts("q", [Host("mx0.example.com", ()), Host("mx1.example.com", ())])) == 2


def test_mta_sts_is_for_mx_delivery_only_and_none_means_no_policy():
    relayed = decide(TLSPolicies(delivery("smtp.example.net:587"), FakePolicies(example_com=ENFORCE)),
                     "example.com", Route(("smtp.example.net", 587), configured=True))
    assert (relayed.tls, relayed.source) == ("verify", "relay")  # relay_tls
    none = decide(TLSPolicies(delivery(), FakePolicies(example_com=Policy(Mode.NONE, (), 60))), "example.com", Route())
    assert (none.tls, none.sts) == ("may", None)
    off = decide(TLSPolicies(delivery(), None), "example.com", Route())
    assert (off.tls, off.source) == ("may", "default")

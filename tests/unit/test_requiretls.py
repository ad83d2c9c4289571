"""RFC 8689 on the TLS decision for one message: REQUIRETLS raises it, ``TLS-Required: No`` lowers it."""

from __future__ import annotations

import pytest

from mailsrv.delivery import requiretls
from mailsrv.delivery.attempt import Options
from mailsrv.delivery.mtasts.policy import Mode, Policy
from mailsrv.delivery.mx import Host
from mailsrv.delivery.tlspolicy import Decision

STS = object()  # stands for an MTA-STS policy in enforce mode


@pytest.mark.parametrize("configured", ["none", "may", "encrypt", "verify"])
def test_requiretls_is_verify_whatever_the_destination_says(configured):
    decided = requiretls.decision(Decision("example.org", configured, "default"), Options(require_tls=True),
                                  relay=False)
    assert decided.tls == "verify"


def test_tls_required_no_lowers_verify_to_may_and_sets_mta_sts_aside():
    decided = requiretls.decision(Decision("example.org", "verify", "mta-sts", sts=STS), Options(tls_optional=True),
                                  relay=False)
    assert (decided.tls, decided.sts) == ("may", None)


def test_tls_required_no_changes_neither_a_relay_nor_none():
    relay = Decision("example.org", "verify", "relay")
    assert requiretls.decision(relay, Options(tls_optional=True), relay=True) == relay
    never = Decision("example.org", "none", "rule")
    assert requiretls.decision(never, Options(tls_optional=True), relay=False).tls == "none"


def test_requiretls_wins_over_the_header():
    decided = requiretls.decision(Decision("example.org", "may", "default", sts=STS),
                                  Options(require_tls=True, tls_optional=True), relay=False)
    assert (decided.tls, decided.sts) == ("verify", STS)


def test_the_header_is_read_case_insensitively_and_only_no_counts():
    assert requiretls.tls_optional(b"Subject: x\r\nTLS-Required:  no\r\n")
    assert requiretls.tls_optional(b"tls-required: No\r\n")
    assert not requiretls.tls_optional(b"TLS-Required: Yes\r\n")
    assert not requiretls.tls_optional(b"Subject: TLS-Required: No\r\n")


def test_sessions_are_kept_apart_by_what_the_message_demands():
    keys = {requiretls.sessions_key("example.org", options)
            for options in (Options(), Options(require_tls=True), Options(tls_optional=True))}
    assert len(keys) == 3 and requiretls.sessions_key("example.org", Options()) == "example.org"


HOSTS = [Host("mx1.example.org", ("192.0.2.1",), mx_validated=True), Host("mx2.example.org", ("192.0.2.2",))]


def test_requiretls_goes_only_to_mx_hosts_of_a_validated_answer():
    decided = Decision("example.org", "verify", "default")
    assert requiretls.qualified("q", HOSTS, decided, Options(require_tls=True)) == HOSTS[:1]
    assert requiretls.qualified("q", HOSTS, decided, Options()) == HOSTS


@pytest.mark.parametrize("mode, allowed", [(Mode.ENFORCE, ["mx1.example.org", "mx2.example.org"]),
                                           (Mode.TESTING, ["mx1.example.org"])])
def test_an_mta_sts_policy_in_enforce_mode_confirms_the_hosts_it_lists(mode, allowed):
    policy = Policy(mode, ("*.example.org",), 86400)
    decided = Decision("example.org", "verify", "mta-sts", sts=policy)
    assert [h.name for h in requiretls.qualified("q", HOSTS, decided, Options(require_tls=True))] == allowed


def test_an_address_literal_needs_no_validated_mx():
    literal = [Host("[192.0.2.9]", ("192.0.2.9",))]
    decided = Decision("[192.0.2.9]", "verify", "default")
    assert requiretls.qualified("q", literal, decided, Options(require_tls=True)) == literal

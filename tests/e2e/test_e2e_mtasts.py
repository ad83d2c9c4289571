"""End to end: MTA-STS and per-domain TLS rules, with the real twistd sending to a real mailsrv.

One receiving mailsrv takes mail for every test domain; its certificate,
from the test CA, is made out to ``mx.remote.test`` and
``rogue.remote.test`` only, so it is a bad certificate for any other MX
name.  Every MX host of the test DNS is that receiver (127.0.0.1 and the
sender's ``mx_port``).  The MTA-STS policy hosts are a loopback HTTPS
server with a certificate from the same CA, which the sender trusts
through ``tls_ca_file``; ``mta_sts_port`` points it there.

* remote.test: ``enforce``, listing mx.remote.test but not the preferred
  rogue.remote.test: only the listed host gets the mail;
* bad.test: ``enforce``, its only MX presents a certificate for another
  name: deferred, never sent in plaintext;
* testing.test: ``testing``, neither MX name nor certificate right:
  delivered, each failure logged;
* open.test: ``enforce``, but a ``[delivery.domains]`` rule says
  ``encrypt``: the rule wins, delivered over TLS despite the name;
* plain.test: a rule says ``none``: delivered without STARTTLS.
"""

from __future__ import annotations

import email
import email.policy
import json
import os
import re

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import PASSWORD, PolicyServer, arrived, numbered, queue_list, submit, wait_for
from smtp_receiver import MailCA
from twistd_server import Server

ALICE = "alice@example.test"
DOMAINS = ("remote.test", "bad.test", "testing.test", "open.test", "plain.test")


def policy(mode: str, *mx: str) -> str:
    return "version: STSv1\nmode: {}\n{}max_age: 86400\n".format(mode, "".join(f"mx: {m}\n" for m in mx))


POLICIES = {
    "mta-sts.remote.test": policy("enforce", "mx.remote.test"),
    "mta-sts.bad.test": policy("enforce", "mx.bad.test"),
    "mta-sts.testing.test": policy("testing", "*.elsewhere.test"),
    "mta-sts.open.test": policy("enforce", "mx.open.test"),
}


def zone() -> Zone:
    z = Zone()
    z.add("remote.test", "MX", "5 rogue.remote.test.", "10 mx.remote.test.")
    for domain in DOMAINS[1:]:
        z.add(domain, "MX", f"10 mx.{domain}.")
    for domain in DOMAINS:
        z.add(f"mx.{domain}", "A", "127.0.0.1")
    z.add("rogue.remote.test", "A", "127.0.0.1")
    for host in POLICIES:
        z.add(host, "A", "127.0.0.1")
        z.add("_" + host, "TXT", '"v=STSv1; id=20260101;"')
    return z


def bob(domain: str) -> str:
    return f"bob@{domain}"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mtasts"))
    for name in ("receiver", "sender", "routed"):
        os.makedirs(os.path.join(root, name))
    ca = MailCA()
    ca_file = ca.write(root)
    mx_cert, mx_key = ca.write_pair(root, "mx.remote.test", "rogue.remote.test")
    web_cert, web_key = ca.write_pair(root, *POLICIES)
    with ThreadedDNS(zone()) as dns, PolicyServer(web_cert, web_key, POLICIES) as web:
        receiver = Server(os.path.join(root, "receiver"), domains=DOMAINS,
                          extra_config=f'[tls]\ncert = "{mx_cert}"\nkey = "{mx_key}"\n')
        for domain in DOMAINS:
            receiver.add_user(bob(domain), PASSWORD)
        receiver.write_config()
        common = (f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
                  f'[delivery]\nmx_port = {receiver.ports["smtp"]}\nretry = ["1s"]\ntls_ca_file = "{ca_file}"\n'
                  f'mta_sts_port = {web.port}\n')
        sender = Server(os.path.join(root, "sender"), extra_config=(
            common + '[delivery.domains]\n"open.test" = { tls = "encrypt" }\n"plain.test" = { tls = "none" }\n'))
        # Everything through a relay where nothing listens, but plain.test by its MX.
        routed = Server(os.path.join(root, "routed"), extra_config=(
            common + f'relay = "127.0.0.2:{receiver.ports["smtp"]}"\n'
            '[delivery.domains]\n"plain.test" = { route = "mx" }\n'))
        for server in (sender, routed):
            server.add_user(ALICE, PASSWORD)
        receiver.start()
        sender.start()
        routed.start()
        submit(sender, ALICE, [(bob(domain), numbered(ALICE, bob(domain), seq)) for seq, domain in enumerate(DOMAINS)])
        submit(routed, ALICE, [(bob(domain), numbered(ALICE, bob(domain), 10 + seq))
                               for seq, domain in enumerate(("remote.test", "plain.test"))])
        yield sender, receiver, web, routed
        routed.stop()
        sender.stop()
        receiver.stop()


def mail_of(receiver: Server, domain: str):
    return arrived(os.path.join(receiver.data_dir, "mail", domain, "bob"))


def received_by_mx(receiver: Server, domain: str, seq: int) -> str:
    """The receiver's own Received field (the top one) of message *seq* to bob@*domain*, unfolded."""
    new = os.path.join(receiver.data_dir, "mail", domain, "bob", "new")
    for name in os.listdir(new):
        with open(os.path.join(new, name), "rb") as f:
            message = email.message_from_binary_file(f, policy=email.policy.compat32)
        if message["X-Seq"] == str(seq):
            return " ".join(message.get_all("Received")[0].split())
    raise AssertionError(f"message {seq} is not in {new}")


def test_enforce_delivers_only_to_a_listed_mx_over_verified_tls(setup):
    sender, receiver, web, _ = setup
    assert wait_for(lambda: mail_of(receiver, "remote.test") == {0: 1}, 30), (queue_list(sender), sender.log())
    delivered = f"send delivered: queue_id=\\S+ recipients={bob('remote.test')} host=mx.remote.test ip=127.0.0.1 tls=\"TLSv1"
    assert wait_for(lambda: re.search(delivered, sender.log()), 30), sender.log()
    assert "rogue.remote.test is not an MX host the MTA-STS policy of remote.test lists; skipped" in sender.log()
    assert "host=rogue.remote.test" not in sender.log()
    assert " with ESMTPS " in received_by_mx(receiver, "remote.test", 0)
    with open(os.path.join(sender.data_dir, "mta-sts", "remote.test.json")) as f:
        cached = json.load(f)
    assert (cached["id"], cached["mode"], cached["mx"]) == ("20260101", "enforce", ["mx.remote.test"])


def test_enforce_defers_when_the_only_mx_has_a_bad_certificate(setup):
    sender, receiver, web, _ = setup
    deferred = f"send deferred: queue_id=\\S+ recipients={bob('bad.test')} host=mx.bad.test ip=127.0.0.1 tls=none"
    assert wait_for(lambda: len(re.findall(deferred, sender.log())) >= 2, 30), sender.log()  # retried, still refused
    assert mail_of(receiver, "bad.test") == {}  # not in plaintext either
    assert "DNSMismatch(mismatched_id=DNS_ID(hostname=b'mx.bad.test'))" in sender.log()
    listed = queue_list(sender)
    assert bob("bad.test") in listed and "deferred" in listed


def test_testing_delivers_and_logs_what_enforce_would_refuse(setup):
    sender, receiver, web, _ = setup
    assert wait_for(lambda: mail_of(receiver, "testing.test") == {2: 1}, 30), sender.log()
    log = sender.log()
    assert ("MTA-STS testing: testing.test: mx.testing.test [-]: the MX host is not listed in the policy; "
            "delivering anyway (enforce would not)") in log
    assert ("MTA-STS testing: testing.test: mx.testing.test [127.0.0.1]: certificate not valid for "
            "mx.testing.test") in log


def test_a_domain_rule_wins_over_mta_sts(setup):
    sender, receiver, web, _ = setup
    assert wait_for(lambda: mail_of(receiver, "open.test") == {3: 1}, 30), sender.log()
    assert " with ESMTPS " in received_by_mx(receiver, "open.test", 3)  # encrypt: TLS, certificate not checked
    assert web.requests["mta-sts.open.test"] == 0  # the rule decides: the policy is not even fetched


def test_a_domain_rule_of_none_sends_without_tls(setup):
    sender, receiver, web, _ = setup
    assert wait_for(lambda: mail_of(receiver, "plain.test").get(4) == 1, 30), sender.log()
    assert " with ESMTP " in received_by_mx(receiver, "plain.test", 4)


def test_a_route_rule_sends_one_domain_by_mx_past_the_relay(setup):
    _, receiver, _, routed = setup
    assert wait_for(lambda: mail_of(receiver, "plain.test").get(11) == 1, 30), routed.log()
    refused = f"send deferred: queue_id=\\S+ recipients={bob('remote.test')} host=127.0.0.2 ip=127.0.0.2"
    assert wait_for(lambda: re.search(refused, routed.log()), 30), routed.log()  # the rest waits for the relay
    assert 10 not in mail_of(receiver, "remote.test")

"""DNS blocklists and allowlists on port 25 (``[policy] dnsbl``, ``dnswl``) against the test's own DNS.

Each session comes from 192.0.2.7 (or 2001:db8::7), outside
``trusted_networks``; the lists are zones of the name server the test
starts, listing an address as RFC 5782 2.1 and 2.4 have it (the reversed
octets or nibbles under the list's zone, an A record in 127.0.0.0/8).
"""

from __future__ import annotations

import dataclasses

from twisted.internet.address import IPv4Address, IPv6Address

from dns_harness import ThreadedDNS, Zone
from mailsrv import config as configuration
from mailsrv.dns import make_resolver
from mailsrv.smtp import replies
from support import audit_events, make_context
from test_smtp_session import FakeDirectory, SMTPTestCase

V4 = "7.2.0.192"
V6 = ".".join(reversed("20010db8000000000000000000000007"))
BLOCKED = replies.BLOCKLISTED(ip="192.0.2.7", lists="bl.example").wire()


class DNSBLTestCase(SMTPTestCase):
    """A context whose resolver asks :attr:`zone`, with the lists of :attr:`policy`."""

    policy: dict = {"dnsbl": ("bl.example",)}
    dns_timeout = 2

    def setUp(self) -> None:
        self.zone = Zone()
        self.dns = ThreadedDNS(self.zone).__enter__()
        self.addCleanup(self.dns.__exit__)
        super().setUp()
        resolver = make_resolver(configuration.DNSConfig(nameservers=(f"127.0.0.1:{self.dns.port}",),
                                                         timeout=self.dns_timeout))
        resolver.cache = None  # what is kept is the check's own doing
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), resolver=resolver, clock=self.clock)

    def make_config(self, **auth):
        base = super().make_config(**auth)
        return dataclasses.replace(base, policy=configuration.PolicyConfig(trusted_networks=(), **self.policy))

    def list_address(self, zone: str, answer: str = "127.0.0.2", reversed_ip: str = V4) -> None:
        self.zone.add(f"{reversed_ip}.{zone}", "A", answer)

    def rcpt(self, recipient: str = "alice@example.test", **connect) -> bytes:
        """Connect, EHLO, MAIL; the reply to one RCPT."""
        self.assertTrue(self.connect(**connect).startswith(b"220 "))
        self.ehlo()
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net>\r\n"), b"250 2.1.0 Ok\r\n")
        return self.say(f"RCPT TO:<{recipient}>\r\n".encode())

    def listed(self) -> list[tuple[str, str, list[str], int]]:
        return [(e["result"], e["client_ip"], e["lists"], e["score"]) for e in audit_events(list(self.log), "dnsbl")]


class RcptTests(DNSBLTestCase):
    def test_a_listed_client_is_refused_at_rcpt_naming_the_list(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)
        self.assertEqual(BLOCKED, b"554 5.7.1 Service unavailable; client [192.0.2.7] blocked using bl.example\r\n")
        self.assertEqual(self.listed(), [("refused", "192.0.2.7", ["bl.example:127.0.0.2"], 1)])

    def test_every_recipient_is_refused_and_the_hit_logged_once(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)
        self.assertEqual(self.say(b"RCPT TO:<alice@example.org>\r\n"), BLOCKED)
        self.assertEqual(len(self.listed()), 1)
        self.assertEqual([e["subject"] for e in audit_events(list(self.log), "rejection")],
                         ["alice@example.test", "alice@example.org"])

    def test_a_client_no_list_knows_is_accepted(self):
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.zone.asked, [f"{V4}.bl.example."])
        self.assertEqual(self.listed(), [])

    def test_postmaster_is_reachable_from_a_listed_client(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt("postmaster@example.test"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<Postmaster>\r\n"), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), BLOCKED)

    def test_an_answer_outside_127_is_no_listing(self):
        self.list_address("bl.example", answer="192.0.2.1")  # a wildcard of a parked domain, say
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")

    def test_the_result_is_kept_for_the_next_connection(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)
        self.assertEqual(self.rcpt(), BLOCKED)
        self.assertEqual(self.zone.asked, [f"{V4}.bl.example."])
        self.assertEqual(len(self.listed()), 2)  # one line per connection
        self.clock.advance(300)  # the record's TTL
        self.assertEqual(self.rcpt(), BLOCKED)
        self.assertEqual(len(self.zone.asked), 2)

    def test_an_ipv6_client_is_asked_about_by_nibbles(self):
        self.list_address("bl.example", reversed_ip=V6)
        reply = self.rcpt(peer=IPv6Address("TCP", "2001:db8::7", 40000))
        self.assertEqual(reply, replies.BLOCKLISTED(ip="2001:db8::7", lists="bl.example").wire())
        self.assertEqual(self.zone.asked, [f"{V6}.bl.example."])

    def test_an_ipv4_mapped_client_is_asked_about_as_ipv4(self):
        self.list_address("bl.example")
        reply = self.rcpt(peer=IPv6Address("TCP", "::ffff:192.0.2.7", 40000))
        self.assertTrue(reply.startswith(b"554 5.7.1 "), reply)
        self.assertEqual(self.zone.asked, [f"{V4}.bl.example."])

    def test_submission_is_never_checked(self):
        self.list_address("bl.example")
        self.connect("submission")
        self.assertEqual(self.zone.asked, [])


class FilterAndWeightTests(DNSBLTestCase):
    policy = {"dnsbl": ("zen.example=127.0.0.[2..11]*2", "weak.example", "other.example=127.0.0.[4;10]"),
              "dnsbl_threshold": 2}

    def test_an_answer_the_filter_leaves_out_does_not_count(self):
        self.list_address("zen.example", "127.255.255.254")  # the list's "you may not ask" code
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")

    def test_a_weight_below_the_threshold_passes_and_is_logged(self):
        self.list_address("weak.example")
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.listed(), [("passed", "192.0.2.7", ["weak.example:127.0.0.2"], 1)])

    def test_weights_add_up(self):
        self.list_address("weak.example")
        self.list_address("other.example", "127.0.0.10")
        self.assertEqual(self.rcpt(), replies.BLOCKLISTED(ip="192.0.2.7", lists="weak.example, other.example").wire())
        self.assertEqual(self.listed()[0][2:], (["weak.example:127.0.0.2", "other.example:127.0.0.10"], 2))

    def test_one_heavy_list_is_enough(self):
        self.list_address("zen.example", "127.0.0.11")
        self.assertEqual(self.rcpt(), replies.BLOCKLISTED(ip="192.0.2.7", lists="zen.example").wire())

    def test_every_list_is_asked_once(self):
        self.rcpt()
        self.assertEqual(sorted(self.zone.asked), sorted(f"{V4}.{zone}." for zone in
                                                         ("zen.example", "weak.example", "other.example")))


class AllowlistTests(DNSBLTestCase):
    policy = {"dnsbl": ("bl.example",), "dnswl": ("wl.example=127.0.[0..255].[1..3]*-2",)}

    def test_an_allowlisted_client_is_not_refused(self):
        self.list_address("bl.example")
        self.list_address("wl.example", "127.0.5.2")
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.listed(), [("passed", "192.0.2.7", ["bl.example:127.0.0.2", "wl.example:127.0.5.2"], -1)])

    def test_an_allowlist_answer_its_filter_leaves_out_does_not_count(self):
        self.list_address("bl.example")
        self.list_address("wl.example", "127.0.5.0")
        self.assertEqual(self.rcpt(), BLOCKED)


class GreylistAllowlistTests(DNSBLTestCase):
    policy = {"dnswl": ("wl.example",)}

    def make_config(self, **auth):
        base = super().make_config(**auth)
        return dataclasses.replace(base, limits=dataclasses.replace(base.limits, greylist=True))

    def test_an_allowlisted_client_is_not_greylisted(self):
        self.list_address("wl.example")
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")

    def test_another_client_is(self):
        self.assertEqual(self.rcpt(), replies.GREYLISTED.wire())


class FailOpenTests(DNSBLTestCase):
    policy = {"dnsbl": ("broken.example", "slow.example", "bl.example"), "dnsbl_timeout": 1}

    def test_a_failing_or_silent_list_is_ignored_and_logged(self):
        self.zone.fail(f"{V4}.broken.example")
        self.zone.drop(f"{V4}.slow.example")
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        warnings = sorted(e["zone"] for e in self.log if e.get("zone") and e["log_level"].name == "warn")
        self.assertEqual(warnings, ["broken.example", "slow.example"])

    def test_the_lists_that_answer_still_count(self):
        self.zone.fail(f"{V4}.broken.example")
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)

    def test_a_result_with_a_failed_list_holds_for_its_connection_only(self):
        self.zone.fail(f"{V4}.broken.example")
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)
        self.assertEqual(self.say(b"RCPT TO:<alice@example.org>\r\n"), BLOCKED)
        asked = self.zone.asked.count(f"{V4}.broken.example.")
        self.rcpt()
        self.assertEqual(self.zone.asked.count(f"{V4}.broken.example."), asked * 2)


class ConnectTests(DNSBLTestCase):
    policy = {"dnsbl": ("bl.example",), "dnsbl_at": "connect"}

    def test_a_listed_client_gets_554_instead_of_the_greeting_then_only_quit(self):
        self.list_address("bl.example")
        self.assertEqual(self.connect(), BLOCKED)
        self.assertFalse(self.transport.disconnecting)  # RFC 5321 3.1: wait for QUIT
        self.assertEqual(self.ehlo(), replies.REFUSED_SESSION.wire())
        self.assertEqual(self.say(b"MAIL FROM:<bob@example.net>\r\n"), replies.REFUSED_SESSION.wire())
        self.assertEqual(self.say(b"XYZZY\r\n"), replies.REFUSED_SESSION.wire())
        self.assertEqual(self.say(b"QUIT\r\n"), b"221 2.0.0 Bye\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual([e["result"] for e in audit_events(list(self.log), "rejection")], ["connect"])

    def test_a_refused_session_that_keeps_talking_is_closed(self):
        self.list_address("bl.example")
        self.connect()
        out = self.say(b"NOOP\r\n" * 5)  # max_command_errors is 5
        self.assertEqual(out, replies.REFUSED_SESSION.wire() * 5 + replies.TOO_MANY_ERRORS(host=self.config.hostname).wire())
        self.assertTrue(self.transport.disconnecting)

    def test_a_client_no_list_knows_is_greeted(self):
        self.assertEqual(self.connect(), b"220 mx.example.test ESMTP mailsrv\r\n")

    def test_postmaster_is_not_special_at_connect(self):
        self.list_address("bl.example")
        self.assertEqual(self.connect(), BLOCKED)
        self.assertEqual(self.say(b"RCPT TO:<postmaster@example.test>\r\n"), replies.REFUSED_SESSION.wire())


class TrustedTests(DNSBLTestCase):
    def make_config(self, **auth):
        base = super().make_config(**auth)
        return dataclasses.replace(base, policy=dataclasses.replace(base.policy, trusted_networks=("192.0.2.0/24",)))

    def test_a_trusted_client_is_not_looked_up(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(peer=IPv4Address("TCP", "192.0.2.7", 40000)), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.zone.asked, [])


class ReloadTests(DNSBLTestCase):
    """A SIGHUP's ``[policy]`` (:mod:`mailsrv.config.live`) judges the next client."""

    def reload(self, **policy) -> None:
        config = self.ctx.live.current
        self.ctx.live.replace(dataclasses.replace(config, policy=dataclasses.replace(config.policy, **policy)))

    def test_a_network_trusted_after_a_reload_is_not_refused(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)
        self.reload(trusted_networks=("192.0.2.0/24",))
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        self.assertEqual(len(self.listed()), 1)

    def test_a_list_added_by_a_reload_judges_the_next_client_though_the_old_answer_was_kept(self):
        self.list_address("other.example")
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")  # bl.example does not list it
        self.reload(dnsbl=("other.example",))
        self.assertEqual(self.rcpt(), replies.BLOCKLISTED(ip="192.0.2.7", lists="other.example").wire())

    def test_a_higher_threshold_lets_a_client_of_one_list_in(self):
        self.list_address("bl.example")
        self.reload(dnsbl_threshold=2)
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")


class ReloadTests(DNSBLTestCase):
    """``[policy] dnsbl`` changed by a SIGHUP: the next connection is judged by the lists the file names now."""

    policy = {"dnsbl": ()}

    def reload(self, **policy) -> None:
        config = self.ctx.live.current
        self.ctx.live.replace(dataclasses.replace(config, policy=dataclasses.replace(config.policy, **policy)))

    def test_a_list_added_by_a_reload_refuses_the_next_connection(self):
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.zone.asked, [])
        self.reload(dnsbl=("bl.example",))
        self.assertEqual(self.rcpt(), BLOCKED)

    def test_a_list_removed_by_a_reload_is_asked_no_more(self):
        self.reload(dnsbl=("bl.example",))
        self.list_address("bl.example")
        self.assertEqual(self.rcpt(), BLOCKED)
        self.reload(dnsbl=())
        self.zone.asked.clear()
        self.assertEqual(self.rcpt(), b"250 2.1.5 Ok\r\n")
        self.assertEqual(self.zone.asked, [])

"""The test name server answers the way the code under test expects from a real one."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.resolver
from twisted.internet import threads
from twisted.trial import unittest

from dns_harness import Zone, _udp_answer, serve_dns
from mailsrv.config import DNSConfig
from mailsrv.dns import make_resolver


class DNSHarnessTests(unittest.TestCase):
    def setUp(self) -> None:
        self.zone = Zone()
        port = serve_dns(self, self.zone)
        self.resolver = make_resolver(DNSConfig(nameservers=(f"127.0.0.1:{port}",)))

    def lookup(self, name: str, rdtype: str):
        # The server runs on the reactor, so the blocking lookup runs in a thread.
        return threads.deferToThread(self.resolver.resolve, name, rdtype)

    async def test_records_as_declared(self) -> None:
        self.zone.add("example.test", "MX", "10 mx.example.test.", "20 mx2.example.test.")
        answer = await self.lookup("example.test", "MX")
        self.assertEqual(sorted((r.preference, r.exchange.to_text()) for r in answer),
                         [(10, "mx.example.test."), (20, "mx2.example.test.")])

    async def test_a_long_txt_record_comes_over_tcp(self) -> None:
        value = "k" * 250
        self.zone.add("sel._domainkey.example.test", "TXT", " ".join(f'"{value}"' for _ in range(6)))
        answer = await self.lookup("sel._domainkey.example.test", "TXT")
        self.assertEqual(b"".join(answer[0].strings), value.encode() * 6)

    def test_udp_answers_fit_the_edns_payload_of_the_query(self) -> None:
        self.zone.add("example.test", "TXT", " ".join(f'"{"k" * 250}"' for _ in range(4)))
        query = dns.message.make_query("example.test", "TXT")
        self.assertTrue(dns.message.from_wire(_udp_answer(self.zone, query.to_wire())).flags & dns.flags.TC)
        query.use_edns(0, 0, 1232)
        self.assertEqual(len(dns.message.from_wire(_udp_answer(self.zone, query.to_wire())).answer), 1)

    async def test_signed_names_are_answered_with_ad(self) -> None:
        self.zone.add("mx.example.test", "A", "127.0.0.1")
        self.zone.add("_25._tcp.mx.example.test", "TLSA", "3 1 1 " + "ab" * 32)
        self.zone.add("other.example.test", "A", "127.0.0.1")
        self.zone.sign("mx.example.test", "_25._tcp.mx.example.test")
        secure = await self.lookup("_25._tcp.mx.example.test", "TLSA")
        self.assertTrue(secure.response.flags & dns.flags.AD)
        self.assertEqual((secure[0].usage, secure[0].selector, secure[0].mtype, secure[0].cert), (3, 1, 1, b"\xab" * 32))
        self.assertFalse((await self.lookup("other.example.test", "A")).response.flags & dns.flags.AD)
        with self.assertRaises(dns.resolver.NoAnswer) as denial:
            await self.lookup("mx.example.test", "AAAA")
        self.assertTrue(denial.exception.response().flags & dns.flags.AD)  # a validated denial

    def test_ad_only_for_a_query_that_asks_for_it(self) -> None:
        self.zone.add("mx.example.test", "A", "127.0.0.1")
        self.zone.sign("mx.example.test")
        query = dns.message.make_query("mx.example.test", "A")
        query.flags &= ~dns.flags.AD
        self.assertFalse(self.zone.answer(query).flags & dns.flags.AD)
        query.use_edns(0, dns.flags.DO)
        self.assertTrue(self.zone.answer(query).flags & dns.flags.AD)

    async def test_nodata_nxdomain_and_servfail(self) -> None:
        self.zone.add("example.test", "A", "127.0.0.1")
        self.zone.fail("broken.test")
        with self.assertRaises(dns.resolver.NoAnswer):
            await self.lookup("example.test", "MX")
        with self.assertRaises(dns.resolver.NXDOMAIN):
            await self.lookup("nowhere.test", "A")
        with self.assertRaises(dns.resolver.NoNameservers):
            await self.lookup("broken.test", "A")

    async def test_a_cname_is_followed_and_validated_only_when_the_whole_chain_is(self) -> None:
        self.zone.add("alias.example.test", "CNAME", "real.example.net.")
        self.zone.add("real.example.net", "A", "127.0.0.1")
        self.zone.sign("real.example.net")
        answer = await self.lookup("alias.example.test", "A")
        self.assertEqual(([r.address for r in answer], answer.canonical_name.to_text()), (["127.0.0.1"], "real.example.net."))
        self.assertFalse(answer.response.flags & dns.flags.AD)
        self.zone.sign("alias.example.test")
        self.resolver.cache.flush()
        self.assertTrue((await self.lookup("alias.example.test", "A")).response.flags & dns.flags.AD)

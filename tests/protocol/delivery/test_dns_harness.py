"""The test name server answers the way the code under test expects from a real one."""

from __future__ import annotations

import dns.resolver
from twisted.internet import threads
from twisted.trial import unittest

from dns_harness import Zone, serve_dns
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
        self.zone.add("sel._domainkey.example.test", "TXT", " ".join(f'"{value}"' for _ in range(4)))
        answer = await self.lookup("sel._domainkey.example.test", "TXT")
        self.assertEqual(b"".join(answer[0].strings), value.encode() * 4)

    async def test_nodata_nxdomain_and_servfail(self) -> None:
        self.zone.add("example.test", "A", "127.0.0.1")
        self.zone.fail("broken.test")
        with self.assertRaises(dns.resolver.NoAnswer):
            await self.lookup("example.test", "MX")
        with self.assertRaises(dns.resolver.NXDOMAIN):
            await self.lookup("nowhere.test", "A")
        with self.assertRaises(dns.resolver.NoNameservers):
            await self.lookup("broken.test", "A")

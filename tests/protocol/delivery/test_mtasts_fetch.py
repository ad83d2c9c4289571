"""Fetching an MTA-STS policy over HTTPS (RFC 8461 3.3) from a twisted.web server on loopback.

The policy host ``mta-sts.example.test`` resolves, in the test's DNS, to
127.0.0.1, where a twisted.web site with a certificate from the test CA
serves what each test puts at ``/.well-known/mta-sts.txt``.
"""

from __future__ import annotations

import gzip

from twisted.internet import reactor, ssl
from twisted.trial import unittest
from twisted.web import pages, resource, server, util

from dns_harness import Zone, serve_dns
from mailsrv.delivery.mtasts import fetch
from mailsrv.delivery.mtasts.fetch import Fetcher, FetchError
from mailsrv.dns import make_resolver
from mailsrv.config.dns import DNSConfig
from mailsrv.workers import PoolExecutor
from smtp_receiver import MailCA
import support

POLICY = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n"


class Text(resource.Resource):
    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes = b"text/plain") -> None:
        super().__init__()
        self.body = body
        self.content_type = content_type

    def render_GET(self, request: server.Request) -> bytes:
        request.setHeader(b"content-type", self.content_type)
        return self.body


class Gzipped(resource.Resource):
    """A gzip bomb: a small body that inflates far past the size limit, sent whatever was asked."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> bytes:
        self.accept_encoding = request.getHeader(b"accept-encoding")
        request.setHeader(b"content-type", b"text/plain")
        request.setHeader(b"content-encoding", b"gzip")
        return gzip.compress(b"#" * (64 * fetch.MAX_SIZE))


class Silent(resource.Resource):
    """Answers nothing, ever."""

    isLeaf = True

    def render_GET(self, request: server.Request) -> object:
        return server.NOT_DONE_YET


class FetchTests(unittest.TestCase):
    def setUp(self) -> None:
        zone = Zone()
        zone.add("mta-sts.example.test", "A", "127.0.0.1")
        resolver = make_resolver(DNSConfig(nameservers=(f"127.0.0.1:{serve_dns(self, zone)}",), timeout=2))
        self.pool = PoolExecutor(reactor, "dns", 2)
        self.pool.startService()
        self.addCleanup(self.pool.stopService)
        self.ca = MailCA()
        self.resolver = resolver
        self.root = resource.Resource()
        self.well_known = resource.Resource()
        self.root.putChild(b".well-known", self.well_known)

    def serve(self, child: resource.Resource, *names: str) -> Fetcher:
        self.well_known.putChild(b"mta-sts.txt", child)
        port = support.listen_loopback(self, server.Site(self.root),
                                       implicit_tls=self.ca.server_options(*(names or ("mta-sts.example.test",))))
        return Fetcher(reactor, self.resolver, self.pool, ssl.Certificate.loadPEM(self.ca.pem), port)

    async def test_a_policy_is_fetched(self) -> None:
        fetcher = self.serve(Text(POLICY.encode(), b"text/plain; charset=utf-8"))
        self.assertEqual(await fetcher.fetch("example.test"), POLICY)

    async def test_a_certificate_for_another_name_is_refused(self) -> None:
        fetcher = self.serve(Text(POLICY.encode()), "www.example.test")
        with self.assertRaisesRegex(FetchError, "DNSMismatch|certificate"):
            await fetcher.fetch("example.test")

    async def test_a_redirect_is_not_followed(self) -> None:
        fetcher = self.serve(util.Redirect(b"https://mta-sts.example.test/elsewhere"))
        with self.assertRaisesRegex(FetchError, "HTTP status 302"):
            await fetcher.fetch("example.test")

    async def test_only_200_counts(self) -> None:
        fetcher = self.serve(pages.notFound())
        with self.assertRaisesRegex(FetchError, "HTTP status 404"):
            await fetcher.fetch("example.test")

    async def test_the_media_type_must_be_text_plain(self) -> None:
        fetcher = self.serve(Text(POLICY.encode(), b"text/html"))
        with self.assertRaisesRegex(FetchError, "media type 'text/html'"):
            await fetcher.fetch("example.test")

    async def test_a_large_response_is_cut_off(self) -> None:
        fetcher = self.serve(Text(POLICY.encode() + b"#" * fetch.MAX_SIZE))
        with self.assertRaisesRegex(FetchError, "larger than"):
            await fetcher.fetch("example.test")

    async def test_a_content_coded_response_is_refused_unread(self) -> None:
        bomb = Gzipped()
        fetcher = self.serve(bomb)
        with self.assertRaisesRegex(FetchError, "content coding 'gzip'"):
            await fetcher.fetch("example.test")
        self.assertEqual(bomb.accept_encoding, b"identity")

    async def test_a_policy_host_without_an_address_fails(self) -> None:
        fetcher = self.serve(Text(POLICY.encode()))
        with self.assertRaisesRegex(FetchError, "mta-sts.other.test has no address"):
            await fetcher.fetch("other.test")

    async def test_a_silent_policy_host_times_out(self) -> None:
        self.patch(fetch, "TIMEOUT", 0.5)
        fetcher = self.serve(Silent())
        with self.assertRaisesRegex(FetchError, "no response within 0.5 s"):
            await fetcher.fetch("example.test")

"""The HTTP listeners on an in-memory transport: each page, its refusals, the body limit, /metrics."""

from __future__ import annotations

import dataclasses
import io
import plistlib
from xml.etree import ElementTree

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv.config.http import HTTPConfig
from mailsrv.http.autodiscover import OUTLOOK_NS, REQUEST_NS, RESPONSE_NS
from mailsrv.http.site import make_factory
from mailsrv.listeners import Kind
from mailsrv.mtasts_policy import policy_text
from support import make_context

LISTEN = configuration.ListenConfig(
    imaps=("tcp:993",), imap=("tcp:143",), pop3s=("tcp:995",), pop3=(), submissions=("tcp:465",),
    submission=("tcp:587",), smtp=("tcp:25",),
)
TOKEN = "s3cret-token"


def parse(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one HTTP/1.0 response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


class HTTPTestCase(unittest.TestCase):
    """A site of one listener kind on a StringTransport, with the metrics of its context."""

    def setUp(self) -> None:
        self.config = configuration.Config(
            hostname="mail.example.test", data_dir=self.mktemp(), domains=("example.test", "other.test"),
            listen=LISTEN, http=HTTPConfig(metrics_token=TOKEN, max_request_body=2048),
        )
        self.ctx = make_context(self.config)
        self.clock = task.Clock()

    def connect(self, kind: Kind = Kind.HTTP) -> StringTransport:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000))
        self.channel = make_factory(self.ctx, kind, self.clock).buildProtocol(None)
        self.channel.makeConnection(self.transport)
        return self.transport

    def fetch(self, path: str, *, method: str = "GET", host: str = "autoconfig.example.test", body: bytes = b"",
              headers: tuple[str, ...] = (), kind: Kind = Kind.HTTP) -> tuple[int, dict[str, str], bytes]:
        transport = self.connect(kind)
        lines = [f"{method} {path} HTTP/1.0", f"Host: {host}", *headers]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        self.channel.dataReceived("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        return parse(transport.value())


class AutoconfigTests(HTTPTestCase):
    """Thunderbird's config-v1.1.xml."""

    def provider(self, path: str, **kw) -> ElementTree.Element:
        status, headers, body = self.fetch(path, **kw)
        self.assertEqual((status, headers["content-type"]), (200, "application/xml; charset=utf-8"))
        root = ElementTree.fromstring(body)
        self.assertEqual((root.tag, root.get("version")), ("clientConfig", "1.1"))
        return root.find("emailProvider")

    def test_lists_every_client_listener_with_thunderbirds_fields(self):
        provider = self.provider("/mail/config-v1.1.xml?emailaddress=alice%40other.test")
        self.assertEqual(provider.get("id"), "other.test")
        self.assertEqual([d.text for d in provider.findall("domain")], ["other.test", "example.test"])
        servers = [
            (s.tag, s.get("type"), s.findtext("hostname"), s.findtext("port"), s.findtext("socketType"),
             s.findtext("authentication"), s.findtext("username"))
            for s in provider if s.tag in ("incomingServer", "outgoingServer")
        ]
        self.assertEqual(servers, [
            ("incomingServer", "imap", "mail.example.test", "993", "SSL", "password-cleartext", "%EMAILADDRESS%"),
            ("incomingServer", "imap", "mail.example.test", "143", "STARTTLS", "password-cleartext", "%EMAILADDRESS%"),
            ("incomingServer", "pop3", "mail.example.test", "995", "SSL", "password-cleartext", "%EMAILADDRESS%"),
            ("outgoingServer", "smtp", "mail.example.test", "465", "SSL", "password-cleartext", "%EMAILADDRESS%"),
            ("outgoingServer", "smtp", "mail.example.test", "587", "STARTTLS", "password-cleartext", "%EMAILADDRESS%"),
        ])

    def test_well_known_path_and_the_domain_from_the_host(self):
        provider = self.provider("/.well-known/autoconfig/mail/config-v1.1.xml", host="autoconfig.other.test")
        self.assertEqual(provider.get("id"), "other.test")

    def test_bad_and_foreign_addresses_are_refused(self):
        status, _, body = self.fetch("/mail/config-v1.1.xml?emailaddress=not-an-address")
        self.assertEqual(status, 400)
        self.assertIn(b"not an email address", body)
        self.assertEqual(self.fetch("/mail/config-v1.1.xml?emailaddress=bob%40gmail.com")[0], 404)
        self.assertEqual(self.fetch("/mail/config-v1.1.xml?emailaddress=%ff%40example.test")[0], 400)


class AutodiscoverTests(HTTPTestCase):
    """Outlook's POX autodiscover."""

    REQUEST = (
        f'<?xml version="1.0" encoding="utf-8"?><Autodiscover xmlns="{REQUEST_NS}"><Request>'
        "<EMailAddress>Alice@Example.test</EMailAddress>"
        f"<AcceptableResponseSchema>{OUTLOOK_NS}</AcceptableResponseSchema></Request></Autodiscover>"
    ).encode()

    def protocols(self, body: bytes) -> list[tuple[str, ...]]:
        root = ElementTree.fromstring(body)
        self.assertEqual(root.tag, f"{{{RESPONSE_NS}}}Autodiscover")
        account = root.find(f"{{{OUTLOOK_NS}}}Response/{{{OUTLOOK_NS}}}Account")
        self.assertEqual(account.findtext(f"{{{OUTLOOK_NS}}}Action"), "settings")
        return [
            tuple(p.findtext(f"{{{OUTLOOK_NS}}}{name}") for name in ("Type", "Server", "Port", "LoginName", "Encryption"))
            for p in account.findall(f"{{{OUTLOOK_NS}}}Protocol")
        ]

    def test_post_names_the_address_and_gets_every_protocol(self):
        status, headers, body = self.fetch("/autodiscover/autodiscover.xml", method="POST", body=self.REQUEST)
        self.assertEqual(status, 200)
        self.assertEqual(self.protocols(body)[0], ("IMAP", "mail.example.test", "993", "alice@example.test", "SSL"))
        self.assertIn(("SMTP", "mail.example.test", "587", "alice@example.test", "TLS"), self.protocols(body))

    def test_get_with_the_address_in_the_query_and_the_capitalised_path(self):
        status, _, body = self.fetch("/Autodiscover/Autodiscover.xml?emailaddress=alice%40example.test")
        self.assertEqual(status, 200)
        self.assertEqual(len(self.protocols(body)), 5)

    def test_bad_requests_are_refused_without_a_traceback(self):
        for body in (b"<not xml", b"<Autodiscover/>", b'<!DOCTYPE x [<!ENTITY a "aaaa">]><Autodiscover>&a;</Autodiscover>',
                     self.REQUEST.replace(b"Alice@Example.test", b"a b@example.test")):
            status, _, text = self.fetch("/autodiscover/autodiscover.xml", method="POST", body=body)
            self.assertEqual(status, 400, body)
            self.assertNotIn(b"Traceback", text)


class MobileConfigTests(HTTPTestCase):
    """The Apple profile."""

    def test_profile_is_a_plist_with_one_mail_payload(self):
        status, headers, body = self.fetch("/apple/mailsrv.mobileconfig?emailaddress=alice%40example.test")
        self.assertEqual((status, headers["content-type"]), (200, "application/x-apple-aspen-config"))
        profile = plistlib.loads(body)
        self.assertEqual(profile["PayloadType"], "Configuration")
        (mail,) = profile["PayloadContent"]
        self.assertEqual(
            {k: mail[k] for k in ("PayloadType", "EmailAccountType", "EmailAddress", "IncomingMailServerHostName",
                                  "IncomingMailServerPortNumber", "IncomingMailServerUseSSL",
                                  "OutgoingMailServerPortNumber", "OutgoingMailServerUsername")},
            {"PayloadType": "com.apple.mail.managed", "EmailAccountType": "EmailTypeIMAP",
             "EmailAddress": "alice@example.test", "IncomingMailServerHostName": "mail.example.test",
             "IncomingMailServerPortNumber": 993, "IncomingMailServerUseSSL": True,
             "OutgoingMailServerPortNumber": 465, "OutgoingMailServerUsername": "alice@example.test"})
        again = plistlib.loads(self.fetch("/apple/mailsrv.mobileconfig?emailaddress=alice%40example.test")[2])
        self.assertEqual(again["PayloadUUID"], profile["PayloadUUID"])

    def test_without_an_address_400(self):
        self.assertEqual(self.fetch("/apple/mailsrv.mobileconfig")[0], 400)


class MTASTSTests(HTTPTestCase):
    """The policy file, for mta-sts.<local domain> only."""

    def test_policy_for_each_local_domain(self):
        for domain in ("example.test", "other.test"):
            status, headers, body = self.fetch("/.well-known/mta-sts.txt", host=f"mta-sts.{domain}:443")
            self.assertEqual((status, headers["content-type"]), (200, "text/plain; charset=utf-8"))
            self.assertEqual(body.decode(), policy_text(self.config))
        self.assertIn(b"mx: mail.example.test\r\n", body)

    def test_other_hosts_get_no_policy(self):
        for host in ("mta-sts.gmail.com", "example.test", "autoconfig.example.test"):
            self.assertEqual(self.fetch("/.well-known/mta-sts.txt", host=host)[0], 404, host)


class RefusalTests(HTTPTestCase):
    """Unknown paths, wrong methods, oversized bodies."""

    def test_unknown_paths_404(self):
        for path in ("/", "/mail", "/mail/", "/mail/config-v1.1.xml/x", "/.well-known/", "/nothing"):
            status, _, body = self.fetch(path)
            self.assertEqual(status, 404, path)
            self.assertNotIn(b"Traceback", body)

    def test_wrong_method_405_with_allow(self):
        status, headers, _ = self.fetch("/mail/config-v1.1.xml", method="POST", body=b"x")
        self.assertEqual(status, 405)
        self.assertIn("GET", headers["allow"])
        self.assertEqual(self.fetch("/.well-known/mta-sts.txt", method="DELETE", host="mta-sts.example.test")[0], 405)

    def test_declared_body_past_the_limit_413_before_it_is_read(self):
        transport = self.connect()
        self.channel.dataReceived(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n"
                                  b"Content-Length: 100000000\r\n\r\n")
        self.assertEqual(parse(transport.value())[0], 413)
        self.assertTrue(transport.disconnecting)

    def test_chunked_body_past_the_limit_413(self):
        transport = self.connect()
        chunk = b"800\r\n" + b"a" * 0x800 + b"\r\n"
        self.channel.dataReceived(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n")
        self.assertEqual(parse(transport.value())[0], 413)
        self.assertEqual(transport.value().count(b"HTTP/1.1 "), 1)  # nothing after the refusal
        self.assertTrue(transport.disconnecting)

    def test_body_within_the_limit_is_read(self):
        self.assertEqual(self.fetch("/autodiscover/autodiscover.xml", method="POST",
                                    body=AutodiscoverTests.REQUEST)[0], 200)


class MetricsTests(HTTPTestCase):
    """/metrics: open on the metrics listener, behind the token on http."""

    def families(self, body: bytes) -> dict[str, object]:
        return {f.name: f for f in text_string_to_metric_families(body.decode())}

    def sample(self, body: bytes, name: str, **labels: str) -> float:
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        raise AssertionError(f"no sample {name} {labels}")

    def test_metrics_listener_serves_only_metrics_without_a_token(self):
        status, headers, body = self.fetch("/metrics", kind=Kind.METRICS)
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version="))
        self.assertIn("mailsrv_logins", self.families(body))
        self.assertEqual(self.fetch("/mail/config-v1.1.xml", kind=Kind.METRICS)[0], 404)

    def test_http_listener_wants_the_bearer_token(self):
        status, headers, _ = self.fetch("/metrics")
        self.assertEqual((status, headers["www-authenticate"]), (401, 'Bearer realm="mailsrv metrics"'))
        self.assertEqual(self.fetch("/metrics", headers=("Authorization: Bearer wrong",))[0], 401)
        self.assertEqual(self.fetch("/metrics", headers=(f"Authorization: bearer {TOKEN}",))[0], 200)

    def test_without_a_token_no_metrics_on_http(self):
        self.config = configuration.Config(data_dir=self.mktemp(), listen=LISTEN)
        self.ctx = make_context(self.config)
        self.assertEqual(self.fetch("/metrics", headers=(f"Authorization: Bearer {TOKEN}",))[0], 404)

    def test_audit_events_are_counted(self):
        from mailsrv.net.session import Session
        session = Session(Kind.IMAPS, StringTransport())
        self.ctx.audit.login(session, "alice@example.test", "PLAIN", "ok")
        self.ctx.audit.login(session, "alice@example.test", "PLAIN", "failed")
        self.ctx.audit.login(session, "alice@example.test", "PLAIN", "failed")
        self.ctx.audit.delivery("Q1", ["alice@example.test", "bob@example.test"], 10, "stored", file="f")
        self.ctx.audit.delivery("Q2", ["alice@example.test"], 10, "failed", reason="OSError")
        self.ctx.audit.rejection(session, "rcpt", "x@y", "550 5.7.1 relaying denied")
        self.ctx.audit.send("Q3", ["r@remote.test"], "delivered", host="mx", ip="192.0.2.1", tls="", reply="250",
                            next_retry=None, age=42.0)
        self.ctx.audit.send("Q4", ["r@remote.test", "s@remote.test"], "deferred", host="mx", ip="", tls="",
                            reply="451", next_retry=1.0, age=1.0)
        self.ctx.audit.send("Q5", ["gone@remote.test"], "failed", host="mx", ip="192.0.2.1", tls="",
                            reply="550 5.1.1 no such user", next_retry=None, age=3.0)
        body = self.fetch("/metrics", kind=Kind.METRICS)[2]
        self.assertEqual(self.sample(body, "mailsrv_messages_bounced_total"), 1)
        self.assertEqual(self.sample(body, "mailsrv_logins_total", protocol="imap", result="ok"), 1)
        self.assertEqual(self.sample(body, "mailsrv_logins_total", protocol="imap", result="failed"), 2)
        self.assertEqual(self.sample(body, "mailsrv_messages_delivered_total", via="local"), 2)
        self.assertEqual(self.sample(body, "mailsrv_messages_delivered_total", via="remote"), 1)
        self.assertEqual(self.sample(body, "mailsrv_messages_deferred_total"), 2)
        self.assertEqual(self.sample(body, "mailsrv_store_errors_total", error="OSError"), 1)
        self.assertEqual(self.sample(body, "mailsrv_rejections_total", stage="rcpt", code="5.7.1"), 1)
        self.assertEqual(self.sample(body, "mailsrv_delivery_latency_seconds_bucket", le="60.0"), 1)
        self.assertEqual(self.sample(body, "mailsrv_delivery_latency_seconds_bucket", le="15.0"), 0)

    def test_connections_and_open_sessions(self):
        self.connect()  # an HTTP connection is not a mail session
        from mailsrv.smtp.server import make_factory as smtp_factory
        smtp = smtp_factory(self.ctx, Kind.SUBMISSION, self.clock).buildProtocol(None)
        smtp.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 40001)))
        body = self.fetch("/metrics", kind=Kind.METRICS)[2]
        self.assertEqual(self.sample(body, "mailsrv_connections_total", protocol="smtp", kind="submission"), 1)
        self.assertEqual(self.sample(body, "mailsrv_sessions_open", protocol="smtp", kind="submission"), 1)
        smtp.connectionLost(None)
        body = self.fetch("/metrics", kind=Kind.METRICS)[2]
        self.assertNotIn("kind=\"submission\"", [l for l in body.decode().splitlines()
                                                 if l.startswith("mailsrv_sessions_open{")].__str__())

    def test_queue_size_and_oldest_age(self):
        body = self.fetch("/metrics", kind=Kind.METRICS)[2]
        self.assertEqual(self.sample(body, "mailsrv_queue_messages"), 0)
        self.assertEqual(self.sample(body, "mailsrv_queue_oldest_age_seconds"), 0)


class AccessLogTests(HTTPTestCase):
    def test_access_lines_leave_out_the_query_string(self):
        """A client's address (``?emailaddress=``) never reaches the log."""
        out = io.StringIO()
        factory = make_factory(self.ctx, Kind.HTTP, self.clock)
        factory.logFile = out
        channel = factory.buildProtocol(None)
        channel.makeConnection(StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.7", 40000)))
        channel.dataReceived(b"GET /mail/config-v1.1.xml?emailaddress=alice%40example.test HTTP/1.0\r\n"
                             b"Host: autoconfig.example.test\r\n\r\n")
        line = out.getvalue()
        self.assertIn('"GET /mail/config-v1.1.xml HTTP/1.0" 200', line)
        self.assertNotIn("alice", line)


class ACMEChallengeTests(HTTPTestCase):
    """``/.well-known/acme-challenge/<token>`` with ``[tls] acme`` (RFC 8555 8.3)."""

    def setUp(self) -> None:
        super().setUp()
        self.config = dataclasses.replace(self.config, tls=configuration.TLSConfig(
            acme=True, acme_directory="https://ca.example/dir"))
        self.ctx = make_context(self.config)

    def test_a_published_token_answers_its_key_authorization_on_any_host(self):
        self.ctx.acme_tokens.publish("tok_EN-1", "tok_EN-1.thumbprint")
        for kind in (Kind.HTTP, Kind.HTTPS):
            status, headers, body = self.fetch("/.well-known/acme-challenge/tok_EN-1", host="mail.example.test",
                                               kind=kind)
            self.assertEqual((status, headers["content-type"], body),
                             (200, "application/octet-stream", b"tok_EN-1.thumbprint"))

    def test_unknown_and_withdrawn_tokens_are_404(self):
        self.ctx.acme_tokens.publish("tok", "tok.thumbprint")
        self.ctx.acme_tokens.withdraw("tok")
        self.assertEqual(self.fetch("/.well-known/acme-challenge/tok")[0], 404)
        self.assertEqual(self.fetch("/.well-known/acme-challenge/other")[0], 404)
        self.assertEqual(self.fetch("/.well-known/acme-challenge/")[0], 404)

    def test_metrics_listener_serves_no_tokens(self):
        self.ctx.acme_tokens.publish("tok", "tok.thumbprint")
        self.assertEqual(self.fetch("/.well-known/acme-challenge/tok", kind=Kind.METRICS)[0], 404)


class NoACMETests(HTTPTestCase):
    def test_without_acme_there_is_no_challenge_path(self):
        self.assertIsNone(self.ctx.acme_tokens)
        self.assertEqual(self.fetch("/.well-known/acme-challenge/tok")[0], 404)

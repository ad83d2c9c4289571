"""Port 25 sender authentication: SPF, DKIM, DMARC and ARC against the test's own DNS.

Each test is an SMTP session from 192.0.2.7 (outside ``trusted_networks``)
whose lookups go to a name server on 127.0.0.1 serving the zone the test
declares: SPF and DMARC records, and DKIM keys made here, with which the
test signs (and forges) its messages.  What is checked is the
Authentication-Results field the stored message starts with (RFC 8601),
the 550 of a DMARC p=reject failure and the Junk folder of p=quarantine.
"""

from __future__ import annotations

import re

import dkim

from dns_harness import ThreadedDNS, Zone
from mailsrv import config as configuration
from mailsrv.dkim.keys import Algorithm, generate, load
from mailsrv.dns import make_resolver
from mailsrv.store import names
from support import make_context
from test_smtp_session import FakeDirectory, FakeStore, SMTPTestCase, HOST

QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as [0-9A-Z]{12}\r\n\Z")
PEER = "192.0.2.7"
_KEYS: dict[str, bytes] = {}


def key(name: str) -> bytes:
    """A PEM RSA key per name, made once per test run (2048 bits take a moment)."""
    if name not in _KEYS:
        _KEYS[name] = generate(Algorithm.RSA)
    return _KEYS[name]


def publish_key(zone: Zone, domain: str, selector: str, pem: bytes) -> None:
    """The key's record in *zone*, as ``mailsrv dkim keygen`` prints it."""
    record = load(pem, domain, selector).record
    _, _, value = record.partition(" IN TXT ")
    zone.add(f"{selector}._domainkey.{domain}", "TXT", value)


def message(author: str = "bob@example.net", subject: str = "hi", extra: bytes = b"") -> bytes:
    return extra + (f"From: Bob <{author}>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
                    f"Message-ID: <1@example.net>\r\n\r\nHello.\r\n").encode()


def sign(data: bytes, domain: str = "example.net", selector: str = "s1", pem: bytes | None = None) -> bytes:
    signature = dkim.sign(data, selector.encode(), domain.encode(), pem or key(domain),
                          include_headers=[b"from", b"to", b"subject", b"message-id"])
    return signature + data


class SenderAuthTestCase(SMTPTestCase):
    """A session against a context whose resolver asks :attr:`zone` (example.net publishes everything)."""

    trusted: tuple[str, ...] = ()
    dmarc_reject = True

    def setUp(self) -> None:
        self.zone = Zone()
        self.zone.add("example.net", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        self.zone.add("_dmarc.example.net", "TXT", '"v=DMARC1; p=reject"')
        publish_key(self.zone, "example.net", "s1", key("example.net"))
        self.dns = ThreadedDNS(self.zone).__enter__()
        self.addCleanup(self.dns.__exit__)
        super().setUp()
        resolver = make_resolver(configuration.DNSConfig(nameservers=(f"127.0.0.1:{self.dns.port}",), timeout=2))
        self.ctx = make_context(self.config, store=self.store, directory=FakeDirectory(), checker=self.checker,
                                tls_options=object(), resolver=resolver)

    def make_config(self, **auth):
        base = super().make_config(**auth)
        return configuration.Config(
            data_dir=base.data_dir, hostname=base.hostname, domains=base.domains, limits=base.limits,
            auth=base.auth,
            policy=configuration.PolicyConfig(trusted_networks=self.trusted, dmarc_reject=self.dmarc_reject),
        )

    def send(self, data: bytes, sender: str = "bob@example.net", helo: str = "client.example.net") -> bytes:
        """One transaction to alice; the reply to the data."""
        self.connect()
        self.say(f"EHLO {helo}\r\n".encode())
        self.assertEqual(self.say(f"MAIL FROM:<{sender}>\r\n".encode()), b"250 2.1.0 Ok\r\n")
        self.assertEqual(self.say(b"RCPT TO:<alice@example.test>\r\n"), b"250 2.1.5 Ok\r\n")
        self.say(b"DATA\r\n")
        return self.say(data + b".\r\n")

    def results(self, data: bytes, **kwargs: str) -> list[str]:
        """Send *data*; the results of our A-R field (first line of the stored message), one per resinfo."""
        self.assertRegex(self.send(data, **kwargs), QUEUED)
        stored = self.store.calls[-1][1]
        self.assertTrue(stored.startswith(b"Authentication-Results: " + HOST.encode() + b";\r\n\t"), stored[:200])
        field = re.match(rb"Authentication-Results: [^;]+;((?:\r\n\t.*)+)\r\n(?! )", stored).group(1)
        return [part.strip() for part in field.decode().replace("\r\n\t", " ").split(";")]


class AllPassTests(SenderAuthTestCase):
    def test_signed_mail_from_the_right_address_passes_everything(self):
        self.assertEqual(self.results(sign(message())), [
            "spf=pass smtp.mailfrom=bob@example.net",
            "spf=none smtp.helo=client.example.net",
            "dkim=pass header.d=example.net header.s=s1 header.b=" + self.b_tag(),
            "dmarc=pass header.from=example.net",
            "arc=none",
        ])
        self.assertEqual(self.store.folders, [[names.INBOX]])

    def b_tag(self) -> str:
        stored = self.store.calls[-1][1]
        return re.search(rb"\bb=([A-Za-z0-9+/]{8})", stored.split(b"DKIM-Signature:", 1)[1]).group(1).decode()


class SPFTests(SenderAuthTestCase):
    def spf(self, record: str | None, sender: str = "bob@spf.example") -> str:
        if record is not None:
            self.zone.add("spf.example", "TXT", record)
        return self.results(message("bob@spf.example"), sender=sender)[0]

    def test_pass(self):
        self.assertEqual(self.spf('"v=spf1 ip4:192.0.2.0/24 -all"'), "spf=pass smtp.mailfrom=bob@spf.example")

    def test_fail(self):
        self.assertEqual(self.spf('"v=spf1 ip4:198.51.100.1 -all"'), "spf=fail smtp.mailfrom=bob@spf.example")

    def test_softfail(self):
        self.assertEqual(self.spf('"v=spf1 ~all"'), "spf=softfail smtp.mailfrom=bob@spf.example")

    def test_neutral(self):
        self.assertEqual(self.spf('"v=spf1 ?all"'), "spf=neutral smtp.mailfrom=bob@spf.example")

    def test_none_without_a_record(self):
        self.assertEqual(self.spf(None, sender="bob@nothing.example"), "spf=none smtp.mailfrom=bob@nothing.example")

    def test_permerror_for_two_records(self):
        self.zone.add("spf.example", "TXT", '"v=spf1 -all"', '"v=spf1 +all"')  # RFC 7208 4.5
        self.assertEqual(self.spf(None), "spf=permerror smtp.mailfrom=bob@spf.example")

    def test_temperror_when_the_name_server_fails(self):
        self.zone.fail("spf.example")
        self.assertEqual(self.spf(None), "spf=temperror smtp.mailfrom=bob@spf.example")

    def test_helo_is_checked_too(self):
        self.zone.add("mx.spf.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        results = self.results(message("bob@spf.example"), sender="bob@spf.example", helo="mx.spf.example")
        self.assertEqual(results[1], "spf=pass smtp.helo=mx.spf.example")

    def test_null_sender_is_checked_as_postmaster_at_helo(self):
        # RFC 7208 2.4
        self.zone.add("mx.spf.example", "TXT", '"v=spf1 ip4:192.0.2.7 -all"')
        results = self.results(message("bob@spf.example"), sender="", helo="mx.spf.example")
        self.assertEqual(results[0], "spf=pass smtp.mailfrom=postmaster@mx.spf.example")

    def test_address_literal_helo_has_no_helo_result(self):
        results = self.results(sign(message()), helo="[192.0.2.7]")
        self.assertEqual(results[:2], ["spf=pass smtp.mailfrom=bob@example.net", results[1]])
        self.assertTrue(results[1].startswith("dkim="))

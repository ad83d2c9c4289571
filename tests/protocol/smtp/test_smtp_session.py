"""SMTP sessions on an in-memory transport: greeting, EHLO, the small commands.

This module also holds :class:`SMTPTestCase`, the fixture every
``test_smtp_*`` protocol test builds on: fake directory, store and password
checker, the real realm, and helpers that read like an RFC 5321 session
(``say`` sends one packet and returns exactly what the server answered).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.trial import unittest
from zope.interface import alsoProvides, implementer

from mailsrv import config as configuration
from mailsrv.listeners import Kind
from mailsrv.message import wire
from mailsrv.smtp.data import DataReader
from mailsrv.smtp.server import SMTPServer, make_factory
from mailsrv.store.maildirsize import Limits
from support import FakeChecker, TCPStringTransport, audit_events, make_context

HOST = "mx.example.test"
MAX_SIZE = 4096
MAX_LINE = 1000


class FakeDirectory:
    """alice, bob, carol and postmaster in two local domains; ``team@`` is an alias."""

    domains = ("example.test", "example.org")
    users = {"alice@example.test", "bob@example.test", "carol@example.test", "postmaster@example.test"}
    aliases = {"team@example.test": ["alice@example.test", "bob@example.test"], "postmaster@example.org": ["postmaster@example.test"]}

    def is_local_domain(self, domain: str) -> bool:
        return domain.lower() in self.domains

    def resolve(self, address: str) -> list[str]:
        address = address.lower()
        if address in self.users:
            return [address]
        return list(self.aliases.get(address, []))

    def may_send_as(self, login: str, address: str) -> bool:
        """Own address and aliases (the real rules are tested on the real Directory)."""
        return login in self.resolve(address)

    def configure(self, config: configuration.Config) -> None:
        """A SIGHUP's new configuration: nothing of it is kept here."""

    def quota(self, address: str) -> Limits:
        """No limits (quotas are tested on the real Directory and store)."""
        return Limits()


#: The Maildir name the fake store "writes" (a test fires pending deliveries with it).
STORED_AS = "1796164893.M512034P4711Q12.test,S=208,W=212"


class FakeStore:
    """Records every ``deliver`` (addresses, wire-form octets); in manual mode its
    Deferreds fire when the test says so."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bytes]] = []
        self.folders: list[list[str]] = []
        self.manual = False
        self.pending: list[defer.Deferred[None]] = []

    def deliver(self, targets: list[Any], body: Any) -> defer.Deferred[str]:
        self.calls.append(([t.address for t in targets], wire.to_wire(body.read())))
        self.folders.append([t.folder for t in targets])
        if not self.manual:
            return defer.succeed(STORED_AS)
        d: defer.Deferred[str] = defer.Deferred()
        self.pending.append(d)
        return d


class FakeHandle:
    """What ``getHandle()`` gives on a TLS transport: the pyOpenSSL connection."""

    def get_protocol_version_name(self) -> str:
        return "TLSv1.3"

    def get_cipher_name(self) -> str:
        return "TLS_AES_256_GCM_SHA384"


@implementer(ITLSTransport)
class TLSStringTransport(TCPStringTransport):
    """A TCP StringTransport that can pretend to start TLS."""

    tls_options: object = None

    def startTLS(self, options: object) -> None:
        self.tls_options = options
        alsoProvides(self, ISSLTransport)

    def getHandle(self) -> FakeHandle:
        return FakeHandle()


class SMTPTestCase(unittest.TestCase):
    """Fakes, a portal, and helpers to talk to one session."""

    peer = IPv4Address("TCP", "192.0.2.7", 40000)
    kind = "smtp"

    def setUp(self) -> None:
        self.config = self.make_config()
        self.store = FakeStore()
        self.checker = FakeChecker()
        self.ctx = make_context(
            self.config, store=self.store, directory=FakeDirectory(), checker=self.checker, tls_options=object()
        )
        self.clock = task.Clock()
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def make_config(self, **auth: Any) -> configuration.Config:
        return configuration.Config(
            data_dir=self.mktemp(),
            hostname=HOST,
            domains=("example.test", "example.org"),
            limits=configuration.LimitsConfig(
                max_message_size=MAX_SIZE,
                max_line_length=MAX_LINE,
                max_recipients=5,
                max_command_errors=5,
                smtp_timeout=300,
            ),
            auth=configuration.AuthConfig(**auth),
        )

    def connect(self, kind: str | None = None, secure: bool = False, peer: IPv4Address | None = None) -> bytes:
        """Open a session; *secure* makes the transport TLS from the start. Returns the greeting."""
        self.transport = TLSStringTransport(peerAddress=peer or self.peer)
        if secure:
            alsoProvides(self.transport, ISSLTransport)
        self.server = make_factory(self.ctx, Kind.named(kind or self.kind), self.clock).buildProtocol(None)
        self.server.makeConnection(self.transport)
        return self.transport.value()

    def say(self, data: bytes) -> bytes:
        """Send *data* (one packet) and return everything the server answered."""
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def ehlo(self) -> bytes:
        return self.say(b"EHLO client.example.net\r\n")

    def transactions(self) -> list[dict[str, Any]]:
        return audit_events(list(self.log), "transaction")

    def logins(self) -> list[tuple[str, str, str]]:
        return [(e["user"], e["client_ip"], e["result"]) for e in audit_events(list(self.log), "login")]


class GreetingTests(SMTPTestCase):
    def test_greeting_names_the_configured_host(self):
        self.assertEqual(self.connect(), b"220 mx.example.test ESMTP mailsrv\r\n")

    def test_tcp_nodelay_is_set(self):
        self.connect()
        self.assertTrue(self.transport.nodelay)

    def test_ehlo_on_port_25_advertises_real_extensions_and_no_auth(self):
        self.connect()
        self.assertEqual(
            self.ehlo(),
            b"250-mx.example.test\r\n"
            b"250-PIPELINING\r\n"
            b"250-SIZE 4096\r\n"
            b"250-8BITMIME\r\n"
            b"250-ENHANCEDSTATUSCODES\r\n"
            b"250-DSN\r\n"
            b"250-CHUNKING\r\n"
            b"250-BINARYMIME\r\n"
            b"250-SMTPUTF8\r\n"
            b"250-LIMITS RCPTMAX=5 MAILMAX=100\r\n"
            b"250 STARTTLS\r\n",
        )

    def test_ehlo_under_tls_drops_starttls_and_offers_requiretls(self):
        self.connect(secure=True)
        ehlo = self.ehlo()
        self.assertNotIn(b"STARTTLS", ehlo)
        self.assertIn(b"250-BINARYMIME\r\n250-SMTPUTF8\r\n", ehlo)
        self.assertIn(b"250 REQUIRETLS\r\n", ehlo)  # RFC 8689 3: only over TLS

    def test_helo_lists_no_extensions(self):
        self.connect()
        self.assertEqual(self.say(b"HELO client.example.net\r\n"), b"250 mx.example.test\r\n")

    def test_ehlo_needs_a_name(self):
        self.connect()
        self.assertEqual(self.say(b"EHLO\r\n"), b"501 5.5.4 Syntax: EHLO hostname\r\n")
        self.assertEqual(self.say(b"EHLO bad\x00name\r\n"), b"501 5.5.4 Syntax: EHLO hostname\r\n")

    def test_unknown_kind_is_refused(self):
        self.assertRaises(ValueError, make_factory, self.ctx, Kind.POP3)


class SmallCommandTests(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()
        self.ehlo()

    def test_noop(self):
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")

    def test_rset(self):
        self.assertEqual(self.say(b"RSET\r\n"), b"250 2.0.0 Ok\r\n")

    def test_vrfy_neither_confirms_nor_denies(self):
        reply = b"252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery\r\n"
        self.assertEqual(self.say(b"VRFY alice\r\n"), reply)
        self.assertEqual(self.say(b"VRFY nobody\r\n"), reply)

    def test_help_lists_only_what_port_25_takes(self):
        # No AUTH on the MX port (it would get 502), no STARTTLS under TLS (503).
        self.assertEqual(
            self.say(b"HELP\r\n"),
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS\r\n"
            b"214 2.0.0 See RFC 5321\r\n",
        )
        self.say(b"STARTTLS\r\n")
        self.assertEqual(
            self.say(b"HELP\r\n"),
            b"214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT\r\n"
            b"214 2.0.0 See RFC 5321\r\n",
        )

    def test_quit(self):
        self.assertEqual(self.say(b"QUIT\r\n"), b"221 2.0.0 Bye\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_unknown_command(self):
        self.assertEqual(self.say(b"EXPN staff\r\n"), b"500 5.5.2 Error: command not recognized\r\n")

    def test_nul_and_8bit_commands_get_500_not_a_dropped_connection(self):
        self.assertEqual(self.say(b"\x00\xff\xfe\r\n"), b"500 5.5.2 Error: command not recognized\r\n")
        self.assertEqual(self.say(b"N\xc3\xb6OP\r\n"), b"500 5.5.2 Error: command not recognized\r\n")
        self.assertEqual(self.say(b"MAIL FROM:<a\x00@b.example>\r\n")[:4], b"501 ")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(self.say(b"NOOP\r\n"), b"250 2.0.0 Ok\r\n")

    def test_a_bare_lf_or_cr_in_a_command_is_500_and_the_next_line_is_a_command(self):
        # Were "BDAT 10 LAST\n" taken, the 10 octets after it would be read as a chunk.
        bare = b"500 5.5.2 Error: bare CR or LF in command, lines must end in CRLF\r\n"
        self.ehlo()
        self.assertEqual(self.say(b"BDAT  10  LAST\n\r\n"), bare)
        self.assertEqual(self.say(b"NOOP\rRSET\r\n"), bare)
        self.assertEqual(self.say(b".\r\nNOOP\r\n"), b"500 5.5.2 Error: command not recognized\r\n250 2.0.0 Ok\r\n")

    def test_a_bug_while_running_a_command_is_421_and_logged(self):
        # RFC 5321 4.2.1: 421 makes the client retry later; nothing is lost to our bug.
        self.patch(SMTPServer, "do_NOOP", lambda server, rest: 1 // 0)
        self.assertEqual(self.say(b"NOOP\r\nRSET\r\n"), b"421 4.3.0 mx.example.test Error: internal error\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_a_bug_in_the_chunked_body_path_is_421_too(self):
        self.ehlo()
        self.say(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n")
        self.assertEqual(self.say(b"DATA\r\n")[:4], b"354 ")
        self.patch(DataReader, "_lines", lambda reader, body: 1 // 0)
        self.assertEqual(self.say(b"Subject: x\r\n\r\nbody\r\n"), b"421 4.3.0 mx.example.test Error: internal error\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_empty_line(self):
        self.assertEqual(self.say(b"\r\n"), b"500 5.5.2 Error: bad syntax\r\n")

    def test_too_many_errors_end_the_session(self):
        replies = self.say(b"FOO\r\n" * 5 + b"NOOP\r\n")
        self.assertEqual(
            replies,
            b"500 5.5.2 Error: command not recognized\r\n" * 5 + b"421 4.7.0 mx.example.test Error: too many errors\r\n",
        )
        self.assertTrue(self.transport.disconnecting)

    def test_idle_timeout(self):
        self.transport.clear()
        self.clock.advance(299)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(1)
        self.assertEqual(self.transport.value(), b"421 4.4.2 mx.example.test Error: timeout exceeded\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_mail_needs_ehlo_first(self):
        self.connect()
        self.assertEqual(self.say(b"MAIL FROM:<a@b.example>\r\n"), b"503 5.5.1 Error: send HELO/EHLO first\r\n")

    def test_auth_is_not_offered_on_port_25(self):
        self.assertEqual(self.say(b"AUTH PLAIN AGFsaWNlAHg=\r\n"), b"502 5.5.1 Error: authentication not enabled\r\n")

"""POP3 sessions on an in-memory transport, over a real store in a temp dir.

Each test reads like an RFC 1939 example session: what the client sends,
what the server answers, byte for byte.
"""

from __future__ import annotations

import base64
import os

from twisted.internet import task
from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.test import iosim
from twisted.protocols.basic import LineOnlyReceiver
from twisted.trial import unittest
from zope.interface import alsoProvides

from mailsrv import config as configuration
from mailsrv.listeners import Kind
from mailsrv.message.body import Body
from mailsrv.pop3.maildrop import unique_id
from mailsrv.pop3.server import make_factory
from mailsrv.store import Target
from support import ALICE, PASSWORD, FakeChecker, FakeTLS, TCPStringTransport, audit_events, make_context

LOGIN = b"USER alice@example.test\r\nPASS correct horse\r\n"
MESSAGE = b"From: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


class POP3TestCase(unittest.TestCase):
    """A store with alice's INBOX, a portal, and helpers to talk to a session."""

    peer = IPv4Address("TCP", "192.0.2.7", 40000)

    def setUp(self) -> None:
        self.config = configuration.Config(data_dir=self.mktemp())
        self.checker = FakeChecker()
        self.ctx = make_context(self.config, checker=self.checker, tls_options=FakeTLS())
        self.store = self.ctx.store
        self.clock = task.Clock()
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def inbox(self):
        return self.successResultOf(self.store.user(ALICE).open("INBOX"))

    async def deliver(self, *messages: bytes) -> None:
        for data in messages:
            await self.store.deliver([Target(ALICE)], Body.from_wire(data))

    def connect(self, secure: bool = True, kind: str = "pop3", peer=None) -> None:
        """Open a session; *secure* makes the transport look like TLS."""
        self.transport = TCPStringTransport(peerAddress=peer or self.peer)
        if secure:
            alsoProvides(self.transport, ISSLTransport)
        self.server = self.build(kind)
        self.server.makeConnection(self.transport)

    def build(self, kind: str = "pop3"):
        """A server protocol whose idle timer runs on ``self.clock``, not the reactor."""
        return make_factory(self.ctx, Kind.named(kind), self.clock).buildProtocol(None)

    def say(self, data: bytes) -> bytes:
        """Send *data* (one packet) and return everything the server answered."""
        self.transport.clear()
        self.server.dataReceived(data)
        return self.transport.value()

    def after_failure(self) -> bytes:
        """What the server has answered once a failed login's reply was held its second (``[auth] throttle_delay``)."""
        self.clock.advance(self.config.auth.throttle_delay)
        return self.transport.value()

    def login(self) -> None:
        self.connect()
        self.assertEqual(self.say(LOGIN), b"+OK Send PASS\r\n+OK Logged in.\r\n")

    def logins(self) -> list[tuple[str, str, str]]:
        return [(e["user"], e["client_ip"], e["result"]) for e in audit_events(list(self.log), "login")]


class GreetingAndCapabilityTests(POP3TestCase):
    def test_greeting_has_no_apop_timestamp(self):
        self.connect()
        self.assertEqual(self.transport.value(), b"+OK mailsrv ready.\r\n")

    def test_tcp_nodelay_is_set(self):
        self.connect(secure=False)
        self.assertTrue(self.transport.nodelay)

    def test_capa_in_clear_offers_stls_but_no_password_mechanism(self):
        self.connect(secure=False)
        self.assertEqual(
            self.say(b"CAPA\r\n"),
            b"+OK Capability list follows\r\n"
            b"TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nSTLS\r\nIMPLEMENTATION mailsrv\r\n.\r\n",
        )

    def test_capa_under_tls_offers_passwords_and_no_stls(self):
        self.connect(secure=True)
        self.assertEqual(
            self.say(b"capa\r\n"),
            b"+OK Capability list follows\r\n"
            b"TOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nUSER\r\nSASL PLAIN\r\nIMPLEMENTATION mailsrv\r\n.\r\n",
        )

    def test_capa_on_loopback_when_allowed_offers_both(self):
        self.config = configuration.Config(
            data_dir=self.config.data_dir, auth=configuration.AuthConfig(allow_plaintext_auth_on_loopback=True)
        )
        self.ctx.config = self.config
        self.connect(secure=False, peer=IPv4Address("TCP", "127.0.0.1", 40000))
        caps = self.say(b"CAPA\r\n").split(b"\r\n")
        self.assertIn(b"USER", caps)
        self.assertIn(b"SASL PLAIN", caps)
        self.assertIn(b"STLS", caps)

    def test_pop3s_never_offers_stls(self):
        self.connect(secure=True, kind="pop3s")
        self.assertNotIn(b"STLS", self.say(b"CAPA\r\n"))
        self.assertEqual(self.say(b"STLS\r\n"), b"-ERR Command not permitted when TLS active\r\n")

    def test_capa_after_login_is_unchanged(self):
        self.connect()
        before = self.say(b"CAPA\r\n")
        self.say(LOGIN)
        self.assertEqual(self.say(b"CAPA\r\n"), before)

    def test_unknown_kind_is_refused(self):
        self.assertRaises(ValueError, make_factory, self.ctx, Kind.IMAP)


class PlaintextRefusalTests(POP3TestCase):
    """RFC 2595 section 2.3: no clear-text password before TLS."""

    refusal = b"-ERR [AUTH] Plaintext authentication disallowed on non-secure connections\r\n"

    def test_user_refused_in_clear(self):
        self.connect(secure=False)
        self.assertEqual(self.say(b"USER alice@example.test\r\n"), self.refusal)

    def test_pass_refused_in_clear(self):
        self.connect(secure=False)
        self.assertEqual(self.say(b"PASS correct horse\r\n"), self.refusal)

    def test_auth_refused_in_clear(self):
        self.connect(secure=False)
        self.assertEqual(self.say(b"AUTH PLAIN AGFsaWNlAHg=\r\n"), self.refusal)
        self.assertEqual(self.logins(), [])


class UserPassTests(POP3TestCase):
    def test_login_logged_with_client_ip(self):
        self.login()
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "ok")])

    def test_bad_password(self):
        self.connect()
        self.assertEqual(
            self.say(b"USER alice@example.test\r\nPASS wrong\r\n"), b"+OK Send PASS\r\n"
        )
        self.assertEqual(self.after_failure(), b"+OK Send PASS\r\n-ERR [AUTH] Invalid credentials\r\n")
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "failed")])
        self.assertEqual(self.say(b"STAT\r\n"), b"-ERR Command not valid in this state\r\n")

    def test_pass_without_user(self):
        self.connect()
        self.assertEqual(self.say(b"PASS correct horse\r\n"), b"-ERR USER first\r\n")

    def test_user_pass_not_valid_after_login(self):
        self.login()
        self.assertEqual(self.say(b"USER alice@example.test\r\n"), b"-ERR Command not valid in this state\r\n")

    def test_pipelined_commands_wait_for_a_slow_login_and_answer_in_order(self):
        self.checker.clock = clock = task.Clock()
        self.connect()
        self.assertEqual(self.say(LOGIN + b"STAT\r\nNOOP\r\n"), b"+OK Send PASS\r\n")
        self.assertEqual(self.transport.producerState, "paused")
        self.transport.clear()
        clock.advance(1)
        self.assertEqual(self.transport.value(), b"+OK Logged in.\r\n+OK 0 0\r\n+OK\r\n")
        self.assertEqual(self.transport.producerState, "producing")

    def test_login_finishing_after_disconnect_logs_out(self):
        self.checker.clock = clock = task.Clock()
        self.connect()
        self.say(LOGIN)
        self.server.connectionLost(None)
        clock.advance(1)
        self.assertIsNone(self.server.maildrop)


class AuthPlainTests(POP3TestCase):
    """RFC 5034 AUTH with the PLAIN mechanism (RFC 4616)."""

    def plain(self, authzid: bytes, user: bytes, password: bytes) -> bytes:
        return base64.b64encode(authzid + b"\0" + user + b"\0" + password)

    def test_initial_response(self):
        self.connect()
        self.assertEqual(
            self.say(b"AUTH PLAIN " + self.plain(b"", ALICE.encode(), PASSWORD) + b"\r\n"), b"+OK Logged in.\r\n"
        )
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "ok")])

    def test_continuation(self):
        self.connect()
        self.assertEqual(self.say(b"AUTH PLAIN\r\n"), b"+ \r\n")
        self.assertEqual(self.say(self.plain(ALICE.encode(), ALICE.encode(), PASSWORD) + b"\r\n"), b"+OK Logged in.\r\n")

    def test_wrong_password(self):
        self.connect()
        self.assertEqual(
            self.say(b"AUTH PLAIN " + self.plain(b"", ALICE.encode(), b"nope") + b"\r\n"), b""
        )
        self.assertEqual(self.after_failure(), b"-ERR [AUTH] Invalid credentials\r\n")
        self.assertEqual(self.logins(), [(ALICE, "192.0.2.7", "failed")])

    def test_authorizing_as_another_user_is_refused(self):
        self.connect()
        self.assertEqual(
            self.say(b"AUTH PLAIN " + self.plain(b"bob@example.test", ALICE.encode(), PASSWORD) + b"\r\n"), b""
        )
        self.assertEqual(self.after_failure(), b"-ERR [AUTH] Invalid credentials\r\n")

    def test_cancel(self):
        self.connect()
        self.say(b"AUTH PLAIN\r\n")
        self.assertEqual(self.say(b"*\r\n"), b"-ERR Authentication cancelled\r\n")
        self.assertEqual(self.say(b"NOOP\r\n"), b"-ERR Command not valid in this state\r\n")

    def test_malformed_responses(self):
        self.connect()
        for bad in (b"!!!notbase64", b"=", base64.b64encode(b"no-nuls-here")):
            self.assertEqual(self.say(b"AUTH PLAIN " + bad + b"\r\n"), b"-ERR Malformed PLAIN response\r\n")

    def test_other_mechanisms_and_listing(self):
        self.connect()
        self.assertEqual(self.say(b"AUTH CRAM-MD5\r\n"), b"-ERR Unsupported authentication mechanism\r\n")
        self.assertEqual(self.say(b"AUTH\r\n"), b"+OK\r\nPLAIN\r\n.\r\n")


class TransactionTests(POP3TestCase):
    async def test_stat_list_uidl(self):
        second = b"Subject: two\r\n\r\n.\r\n"
        await self.deliver(MESSAGE, second)
        self.login()
        keys = tuple(unique_id(m.key) for m in self.inbox().messages())
        total = len(MESSAGE) + len(second)
        self.assertEqual(self.say(b"STAT\r\n"), b"+OK 2 %d\r\n" % total)
        self.assertEqual(
            self.say(b"LIST\r\n"),
            b"+OK 2 messages (%d octets)\r\n1 %d\r\n2 %d\r\n.\r\n" % (total, len(MESSAGE), len(second)),
        )
        self.assertEqual(self.say(b"LIST 2\r\n"), b"+OK 2 %d\r\n" % len(second))
        self.assertEqual(self.say(b"UIDL\r\n"), b"+OK\r\n1 %s\r\n2 %s\r\n.\r\n" % keys)
        self.assertEqual(self.say(b"UIDL 1\r\n"), b"+OK 1 %s\r\n" % keys[0])

    async def test_retr_is_byte_exact_and_stuffed_from_the_first_line(self):
        body = b".first line\r\n" + b"y" * (16 * 1024 - 15) + b"\r\n.\r\nafter\r\n"
        await self.deliver(body)
        self.login()
        self.transport.clear()
        self.server.dataReceived(b"RETR 1\r\n")
        self.assertEqual(
            self.transport.value(),
            b"+OK %d octets\r\n" % len(body) + b"." + body.replace(b"\r\n.", b"\r\n..") + b".\r\n",
        )

    async def test_retr_message_without_final_newline(self):
        await self.deliver(b"Subject: x\r\n\r\nno newline")
        self.login()
        self.assertEqual(self.say(b"RETR 1\r\n"), b"+OK 24 octets\r\nSubject: x\r\n\r\nno newline\r\n.\r\n")

    async def test_retr_is_one_write(self):
        await self.deliver(MESSAGE)
        self.login()
        writes = []
        self.transport.write = writes.append
        self.transport.writeSequence = writes.append
        self.server.dataReceived(b"RETR 1\r\n")
        self.assertEqual(len(writes), 1)

    async def test_top(self):
        await self.deliver(MESSAGE + b"second\r\n.third\r\n")
        self.login()
        self.assertEqual(
            self.say(b"TOP 1 0\r\n"),
            b"+OK Top of message follows\r\nFrom: bob@example.test\r\nSubject: hi\r\n\r\n.\r\n",
        )
        self.assertEqual(
            self.say(b"TOP 1 3\r\n"),
            b"+OK Top of message follows\r\nFrom: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\nsecond\r\n..third\r\n.\r\n",
        )

    async def test_bad_message_numbers_get_err_and_the_session_goes_on(self):
        await self.deliver(MESSAGE)
        self.login()
        for command in (b"DELE 0", b"DELE -1", b"DELE 999", b"RETR x", b"LIST 1x", b"UIDL +1", b"TOP 1", b"RETR"):
            answer = self.say(command + b"\r\n")
            self.assertTrue(answer.startswith(b"-ERR "), (command, answer))
            self.assertEqual(answer.count(b"\r\n"), 1, command)
        self.assertEqual(self.say(b"TOP 1 -1\r\n"), b"-ERR Invalid line count\r\n")
        self.assertEqual(self.say(b"STAT\r\n"), b"+OK 1 %d\r\n" % len(MESSAGE))

    async def test_deleted_message_is_gone_from_the_session(self):
        await self.deliver(MESSAGE, MESSAGE)
        self.login()
        self.assertEqual(self.say(b"DELE 1\r\n"), b"+OK Message 1 deleted\r\n")
        self.assertEqual(self.say(b"DELE 1\r\n"), b"-ERR Message 1 already deleted\r\n")
        self.assertEqual(self.say(b"RETR 1\r\n"), b"-ERR Message 1 already deleted\r\n")
        self.assertEqual(self.say(b"STAT\r\n"), b"+OK 1 %d\r\n" % len(MESSAGE))
        self.assertEqual(self.say(b"LIST\r\n"), b"+OK 1 messages (%d octets)\r\n2 %d\r\n.\r\n" % ((len(MESSAGE),) * 2))

    async def test_message_expunged_by_another_session(self):
        await self.deliver(MESSAGE, MESSAGE)
        self.login()
        inbox = self.inbox()
        self.successResultOf(inbox.expunge([inbox.messages()[0].uid]))
        self.assertEqual(self.say(b"RETR 1\r\n"), b"-ERR Message 1 was removed by another session\r\n")
        self.assertTrue(self.say(b"RETR 2\r\n").startswith(b"+OK "))

    async def test_new_mail_is_moved_to_cur_at_login(self):
        await self.deliver(MESSAGE)
        self.login()
        path = self.inbox().path
        self.assertEqual(os.listdir(os.path.join(path, "new")), [])
        self.assertEqual(len(os.listdir(os.path.join(path, "cur"))), 1)

    def test_transaction_commands_need_login(self):
        self.connect()
        self.assertEqual(self.say(b"STAT\r\n"), b"-ERR Command not valid in this state\r\n")


class UpdateStateTests(POP3TestCase):
    """RFC 1939 section 6: deletions happen at QUIT, and only there."""

    async def test_dele_then_quit_removes(self):
        await self.deliver(MESSAGE, MESSAGE)
        self.login()
        self.assertEqual(self.say(b"DELE 1\r\nQUIT\r\n"), b"+OK Message 1 deleted\r\n+OK Bye.\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.successResultOf(self.inbox().sync())
        self.assertEqual(len(self.inbox().messages()), 1)
        self.assertEqual(len(os.listdir(os.path.join(self.inbox().path, "cur"))), 1)

    async def test_dele_rset_quit_keeps(self):
        await self.deliver(MESSAGE)
        self.login()
        self.assertEqual(
            self.say(b"DELE 1\r\nRSET\r\nQUIT\r\n"),
            b"+OK Message 1 deleted\r\n+OK Maildrop has 1 messages (%d octets)\r\n+OK Bye.\r\n" % len(MESSAGE),
        )
        self.successResultOf(self.inbox().sync())
        self.assertEqual(len(self.inbox().messages()), 1)

    async def test_dele_without_quit_keeps(self):
        await self.deliver(MESSAGE)
        self.login()
        self.say(b"DELE 1\r\n")
        self.server.connectionLost(None)
        self.successResultOf(self.inbox().sync())
        self.assertEqual(len(self.inbox().messages()), 1)

    async def test_quit_before_login_removes_nothing(self):
        await self.deliver(MESSAGE)
        self.connect()
        self.assertEqual(self.say(b"QUIT\r\n"), b"+OK Bye.\r\n")
        self.assertEqual(len(self.inbox().messages()), 1)

    async def test_commands_after_quit_are_not_run(self):
        await self.deliver(MESSAGE)
        self.login()
        self.assertEqual(self.say(b"QUIT\r\nDELE 1\r\n"), b"+OK Bye.\r\n")

    async def test_uidl_is_stable_across_sessions_and_flag_renames(self):
        await self.deliver(MESSAGE)
        self.login()
        first = self.say(b"UIDL 1\r\n")
        self.say(b"QUIT\r\n")
        inbox = self.inbox()
        self.successResultOf(inbox.store_flags([(inbox.messages()[0].uid, frozenset({"\\Seen", "\\Flagged"}))]))
        self.assertIn(":2,FS", os.listdir(os.path.join(inbox.path, "cur"))[0])
        self.login()
        self.assertEqual(self.say(b"UIDL 1\r\n"), first)


class UniqueIdTests(unittest.TestCase):
    """RFC 1939 section 7: a unique-id is 1 to 70 octets in 0x21..0x7E."""

    def test_short_printable_key_is_the_uidl(self):
        self.assertEqual(unique_id("1700000000.M1P2Q3.host,S=10,W=11"), b"1700000000.M1P2Q3.host,S=10,W=11")

    def test_long_or_unprintable_key_is_hashed_stably(self):
        for key in ("1700000000.M1P2Q3." + "h" * 80, "1700000000.M1P2Q3.h\u00e9 st"):
            uidl = unique_id(key)
            self.assertEqual(len(uidl), 40)
            self.assertEqual(unique_id(key), uidl)


class HostileInputTests(POP3TestCase):
    def test_unknown_and_removed_commands(self):
        self.connect()
        for command in (b"FOO", b"APOP alice@example.test 0123456789abcdef", b"LAST", b"RPOP x", b"\xc3\xa9", b""):
            self.assertEqual(self.say(command + b"\r\n"), b"-ERR Unknown command\r\n", command)

    def test_nul_and_bad_utf8(self):
        self.connect()
        self.assertEqual(self.say(b"NOOP\0\r\n"), b"-ERR Invalid characters in command\r\n")
        self.assertEqual(self.say(b"USER \xff\xfe\r\n"), b"-ERR Invalid characters in command\r\n")
        self.assertEqual(self.say(b"CAPA\r\n")[:4], b"+OK ")

    def test_overlong_line_gets_one_err_and_bounded_buffering(self):
        self.connect()
        limit = self.config.limits.max_line_length
        answers = b"".join(self.say(b"A" * 4096) for _ in range(limit // 1024))
        self.assertEqual(answers, b"-ERR Line too long\r\n")
        self.assertLessEqual(len(self.server.input), limit)
        self.assertEqual(self.say(b"AAAA\r\nCAPA\r\n")[:4], b"+OK ")

    def test_complete_overlong_line(self):
        self.connect()
        limit = self.config.limits.max_line_length
        self.assertEqual(
            self.say(b"NOOP " + b"x" * limit + b"\r\nQUIT\r\n"), b"-ERR Line too long\r\n+OK Bye.\r\n"
        )

    def test_bare_lf_line_ends_are_accepted(self):
        self.connect()
        self.assertEqual(self.say(b"QUIT\n"), b"+OK Bye.\r\n")

    def test_idle_timeout(self):
        self.connect()
        self.clock.advance(self.config.limits.pop3_timeout - 1)
        self.say(b"NOOP\r\n")
        self.clock.advance(self.config.limits.pop3_timeout - 1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertTrue(self.transport.disconnecting)

    async def test_store_failure_is_an_err_not_a_drop(self):
        await self.deliver(MESSAGE)
        self.login()

        def broken(number):
            raise OSError("disk on fire")

        self.server.maildrop.open_message = broken
        self.assertEqual(self.say(b"RETR 1\r\n"), b"-ERR [SYS/TEMP] Temporary server failure, try again later\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class Recorder(LineOnlyReceiver):
    """The client side of an iosim connection: keeps every line it receives."""

    def connectionMade(self) -> None:
        self.lines: list[bytes] = []

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)


class STLSTests(POP3TestCase):
    """RFC 2595 section 4, on iosim's transport that pretends to negotiate TLS."""

    def converse(self):
        client, server, pump = iosim.connectedServerAndClient(
            self.build, Recorder
        )
        return client, server, pump

    def test_stls_discards_pipelined_plaintext(self):
        client, server, pump = self.converse()
        client.transport.write(b"STLS\r\nUSER alice@example.test\r\n")
        pump.flush()
        self.assertEqual(client.lines, [b"+OK mailsrv ready.", b"+OK Begin TLS negotiation"])
        client.transport.startTLS(FakeTLS())
        pump.flush()
        self.assertTrue(ISSLTransport.providedBy(server.transport))
        client.transport.write(b"PASS correct horse\r\nCAPA\r\n")
        pump.flush()
        # USER was discarded, so PASS has no user to go with.
        self.assertEqual(client.lines[2], b"-ERR USER first")
        self.assertIn(b"USER", client.lines)
        self.assertNotIn(b"STLS", client.lines)

    def test_stls_twice_is_refused(self):
        client, server, pump = self.converse()
        client.transport.write(b"STLS\r\n")
        pump.flush()
        client.transport.startTLS(FakeTLS())
        client.transport.write(b"STLS\r\n")
        pump.flush()
        self.assertEqual(client.lines[-1], b"-ERR Command not permitted when TLS active")

    def test_stls_after_login_is_refused(self):
        self.config = configuration.Config(
            data_dir=self.config.data_dir, auth=configuration.AuthConfig(allow_plaintext_auth_on_loopback=True)
        )
        self.ctx.config = self.config
        self.connect(secure=False, peer=IPv4Address("TCP", "127.0.0.1", 40000))
        self.say(LOGIN)
        self.assertEqual(self.say(b"STLS\r\n"), b"-ERR Command not valid in this state\r\n")

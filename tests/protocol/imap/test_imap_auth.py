"""IMAP authentication and TLS rules (RFC 3501 6.2, 7.2.1; RFC 2595)."""

from __future__ import annotations

import base64

from twisted.internet.testing import EventLoggingObserver
from twisted.logger import globalLogPublisher
from twisted.test import iosim

from support import TCPStringTransport, audit_events
from imap_harness import CREDENTIALS, LOOPBACK, PASSWORD, REMOTE, IMAPTestCase

#: What the greeting lists after the login capabilities, in every state.
EXTENSIONS = (
    b"IDLE NAMESPACE UIDPLUS CHILDREN LITERAL+ ENABLE ID UNSELECT MOVE BINARY"
    b" LIST-EXTENDED LIST-STATUS SPECIAL-USE CREATE-SPECIAL-USE STATUS=SIZE"
    b" QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE"
    b" ESEARCH SEARCHRES SORT THREAD=ORDEREDSUBJECT THREAD=REFERENCES CONDSTORE QRESYNC COMPRESS=DEFLATE UTF8=ACCEPT METADATA NOTIFY"
)


class BeforeTLS(IMAPTestCase):
    def greeting_over_tls_capable_transport(self, peer) -> bytes:
        transport = iosim.FakeTransport(None, isServer=True, peerAddress=peer)
        self.open(transport=transport)
        return b"".join(transport.stream)

    def test_greeting_offers_starttls_and_disables_login(self) -> None:
        self.assertEqual(
            self.greeting_over_tls_capable_transport(REMOTE),
            b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS LOGINDISABLED " + EXTENSIONS + b"] localhost IMAP4rev1 ready\r\n",
        )

    def test_starttls_is_offered_where_plaintext_logins_are_allowed_too(self) -> None:
        """Issue 6: with ``allow_plaintext_auth_on_loopback`` the greeting dropped STARTTLS."""
        self.assertEqual(
            self.greeting_over_tls_capable_transport(LOOPBACK),
            b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 STARTTLS AUTH=PLAIN SASL-IR " + EXTENSIONS + b"] localhost IMAP4rev1 ready\r\n",
        )

    def test_no_tls_at_all_still_disables_login(self) -> None:
        greeting = self.open(REMOTE).received()
        self.assertEqual(greeting, b"* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LOGINDISABLED " + EXTENSIONS + b"] localhost IMAP4rev1 ready\r\n")

    async def test_login_refused_with_privacyrequired(self) -> None:
        session = self.open(REMOTE)
        session.received()
        reply = await session.command(b"a LOGIN " + CREDENTIALS)
        self.assertEqual(reply, b"a NO [PRIVACYREQUIRED] LOGIN is disabled until STARTTLS\r\n")
        reply = await session.command(b"b AUTHENTICATE PLAIN")
        self.assertEqual(reply, b"b NO [PRIVACYREQUIRED] Authentication is disabled until STARTTLS\r\n")
        self.assertEqual(session.server.state, "unauth")

    def test_starttls_discards_pipelined_plaintext(self) -> None:
        transport = iosim.FakeTransport(None, isServer=True, peerAddress=REMOTE)
        session = self.open(transport=transport)
        transport.stream.clear()
        session.server.dataReceived(b"a STARTTLS\r\nb CAPABILITY\r\n")
        self.assertEqual(b"".join(transport.stream), b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(transport.tlsbuf, [])  # "b" was injected in clear: never answered
        session.server.dataReceived(b"c CAPABILITY\r\n")
        inside = b"".join(transport.tlsbuf)
        self.assertEqual(inside, b"* CAPABILITY IMAP4rev1 IMAP4rev2 AUTH=PLAIN SASL-IR " + EXTENSIONS + b"\r\nc OK CAPABILITY completed\r\n")

    def test_no_nagle(self) -> None:
        transport = TCPStringTransport(peerAddress=REMOTE)
        self.open(transport=transport)
        self.assertTrue(transport.nodelay)


class Login(IMAPTestCase):
    async def test_login_on_loopback_is_logged_with_ip(self) -> None:
        events = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        session = self.open()
        self.assertIn(b"AUTH=PLAIN", session.received())
        reply = await session.command(b"a LOGIN alice@example.test wrong")
        self.assertEqual(reply, b"a NO [AUTHENTICATIONFAILED] Authentication failed\r\n")
        reply = await session.command(b"b LOGIN " + CREDENTIALS)
        self.assertEqual(reply, b"b OK LOGIN succeeded\r\n")
        logins = [(e["user"], e["client_ip"], e["result"]) for e in audit_events(list(events), "login")]
        self.assertEqual(
            logins, [("alice@example.test", "127.0.0.1", "failed"), ("alice@example.test", "127.0.0.1", "ok")]
        )

    async def test_authenticate_plain(self) -> None:
        session = self.open()
        session.received()
        self.assertEqual(session.send(b"a AUTHENTICATE PLAIN\r\n"), b"+ \r\n")
        response = base64.b64encode(b"\0alice@example.test\0" + PASSWORD)
        reply = session.send(response + b"\r\n")
        self.assertEqual(reply, b"a OK Authentication successful\r\n")
        self.assertEqual(session.server.state, "auth")

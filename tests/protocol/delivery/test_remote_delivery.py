"""Remote delivery end to end on loopback: the test's DNS server, a recording receiver, real sockets.

The test case's helpers are :mod:`delivery_harness`'s.
"""

from __future__ import annotations

import os

from twisted.internet import defer, reactor
from twisted.internet.task import deferLater
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import globalLogPublisher

from delivery_harness import MESSAGE, DeliveryHarness, helo_name
from mailsrv.delivery import dialogue
from mailsrv.delivery.attempt import Options, Outcome, RecipientResult
from mailsrv.delivery.dsnrequest import RecipientRequest
from mailsrv.message.body import Body, BodyType
from smtp_receiver import Receiver


class FirstConnection(dict):
    """RCPT replies that a receiver gives on its first connection only (a greylisting primary MX)."""

    def __init__(self, receiver: Receiver, replies: dict[str, str]) -> None:
        super().__init__(replies)
        self.receiver = receiver

    def get(self, address: str, default: str = "") -> str:
        return super().get(address, default) if self.receiver.connections == 1 else default


class FirstDataRefused(Receiver):
    """A receiver whose first connection answers the message data with 451, the next ones with 250."""

    @property
    def data_reply(self) -> str:
        return "451 4.3.0 disk full" if self.connections == 1 else "250 2.0.0 queued"

    @data_reply.setter
    def data_reply(self, value: str) -> None:
        pass


class Peak(list):
    """A receiver's open connections, remembering the most there were at once."""

    peak = 0

    def append(self, item: object) -> None:
        super().append(item)
        self.peak = max(self.peak, len(self))


class RemoteDeliveryTests(DeliveryHarness):
    async def test_starttls_to_the_preferred_mx(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.2"))
        receiver, port = self.receiver("mx1.example.test")
        [result] = await self.send(self.sender(port, tls="verify"), "bob@example.test")
        self.assertEqual((result.outcome, result.host, result.ip), (Outcome.DELIVERED, "mx1.example.test", "127.0.0.1"))
        self.assertEqual(result.reply, "250 2.0.0 queued")
        self.assertRegex(result.tls, r"^TLSv1\.[23] \S+$")
        [message] = receiver.messages
        self.assertTrue(message.tls)
        self.assertEqual((message.sender, message.recipients, message.data), ("alice@local.test", ["bob@example.test"], MESSAGE))
        self.assertEqual(message.mail_from, f"FROM:<alice@local.test> SIZE={len(MESSAGE)}")

    async def test_a_refused_connection_moves_on_to_the_next_mx(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.2"), (20, "mx2.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.host, result.ip), (Outcome.DELIVERED, "mx2.example.test", "127.0.0.1"))
        self.assertEqual(len(receiver.messages), 1)

    async def test_the_ipv4_address_is_tried_after_the_ipv6_one(self) -> None:
        self.zone.add("example.test", "MX", "10 mx1.example.test.")
        self.zone.add("mx1.example.test", "AAAA", "::1")  # nothing listens there on the receiver's port
        self.zone.add("mx1.example.test", "A", "127.0.0.1")
        receiver, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.ip), (Outcome.DELIVERED, "127.0.0.1"))

    async def test_every_mx_down_defers_naming_the_last_one(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.2"), (20, "mx2.example.test", "127.0.0.3"))
        _, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.host, result.ip), (Outcome.DEFERRED, "mx2.example.test", "127.0.0.3"))
        self.assertIn("cannot connect", result.reply)

    async def test_a_silent_host_times_out_and_the_next_one_takes_the_message(self) -> None:
        self.patch(dialogue, "GREETING_TIMEOUT", 0.5)
        receiver, port = self.receiver()
        silent = reactor.listenTCP(port, Factory.forProtocol(Protocol), interface="127.0.0.4")
        self.addCleanup(silent.stopListening)
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.4"), (20, "mx2.example.test", "127.0.0.1"))
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.ip), (Outcome.DELIVERED, "127.0.0.1"))

    async def test_each_recipient_gets_its_own_outcome(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.rcpt_replies["later@example.test"] = "451 4.2.1 mailbox busy"
        receiver.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
        results = await self.send(self.sender(port), "bob@example.test", "later@example.test", "nobody@example.test")
        self.assertEqual(
            [(r.recipient, r.outcome, r.reply) for r in results],
            [("bob@example.test", Outcome.DELIVERED, "250 2.0.0 queued"),
             ("later@example.test", Outcome.DEFERRED, "451 4.2.1 mailbox busy"),
             ("nobody@example.test", Outcome.FAILED, "550 5.1.1 no such user")],
        )
        self.assertEqual(receiver.messages[0].recipients, ["bob@example.test"])

    async def test_the_final_reply_applies_to_every_accepted_recipient(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.data_reply = "554 5.7.1 spam"
        results = await self.send(self.sender(port), "bob@example.test", "carol@example.test")
        self.assertEqual([(r.outcome, r.reply) for r in results], [(Outcome.FAILED, "554 5.7.1 spam")] * 2)

    async def test_no_recipient_accepted_sends_no_data(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("8BITMIME",))
        receiver.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
        [result] = await self.send(self.sender(port), "nobody@example.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertNotIn("DATA", receiver.sessions[0].commands)

    async def test_a_lost_final_reply_defers_without_trying_the_next_mx(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.data_reply = ""
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("no reply after the message data", result.reply)
        self.assertEqual((receiver.connections, len(receiver.messages)), (1, 1))

    async def test_a_451_from_the_first_mx_sends_the_message_to_the_next_one(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.rcpt_replies = FirstConnection(receiver, {"bob@example.test": "451 4.7.1 greylisted"})
        [bob] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((bob.outcome, bob.host), (Outcome.DELIVERED, "mx2.example.test"))
        self.assertEqual([m.recipients for m in receiver.messages], [["bob@example.test"]])

    async def test_a_451_beside_a_delivery_waits_for_the_retry_so_the_delivery_is_written_first(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.rcpt_replies = FirstConnection(receiver, {"bob@example.test": "451 4.7.1 greylisted"})
        bob, carol = await self.send(self.sender(port), "bob@example.test", "carol@example.test")
        self.assertEqual((bob.outcome, bob.host, carol.outcome, carol.host),
                         (Outcome.DEFERRED, "mx1.example.test", Outcome.DELIVERED, "mx1.example.test"))
        self.assertEqual(receiver.connections, 1)

    async def test_a_451_from_every_mx_defers_with_the_last_reply_and_a_550_goes_nowhere_else(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.rcpt_replies = {"bob@example.test": "451 4.3.0 later", "carol@example.test": "550 5.1.1 no"}
        bob, carol = await self.send(self.sender(port), "bob@example.test", "carol@example.test")
        self.assertEqual((bob.outcome, bob.reply, bob.host), (Outcome.DEFERRED, "451 4.3.0 later", "mx2.example.test"))
        self.assertEqual((carol.outcome, carol.host), (Outcome.FAILED, "mx1.example.test"))
        self.assertEqual(receiver.connections, 2)
        self.assertEqual([c for c in receiver.sessions[1].commands if c.startswith("RCPT")], ["RCPT TO:<bob@example.test>"])

    async def test_a_451_to_the_data_goes_to_the_next_mx(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        receiver = FirstDataRefused(tls=self.ca.server_options("mx1.example.test"))
        [result] = await self.send(self.sender(receiver.listen(self)), "bob@example.test")
        self.assertEqual((result.outcome, result.host), (Outcome.DELIVERED, "mx2.example.test"))
        self.assertEqual((receiver.connections, len(receiver.messages)), (2, 1))

    async def test_a_552_too_many_recipients_is_temporary_and_a_552_full_mailbox_permanent(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        receiver.rcpt_replies = {"bob@example.test": "552 5.5.3 too many recipients",
                                 "carol@example.test": "552 5.2.2 mailbox full"}
        bob, carol, dave = await self.send(self.sender(port), "bob@example.test", "carol@example.test",
                                           "dave@example.test")
        self.assertEqual((bob.outcome, carol.outcome, dave.outcome),
                         (Outcome.DEFERRED, Outcome.FAILED, Outcome.DELIVERED))

    async def test_helo_when_ehlo_is_refused(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(ehlo=False)
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED)
        self.assertEqual(receiver.sessions[0].commands[:2], ["EHLO " + helo_name(), "HELO " + helo_name()])
        self.assertEqual(receiver.messages[0].mail_from, "FROM:<alice@local.test>")

    async def test_may_continues_in_plaintext_when_starttls_is_refused(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(starttls="refuse")
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual((result.outcome, result.tls, receiver.connections), (Outcome.DELIVERED, "", 1))

    async def test_null_mx_fails_at_once(self) -> None:
        self.zone.add("nomail.test", "MX", "0 .")
        receiver, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@nomail.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertTrue(result.reply.startswith("556 5.1.10 "), result.reply)
        self.assertEqual(receiver.connections, 0)

    async def test_a_domain_that_does_not_exist_fails(self) -> None:
        _, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@nowhere.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertIn("no such domain", result.reply)

    async def test_a_failing_name_server_defers(self) -> None:
        self.zone.fail("broken.test")
        _, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@broken.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertTrue(result.reply.startswith("451 4.4.3 "), result.reply)

    async def test_without_mx_the_domain_itself_is_the_host(self) -> None:
        self.zone.add("plain.test", "A", "127.0.0.1")
        receiver, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@plain.test")
        self.assertEqual((result.outcome, result.host), (Outcome.DELIVERED, "plain.test"))

    async def test_an_address_literal_is_connected_to_directly(self) -> None:
        receiver, port = self.receiver()
        [result] = await self.send(self.sender(port), "bob@[127.0.0.1]")
        self.assertEqual((result.outcome, result.ip), (Outcome.DELIVERED, "127.0.0.1"))

    async def test_verify_checks_an_address_literal_against_its_ip(self) -> None:
        receiver = Receiver(tls=self.ca.server_options("127.0.0.1"))
        port = receiver.listen(self)
        [result] = await self.send(self.sender(port, tls="verify"), "bob@[127.0.0.1]")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)

    async def test_verify_refuses_a_certificate_for_another_name(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver("other.example.test")
        [result] = await self.send(self.sender(port, tls="verify"), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("TLS handshake failed", result.reply)
        self.assertEqual(receiver.messages, [])

    async def test_encrypt_defers_when_starttls_is_not_offered(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver = Receiver()
        port = receiver.listen(self)
        [result] = await self.send(self.sender(port, tls="encrypt"), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("STARTTLS is required", result.reply)
        self.assertFalse(any(c.startswith("MAIL") for c in receiver.sessions[0].commands))

    async def test_encrypt_accepts_any_certificate(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver("other.example.test")
        [result] = await self.send(self.sender(port, tls="encrypt"), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED)
        self.assertTrue(receiver.messages[0].tls)
        self.assertEqual(receiver.sessions[0].server_name, "mx1.example.test")  # SNI even unverified

    async def test_may_falls_back_to_plaintext_after_a_failed_handshake(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(starttls="broken")
        [result] = await self.send(self.sender(port, tls="may"), "bob@example.test")
        self.assertEqual((result.outcome, result.tls), (Outcome.DELIVERED, ""))
        self.assertEqual(receiver.connections, 2)
        self.assertNotIn("STARTTLS", receiver.sessions[1].commands)
        self.assertFalse(receiver.messages[0].tls)

    async def test_none_never_starts_tls(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        [result] = await self.send(self.sender(port, tls="none"), "bob@example.test")
        self.assertEqual((result.outcome, result.tls), (Outcome.DELIVERED, ""))
        self.assertNotIn("STARTTLS", receiver.sessions[0].commands)

    async def test_an_8bit_body_is_not_sent_to_a_peer_without_8bitmime(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("PIPELINING",))
        body = Body.from_wire("Subject: café\r\n\r\nçà\r\n".encode(), BodyType.EIGHT_BIT_MIME)
        [result] = await self.send(self.sender(port), "bob@example.test", body=body)
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertIn("8BITMIME", result.reply)
        self.assertFalse(any(c.startswith("MAIL") for c in receiver.sessions[0].commands))

    async def test_an_8bit_body_is_declared_to_a_peer_with_8bitmime(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        data = "Subject: café\r\n\r\nçà\r\n".encode()
        [result] = await self.send(self.sender(port), "bob@example.test", body=Body.from_wire(data, BodyType.EIGHT_BIT_MIME))
        self.assertEqual(result.outcome, Outcome.DELIVERED)
        self.assertEqual(receiver.messages[0].mail_from, f"FROM:<alice@local.test> SIZE={len(data)} BODY=8BITMIME")
        self.assertEqual(receiver.messages[0].data, data)

    async def test_a_non_ascii_address_needs_smtputf8(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("8BITMIME",))
        [result] = await self.send(self.sender(port), "jösé@example.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertIn("SMTPUTF8", result.reply)

    async def test_a_utf8_header_flagged_at_intake_needs_smtputf8(self) -> None:
        """RFC 6531 3.4: the ASCII envelope alone would pass; the flag from intake says the header is UTF-8."""
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        body = Body.from_wire("Subject: Grüße\r\n\r\nx\r\n".encode(), BodyType.EIGHT_BIT_MIME)
        plain, port = self.receiver(extensions=("8BITMIME",))
        [result] = await self.send(self.sender(port), "bob@example.test", body=body, options=Options(smtputf8=True))
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertTrue(result.reply.startswith("553 5.6.7 "), result.reply)
        self.assertFalse(any(c.startswith("MAIL") for c in plain.sessions[0].commands))
        able, port = self.receiver()  # offers SMTPUTF8
        [result] = await self.send(self.sender(port), "bob@example.test", body=body, options=Options(smtputf8=True))
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertEqual(able.messages[0].mail_from, f"FROM:<alice@local.test> SIZE={body.wire_size} BODY=8BITMIME "
                         "SMTPUTF8")

    async def test_a_message_over_the_peers_size_limit_fails(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("SIZE 10",))
        [result] = await self.send(self.sender(port), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertTrue(result.reply.startswith("552 5.3.4 "), result.reply)

    async def test_large_message_and_leading_dots_arrive_byte_exact(self) -> None:
        lines = [b".", b"..", b".leading dot", b"x" * 990, b"", b". ."]
        body = b"Subject: dots\r\n\r\n" + b"".join(lines[i % len(lines)] + b"\r\n" for i in range(800))
        body += b"".join(b"line %06d " % i + b"y" * 100 + b"\r\n" for i in range(1800))
        self.assertGreater(len(body), 200 * 1024)
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        for extensions in (("PIPELINING", "SIZE 0"), ()):
            receiver, port = self.receiver(extensions=extensions)
            [result] = await self.send(self.sender(port), "bob@example.test", body=Body.from_wire(body))
            self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
            self.assertEqual(receiver.messages[0].data, body)

    async def test_our_return_path_stays_home_and_the_rest_goes_byte_exact(self) -> None:
        """RFC 5321 4.4: Return-Path is for final delivery; the one on top of what we took is not sent on."""
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        message = b"Received: from a by b; x\r\nReturn-Path: <kept@example.test>\r\nSubject: x\r\n\r\nbody\r\n"
        body = Body.from_wire(b"Return-Path: <alice@example.test>\r\n" + message)
        [result] = await self.send(self.sender(port), "bob@example.test", body=body)
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertEqual(receiver.messages[0].data, message)

    async def test_a_body_without_a_final_line_end_gets_one_before_the_dot(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        await self.send(self.sender(port), "bob@example.test", body=Body.from_wire(b"Subject: x\r\n\r\n.no end"))
        self.assertEqual(receiver.messages[0].raw, b"..no end\r\n.\r\n".join([b"Subject: x\r\n\r\n", b""]))

    def relay_settings(self, port: int) -> dict[str, str]:
        password_file = os.path.join(self.dir, "relay-password")
        with open(password_file, "w") as f:
            f.write("s3cret\nignored second line\n")
        self.zone.add("relay.test", "A", "127.0.0.1")
        return {"relay": f"relay.test:{port}", "relay_username": "mailsrv", "relay_password_file": password_file}

    async def test_relay_with_auth_over_starttls(self) -> None:
        receiver, port = self.receiver("relay.test", auth=("mailsrv", "s3cret"))
        delivery = self.sender(port, **self.relay_settings(port))
        results = await self.send(delivery, "bob@example.test", "carol@example.test")
        self.assertEqual([(r.outcome, r.host) for r in results], [(Outcome.DELIVERED, "relay.test")] * 2)
        [message] = receiver.messages
        self.assertEqual((message.tls, message.auth), (True, ("mailsrv", "s3cret")))
        self.assertIn("STARTTLS", receiver.sessions[0].commands)

    async def test_relay_with_auth_over_implicit_tls(self) -> None:
        receiver = Receiver(tls=self.ca.server_options("relay.test"), auth=("mailsrv", "s3cret"))
        port = receiver.listen(self, implicit_tls=True)
        delivery = self.sender(port, implicit_tls_port=port, **self.relay_settings(port))
        [result] = await self.send(delivery, "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED)
        self.assertRegex(result.tls, r"^TLSv1\.[23] ")
        self.assertEqual(receiver.messages[0].auth, ("mailsrv", "s3cret"))
        self.assertNotIn("STARTTLS", receiver.sessions[0].commands)

    async def test_a_refused_relay_login_defers(self) -> None:
        receiver, port = self.receiver("relay.test", auth=("mailsrv", "other password"))
        [result] = await self.send(self.sender(port, **self.relay_settings(port)), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("AUTH at the relay failed: 535 5.7.8", result.reply)
        self.assertEqual(receiver.messages, [])

    async def test_no_password_goes_to_a_relay_without_tls(self) -> None:
        receiver = Receiver(auth=("mailsrv", "s3cret"))
        port = receiver.listen(self)
        [result] = await self.send(self.sender(port, relay_tls="may", **self.relay_settings(port)), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("without TLS", result.reply)
        self.assertFalse(any(c.startswith("AUTH") for c in receiver.sessions[0].commands))

    async def test_relay_tls_none_sends_without_auth_in_plaintext(self) -> None:
        receiver, port = self.receiver("relay.test")
        self.zone.add("relay.test", "A", "127.0.0.1")
        [result] = await self.send(self.sender(port, relay=f"relay.test:{port}", relay_tls="none"), "bob@example.test")
        self.assertEqual((result.outcome, result.tls), (Outcome.DELIVERED, ""))
        self.assertEqual((receiver.messages[0].tls, receiver.messages[0].auth), (False, None))

    async def test_relay_certificate_is_verified(self) -> None:
        receiver, port = self.receiver("other.test", auth=("mailsrv", "s3cret"))
        [result] = await self.send(self.sender(port, **self.relay_settings(port)), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertEqual(receiver.messages, [])

    # -- RFC 3461 parameters passed on, RFC 8689 REQUIRETLS enforced and TLS-Required: No honoured

    OPTIONS = Options(ret="HDRS", envid="env 1+1", require_tls=False,
                      requests={"bob@example.test": RecipientRequest("SUCCESS,FAILURE", "rfc822;Bob=x@example.test")})

    async def send_with(self, delivery: object, options: Options, *recipients: str) -> list[RecipientResult]:
        return await delivery.deliver("q1", "alice@local.test", list(recipients), Body.from_wire(MESSAGE), options)

    async def test_dsn_parameters_go_to_a_peer_that_offers_dsn(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("DSN", "PIPELINING"))
        results = await self.send_with(self.sender(port), self.OPTIONS, "bob@example.test", "carol@example.test")
        self.assertEqual([(r.outcome, r.peer_dsn) for r in results], [(Outcome.DELIVERED, True)] * 2)
        [message] = receiver.messages
        self.assertEqual(message.mail_from, "FROM:<alice@local.test> RET=HDRS ENVID=env+201+2B1")
        self.assertEqual(message.rcpt_to, ["TO:<bob@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob+3Dx@example.test",
                                           "TO:<carol@example.test>"])

    async def test_a_peer_without_dsn_gets_none_of_them(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("PIPELINING",))
        [result] = await self.send_with(self.sender(port), self.OPTIONS, "bob@example.test")
        self.assertEqual((result.outcome, result.peer_dsn), (Outcome.DELIVERED, False))
        [message] = receiver.messages
        self.assertEqual((message.mail_from, message.rcpt_to), ("FROM:<alice@local.test>", ["TO:<bob@example.test>"]))

    async def test_requiretls_goes_verified_to_a_peer_that_offers_it_with_the_parameter(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        self.zone.sign("example.test")  # a validated MX answer (RFC 8689 4.2.2.1)
        receiver, port = self.receiver("mx1.example.test", extensions=("REQUIRETLS",))
        [result] = await self.send_with(self.sender(port, tls="none"), Options(require_tls=True), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        [message] = receiver.messages
        self.assertTrue(message.tls)
        self.assertEqual(message.mail_from, "FROM:<alice@local.test> REQUIRETLS")

    async def test_requiretls_fails_with_5_7_30_when_no_mx_offers_it(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        self.zone.sign("example.test")  # a validated MX answer (RFC 8689 4.2.2.1)
        receiver, port = self.receiver("mx1.example.test", "mx2.example.test")
        [result] = await self.send_with(self.sender(port), Options(require_tls=True), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertTrue(result.reply.startswith("550 5.7.30 REQUIRETLS support required"), result.reply)
        self.assertEqual(receiver.connections, 2)  # both MX hosts were asked
        self.assertEqual(receiver.messages, [])
        self.assertFalse(any(c.startswith("MAIL") for s in receiver.sessions for c in s.commands))

    async def test_requiretls_does_not_accept_an_unverified_certificate(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        self.zone.sign("example.test")  # a validated MX answer (RFC 8689 4.2.2.1)
        receiver, port = self.receiver("other.example.test", extensions=("REQUIRETLS",))
        [result] = await self.send_with(self.sender(port, tls="may"), Options(require_tls=True), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DEFERRED)
        self.assertIn("TLS handshake failed", result.reply)
        self.assertEqual(receiver.connections, 1)  # no second try in plaintext
        self.assertEqual(receiver.messages, [])

    async def test_requiretls_does_not_go_to_an_mx_whose_record_was_not_validated(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver("mx1.example.test", extensions=("REQUIRETLS",))
        [result] = await self.send_with(self.sender(port), Options(require_tls=True), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.FAILED)
        self.assertEqual(result.reply, "550 5.7.10 REQUIRETLS: no MX host of example.test (mx1.example.test) is "
                                       "DNSSEC-validated or listed in an MTA-STS policy in enforce mode")
        self.assertEqual(receiver.connections, 0)  # RFC 8689 4.2.2.1: not even a connection

    async def test_requiretls_needs_the_mx_answer_validated_not_the_address(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        self.zone.sign("example.test")  # mx1's A record is not: TLS verification names the host
        receiver, port = self.receiver("mx1.example.test", extensions=("REQUIRETLS",))
        [result] = await self.send_with(self.sender(port), Options(require_tls=True), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)

    async def test_an_unvalidated_mx_still_takes_mail_without_requiretls(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver("mx1.example.test", extensions=("REQUIRETLS",))
        [result] = await self.send_with(self.sender(port), Options(), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)

    async def test_tls_required_no_lets_a_message_past_a_failing_verify_policy(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver("other.example.test")
        delivery = self.sender(port, tls="verify")
        [refused] = await self.send_with(delivery, Options(), "bob@example.test")
        self.assertEqual(refused.outcome, Outcome.DEFERRED)
        [result] = await self.send_with(delivery, Options(tls_optional=True), "bob@example.test")
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertTrue(receiver.messages[0].tls)  # STARTTLS is still attempted (RFC 8689 4.2.2.2)


class SessionReuseTests(DeliveryHarness):
    """A session that ended its transaction well carries the next message to the same destination."""

    def setUp(self) -> None:
        super().setUp()
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        self.delivered = Outcome.DELIVERED, "mx1.example.test", "127.0.0.1"

    def outcome(self, result: RecipientResult) -> tuple[Outcome, str, str]:
        return result.outcome, result.host, result.ip

    async def test_the_next_message_reuses_the_session_after_rset(self) -> None:
        receiver, port = self.receiver("mx1.example.test")
        delivery = self.sender(port, tls="verify")
        [first] = await self.send(delivery, "bob@example.test")
        [second] = await self.send(delivery, "carol@example.test")
        self.assertEqual([self.outcome(first), self.outcome(second)], [self.delivered, self.delivered])
        self.assertEqual(second.tls, first.tls)
        self.assertEqual(receiver.connections, 1)
        self.assertEqual([m.recipients for m in receiver.messages], [["bob@example.test"], ["carol@example.test"]])
        self.assertTrue(all(m.tls for m in receiver.messages))
        commands = [c.split(" ")[0] for c in receiver.sessions[0].commands]
        self.assertEqual(commands.count("STARTTLS"), 1)
        self.assertEqual(commands[commands.index("DATA") + 1:][:2], ["RSET", "MAIL"])

    async def test_a_kept_session_sends_rset_in_one_group_with_mail_and_rcpt(self) -> None:
        receiver, port = self.receiver()
        delivery = self.sender(port)
        await self.send(delivery, "bob@example.test")
        await self.send(delivery, "carol@example.test")
        [group] = [g for g in receiver.sessions[0].groups if g and g[0] == "RSET"]
        self.assertEqual([c.split(" ")[0] for c in group], ["RSET", "MAIL", "RCPT", "DATA"])  # RFC 2920 3.1
        self.assertEqual([m.recipients for m in receiver.messages], [["bob@example.test"], ["carol@example.test"]])

    async def test_without_pipelining_rset_is_answered_before_mail(self) -> None:
        receiver, port = self.receiver(extensions=("8BITMIME", "SIZE 104857600"))
        delivery = self.sender(port)
        await self.send(delivery, "bob@example.test")
        [result] = await self.send(delivery, "carol@example.test")
        self.assertEqual(self.outcome(result), self.delivered)
        self.assertEqual(receiver.connections, 1)
        commands = receiver.sessions[0].commands
        self.assertIn(["RSET"], receiver.sessions[0].groups)
        self.assertEqual(commands[commands.index("RSET") + 1].split(":")[0], "MAIL FROM")

    async def test_a_message_sent_while_its_destination_is_busy_waits_for_that_session(self) -> None:
        receiver, port = self.receiver("mx1.example.test")
        delivery = self.sender(port, tls="verify")
        sends = [defer.ensureDeferred(self.send(delivery, rcpt)) for rcpt in ("bob@example.test", "carol@example.test")]
        first, second = [result for [result] in await defer.gatherResults(sends)]
        self.assertEqual([self.outcome(first), self.outcome(second)], [self.delivered, self.delivered])
        self.assertEqual(receiver.connections, 1)  # no second handshake: the first's session was handed over
        self.assertEqual([m.recipients for m in receiver.messages], [["bob@example.test"], ["carol@example.test"]])

    async def test_a_new_connection_logs_no_factory_lines(self) -> None:
        receiver, port = self.receiver()
        delivery = self.sender(port)
        events: list[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        await self.send(delivery, "bob@example.test")
        await delivery.close()
        self.assertEqual(receiver.connections, 1)
        self.assertEqual([e for e in events if "factory" in str(e.get("log_format", "")).lower()], [])

    async def test_a_session_is_reused_after_a_refused_recipient(self) -> None:
        receiver, port = self.receiver()
        receiver.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
        delivery = self.sender(port)
        [refused] = await self.send(delivery, "nobody@example.test")
        [taken] = await self.send(delivery, "bob@example.test")
        self.assertEqual((refused.outcome, taken.outcome), (Outcome.FAILED, Outcome.DELIVERED))
        self.assertEqual(receiver.connections, 1)

    async def test_another_domain_gets_a_session_of_its_own(self) -> None:
        self.mx("example.org", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver()
        delivery = self.sender(port)
        await self.send(delivery, "bob@example.test")
        await self.send(delivery, "bob@example.org")
        self.assertEqual(receiver.connections, 2)

    async def test_a_session_the_peer_closed_is_replaced_by_a_new_one(self) -> None:
        receiver, port = self.receiver()
        delivery = self.sender(port)
        await self.send(delivery, "bob@example.test")
        receiver.hang_up()
        await self.wait_closed(receiver)
        [result] = await self.send(delivery, "carol@example.test")
        self.assertEqual(self.outcome(result), self.delivered)
        self.assertEqual(receiver.connections, 2)

    async def test_a_451_on_a_kept_session_sends_the_recipient_to_the_next_mx(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"), (20, "mx2.example.test", "127.0.0.1"))
        receiver, port = self.receiver("mx1.example.test")
        receiver.rcpt_replies = FirstConnection(receiver, {"carol@example.test": "451 4.7.1 greylisted"})
        delivery = self.sender(port)
        [first] = await self.send(delivery, "bob@example.test")
        [second] = await self.send(delivery, "carol@example.test")
        self.assertEqual((first.outcome, second.outcome, second.host), (Outcome.DELIVERED,) * 2 + ("mx2.example.test",))
        self.assertEqual(receiver.connections, 2)

    async def test_a_session_kept_for_one_domain_is_ended_before_the_total_cap_is_passed(self) -> None:
        self.mx("example.net", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver("mx1.example.test")
        receiver.open = Peak()
        delivery = self.sender(port, max_connections=1, tls="none")  # no TLS shutdown to race the count
        [first] = await self.send(delivery, "bob@example.test")
        [second] = await self.send(delivery, "bob@example.net")
        self.assertEqual((first.outcome, second.outcome), (Outcome.DELIVERED,) * 2)
        self.assertEqual((receiver.connections, receiver.open.peak), (2, 1))
        self.assertEqual(receiver.sessions[0].commands[-1], "QUIT")

    async def test_a_refused_rset_ends_the_session_and_a_new_one_delivers(self) -> None:
        receiver, port = self.receiver()
        delivery = self.sender(port)
        await self.send(delivery, "bob@example.test")
        receiver.rset_reply = "421 4.3.2 shutting down"
        [result] = await self.send(delivery, "carol@example.test")
        self.assertEqual(self.outcome(result), self.delivered)
        self.assertEqual(receiver.connections, 2)
        self.assertEqual([m.recipients for m in receiver.messages], [["bob@example.test"], ["carol@example.test"]])

    async def test_a_requiretls_message_does_not_take_a_session_opened_without_verification(self) -> None:
        self.zone.sign("example.test")
        receiver, port = self.receiver("other.example.test", extensions=("REQUIRETLS",))
        delivery = self.sender(port, tls="may")
        [plain] = await self.send(delivery, "bob@example.test")
        self.assertEqual(plain.outcome, Outcome.DELIVERED)  # over TLS, the certificate unchecked
        [result] = await delivery.deliver("q2", "alice@local.test", ["carol@example.test"], Body.from_wire(MESSAGE),
                                          Options(require_tls=True))
        self.assertEqual(result.outcome, Outcome.DEFERRED)  # a new session, whose verification fails
        self.assertIn("TLS handshake failed", result.reply)
        self.assertEqual([m.recipients for m in receiver.messages], [["bob@example.test"]])

    async def test_close_ends_the_kept_sessions_with_quit(self) -> None:
        receiver, port = self.receiver()
        delivery = self.sender(port)
        await self.send(delivery, "bob@example.test")
        self.assertEqual(len(receiver.open), 1)
        await delivery.close()
        self.assertEqual(receiver.sessions[0].commands[-1], "QUIT")
        await self.wait_closed(receiver)

    async def wait_closed(self, receiver: Receiver) -> None:
        """Until the receiver has no connection open (the sender saw the close too)."""
        while receiver.open:
            await deferLater(reactor, 0.01)
        await deferLater(reactor, 0.05)

"""Outbound BDAT (RFC 3030 2) and BINARYMIME (RFC 3030 3): to the recording receiver and to our own SMTP server.

A peer that offers CHUNKING gets the message as one ``BDAT <size> LAST``
chunk, its octets as stored (no dot-stuffing); one that does not gets
DATA as before; a BINARYMIME message goes only to a peer offering both
BINARYMIME and CHUNKING, and fails (a bounce) for any other, never re-encoded.
"""

from __future__ import annotations

import dataclasses
import glob
import os

from delivery_harness import MESSAGE, DeliveryHarness
from mailsrv import config as configuration
from mailsrv.accounts import passwords
from mailsrv.delivery.attempt import Outcome
from mailsrv.listeners import Kind
from mailsrv.message import wire
from mailsrv.message.body import Body, BodyType
from mailsrv.smtp.server import make_factory
from support import listen_loopback, make_context

CHUNKING = ("8BITMIME", "PIPELINING", "SIZE 0", "CHUNKING")
BINARY = ("8BITMIME", "PIPELINING", "CHUNKING", "BINARYMIME")
#: Lines DATA would have to stuff, a bare CR, and more than one 64 KiB read of the queue file.
DOTS = b"Subject: dots\r\n\r\n" + b"".join(
    line + b"\r\n" for line in [b".", b"..", b".leading dot", b"x\ry", b"x" * 990, b""] * 60
) + b"".join(b"line %06d " % i + b"y" * 100 + b"\r\n" for i in range(1800))
BINARY_MESSAGE = (b"Subject: raw\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\r\x80\r\r\n"
                  + bytes(range(14, 256)) * 50 + b"\r")


class ChunkingTests(DeliveryHarness):
    async def test_a_peer_with_chunking_gets_one_bdat_last_chunk_byte_exact(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        for extensions in (CHUNKING, ("CHUNKING",)):  # pipelined, and one command at a time
            receiver, port = self.receiver(extensions=extensions)
            body = Body.from_wire(b"Return-Path: <alice@local.test>\r\n" + DOTS)
            [result] = await self.send(self.sender(port), "bob@example.test", body=body)
            self.assertEqual((result.outcome, result.reply), (Outcome.DELIVERED, "250 2.0.0 queued"))
            [message] = receiver.messages
            self.assertEqual(message.data, DOTS)  # nothing stuffed, our Return-Path left at home
            commands = receiver.sessions[0].commands
            self.assertIn(f"BDAT {len(DOTS)} LAST", commands)
            self.assertNotIn("DATA", commands)

    async def test_a_peer_without_chunking_gets_data(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=("8BITMIME", "PIPELINING"))
        [result] = await self.send(self.sender(port), "bob@example.test", body=Body.from_wire(DOTS))
        self.assertEqual(result.outcome, Outcome.DELIVERED)
        self.assertEqual(receiver.messages[0].data, DOTS)
        self.assertIn("DATA", receiver.sessions[0].commands)

    async def test_no_recipient_accepted_sends_no_chunk(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=CHUNKING)
        receiver.rcpt_replies["nobody@example.test"] = "550 5.1.1 no such user"
        [result] = await self.send(self.sender(port), "nobody@example.test")
        self.assertEqual((result.outcome, result.reply), (Outcome.FAILED, "550 5.1.1 no such user"))
        self.assertFalse(any(c.startswith("BDAT") for c in receiver.sessions[0].commands))

    async def test_a_refused_chunk_fails_every_accepted_recipient(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=CHUNKING)
        receiver.data_reply = "554 5.7.1 spam"
        results = await self.send(self.sender(port), "bob@example.test", "carol@example.test")
        self.assertEqual([(r.outcome, r.reply) for r in results], [(Outcome.FAILED, "554 5.7.1 spam")] * 2)

    async def test_a_body_of_another_size_than_its_record_is_never_sent(self) -> None:
        # The chunk size comes from the record; a file that disagrees would put our next
        # command into the message or the message's end into the commands: drop the connection.
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=CHUNKING)
        good = Body.from_wire(MESSAGE)
        for wrong in (good.wire_size - 1, good.wire_size + 1):
            body = Body(size=good.size, wire_size=wrong, data=good.read())
            [result] = await self.send(self.sender(port), "bob@example.test", body=body)
            self.assertEqual(result.outcome, Outcome.DEFERRED)
            self.assertIn("not the size its record says", result.reply)
        self.assertEqual(receiver.messages, [])

    async def test_binarymime_goes_with_bdat_to_a_peer_that_offers_it(self) -> None:
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        receiver, port = self.receiver(extensions=BINARY)
        body = Body.from_wire(BINARY_MESSAGE, BodyType.BINARY_MIME)
        [result] = await self.send(self.sender(port), "bob@example.test", body=body)
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        [message] = receiver.messages
        self.assertEqual(message.mail_from, "FROM:<alice@local.test> BODY=BINARYMIME")
        self.assertEqual(message.data, BINARY_MESSAGE)

    async def test_binarymime_to_a_peer_without_binarymime_or_chunking_fails_unchanged(self) -> None:
        # RFC 3030 3: such a message is returned, not converted (as 8-bit data to a peer without 8BITMIME).
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))
        for extensions in (CHUNKING, ("8BITMIME", "BINARYMIME"), ("8BITMIME", "PIPELINING")):
            receiver, port = self.receiver(extensions=extensions)
            body = Body.from_wire(BINARY_MESSAGE, BodyType.BINARY_MIME)
            [result] = await self.send(self.sender(port), "bob@example.test", body=body)
            self.assertEqual(result.outcome, Outcome.FAILED)
            self.assertTrue(result.reply.startswith("554 5.6.3 "), result.reply)
            self.assertFalse(any(c.startswith("MAIL") for c in receiver.sessions[0].commands))


class OwnServerTests(DeliveryHarness):
    """Our sender against our own SMTP server (real store), which offers CHUNKING and BINARYMIME."""

    def setUp(self) -> None:
        super().setUp()
        config = configuration.Config(data_dir=os.path.join(self.dir, "receiver"), hostname="mx1.example.test",
                                      domains=("example.test",))
        config = dataclasses.replace(config, limits=dataclasses.replace(config.limits, pregreet_wait=0))
        os.makedirs(config.data_dir)
        with open(config.users_file, "w") as f:
            f.write(f"bob@example.test:{passwords.hash_password('pw')}\n")
        self.config = config
        self.port = listen_loopback(self, make_factory(make_context(config), Kind.SMTP))
        self.mx("example.test", (10, "mx1.example.test", "127.0.0.1"))

    def stored(self) -> bytes:
        [path] = glob.glob(os.path.join(self.config.mail_dir, "example.test", "bob", "new", "*"))
        with open(path, "rb") as f:
            data = wire.to_wire(f.read())
        return data.split(b"\r\n", 4)[4]  # without its Return-Path and Received

    async def test_a_message_with_dots_arrives_byte_exact(self) -> None:
        [result] = await self.send(self.sender(self.port, tls="none"), "bob@example.test", body=Body.from_wire(DOTS))
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertEqual(self.stored(), DOTS)

    async def test_a_binarymime_message_arrives_byte_exact(self) -> None:
        body = Body.from_wire(BINARY_MESSAGE, BodyType.BINARY_MIME)
        [result] = await self.send(self.sender(self.port, tls="none"), "bob@example.test", body=body)
        self.assertEqual(result.outcome, Outcome.DELIVERED, result.reply)
        self.assertEqual(self.stored(), BINARY_MESSAGE)

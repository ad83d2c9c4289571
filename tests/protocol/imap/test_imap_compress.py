"""COMPRESS=DEFLATE (RFC 4978): the switch, both streams, pipelining, bombs, flow control, TLS."""

from __future__ import annotations

import base64
import os
import zlib

from twisted.test import iosim

from imap_harness import CREDENTIALS, REMOTE, IMAPTestCase, Session
from mailsrv.net.deflate import CHUNK
from mailsrv.net.pump import INFLATE_PER_TURN


class Client:
    """The client's two raw DEFLATE streams (RFC 4978 4: window bits -15)."""

    def __init__(self) -> None:
        self.compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        self.decompressor = zlib.decompressobj(-15)

    def pack(self, data: bytes) -> bytes:
        return self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH)

    def unpack(self, data: bytes) -> bytes:
        return self.decompressor.decompress(data)


def turn(session: Session, turns: int = 1) -> bytes:
    """What the server wrote once *turns* reactor turns passed (its flushes run on the next one)."""
    data = b""
    for _ in range(turns):
        session.clock.advance(0)
        data += session.received()
    return data


class Compress(IMAPTestCase):
    async def compressed(self, select: bytes | None = None) -> tuple[Session, Client]:
        session = await self.login(select)
        reply = await session.command(b"z COMPRESS DEFLATE")
        self.assertEqual(reply, b"z OK DEFLATE active\r\n")
        return session, Client()

    async def test_advertised_and_both_directions_deflated_from_the_next_octet(self) -> None:
        session = await self.login(None)
        self.assertIn(b" COMPRESS=DEFLATE", await session.command(b"a CAPABILITY"))
        session, client = await self.compressed()
        session.server.dataReceived(client.pack(b"b NOOP\r\n"))
        self.assertEqual(client.unpack(turn(session)), b"b OK NOOP completed\r\n")
        session.server.dataReceived(client.pack(b"c SELECT INBOX\r\n"))
        self.assertIn(b"c OK [READ-WRITE]", client.unpack(turn(session)))

    async def test_each_batch_of_writes_is_flushed_for_the_client(self) -> None:
        """Z_SYNC_FLUSH after a reply: the client inflates all of it with nothing more to come."""
        session, client = await self.compressed()
        session.server.dataReceived(client.pack(b"b CAPABILITY\r\n"))
        self.assertEqual(session.received(), b"")  # compressed, held until the batch ends
        wire = turn(session)
        self.assertTrue(wire.endswith(b"\x00\x00\xff\xff"))  # the sync flush marker
        self.assertTrue(client.unpack(wire).endswith(b"b OK CAPABILITY completed\r\n"))

    async def test_in_the_selected_state_too(self) -> None:
        session, client = await self.compressed(b"INBOX")
        session.server.dataReceived(client.pack(b"b NOOP\r\n"))
        self.assertEqual(client.unpack(turn(session)), b"b OK NOOP completed\r\n")

    async def test_a_second_compress_is_compressionactive(self) -> None:
        session, client = await self.compressed()
        session.server.dataReceived(client.pack(b"b COMPRESS DEFLATE\r\n"))
        self.assertEqual(client.unpack(turn(session)), b"b NO [COMPRESSIONACTIVE] DEFLATE is already active\r\n")
        session.server.dataReceived(client.pack(b"c NOOP\r\n"))
        self.assertEqual(client.unpack(turn(session)), b"c OK NOOP completed\r\n")

    async def test_unknown_mechanism_and_not_before_login(self) -> None:
        session = self.open()
        session.received()
        self.assertEqual(await session.command(b"a COMPRESS DEFLATE"), b"a BAD Unsupported command\r\n")
        await session.command(b"b LOGIN " + CREDENTIALS)
        self.assertEqual(await session.command(b"c COMPRESS LZW"), b"c BAD Unknown compression mechanism\r\n")
        self.assertEqual(await session.command(b"d NOOP"), b"d OK NOOP completed\r\n")  # still clear text

    async def test_input_pipelined_behind_compress_is_inflated_not_dropped(self) -> None:
        session = await self.login(None)
        client = Client()
        session.server.dataReceived(b"a COMPRESS DEFLATE\r\n" + client.pack(b"b NOOP\r\nc NOOP\r\n"))
        self.assertEqual(session.received(), b"a OK DEFLATE active\r\n")
        self.assertEqual(client.unpack(turn(session, 3)), b"b OK NOOP completed\r\nc OK NOOP completed\r\n")

    async def test_a_line_bomb_meets_the_line_limit_after_one_step(self) -> None:
        """100 MB of one line in about 100 KB: BAD at once, the rest dropped a bounded step per turn."""
        session, client = await self.compressed()
        bomb = client.compressor.compress(b"b NOOP " + b"A" * 100_000_000)
        bomb += client.compressor.flush(zlib.Z_SYNC_FLUSH)
        self.assertLess(len(bomb), 200_000)
        session.server.dataReceived(bomb)
        deflate = session.server.deflate
        self.assertLessEqual(deflate.inflated, INFLATE_PER_TURN + CHUNK)  # this turn's share, not 100 MB
        self.assertTrue(deflate.pending)
        self.assertEqual(session.transport.producerState, "paused")  # no more read meanwhile
        self.assertEqual(client.unpack(turn(session)), b"b BAD Command line too long\r\n")
        self.assertFalse(deflate.pending)  # the rest was dropped on later turns
        self.assertEqual(session.transport.producerState, "producing")  # and the socket is read again
        session.server.dataReceived(client.pack(b"\r\nc NOOP\r\n"))
        self.assertEqual(client.unpack(turn(session)), b"c OK NOOP completed\r\n")

    async def test_a_literal_bomb_meets_the_literal_limit_before_inflating(self) -> None:
        session, client = await self.compressed()
        bomb = client.compressor.compress(b"b APPEND INBOX {5000000000+}\r\n" + b"\0" * 50_000_000)
        session.server.dataReceived(bomb + client.compressor.flush(zlib.Z_SYNC_FLUSH))
        reply = client.unpack(turn(session, 3))
        self.assertIn(b"b BAD [TOOBIG]", reply)
        self.assertIn(b"* BYE", reply)
        self.assertLessEqual(session.server.deflate.inflated, 2 * CHUNK)

    async def test_big_fetch_waits_for_the_client_to_read(self) -> None:
        body = base64.encodebytes(os.urandom(3_000_000))  # compresses to about 3/4
        await self.deliver(b"Subject: big\r\n\r\n" + body.replace(b"\n", b"\r\n"))
        session, client = await self.compressed(b"INBOX")
        session.transport.producer.pauseProducing()  # the client stopped reading
        session.server.dataReceived(client.pack(b"b FETCH 1 BODY[TEXT]\r\n"))
        text = client.unpack(turn(session, 20))
        self.assertLess(len(text), 256 * 1024)  # one piece, then it waits
        self.assertNotIn(b"b OK", text)
        for _ in range(1000):
            session.transport.producer.resumeProducing()  # the client read that much
            session.transport.producer.pauseProducing()
            text += client.unpack(turn(session))
            if text.endswith(b"b OK FETCH completed\r\n"):
                break
        self.assertTrue(text.endswith(b"b OK FETCH completed\r\n"), text[-100:])
        self.assertIn(body.replace(b"\n", b"\r\n")[-1000:], text)

    async def test_corrupt_input_is_bye_and_closed(self) -> None:
        session, client = await self.compressed()
        session.server.dataReceived(b"\xff" * 16)
        self.assertEqual(client.unpack(session.received()), b"* BYE Corrupt compressed input\r\n")
        self.assertTrue(session.transport.disconnecting)

    async def test_after_starttls_compression_runs_inside_tls(self) -> None:
        """RFC 4978: compression is above TLS, so what TLS carries is the compressed stream."""
        transport = iosim.FakeTransport(None, isServer=True, peerAddress=REMOTE)
        session = self.open(transport=transport)
        session.server.dataReceived(b"a STARTTLS\r\n")
        session.server.dataReceived(b"b LOGIN " + CREDENTIALS + b"\r\n")
        for _ in range(5):
            session.clock.advance(0)
        transport.tlsbuf.clear()
        session.server.dataReceived(b"c COMPRESS DEFLATE\r\n")
        self.assertEqual(b"".join(transport.tlsbuf), b"c OK DEFLATE active\r\n")
        transport.tlsbuf.clear()
        client = Client()
        session.server.dataReceived(client.pack(b"d NOOP\r\n"))
        session.clock.advance(0)
        self.assertEqual(client.unpack(b"".join(transport.tlsbuf)), b"d OK NOOP completed\r\n")

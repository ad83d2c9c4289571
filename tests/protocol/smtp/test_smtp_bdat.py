"""BDAT (RFC 3030 2, CHUNKING) and BINARYMIME (RFC 3030 3) on an in-memory transport, byte by byte.

Every chunk's octets are read before its reply, whatever the reply, so
what follows a chunk is always the client's next command; the sessions
below check that by pipelining commands right after refused chunks.
"""

from __future__ import annotations

import dataclasses
import os
import random
import re

from mailsrv.message import wire
from mailsrv.smtp import replies
from support import audit_events
from test_smtp_session import HOST, MAX_SIZE, SMTPTestCase

ENVELOPE = b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.test>\r\n"
BINARY_ENVELOPE = b"MAIL FROM:<bob@example.net> BODY=BINARYMIME\r\nRCPT TO:<alice@example.test>\r\n"
OK = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"
QUEUED = re.compile(rb"250 2\.0\.0 Ok: queued as [0-9A-Z]{12}\r\n")
#: What DATA would have to unstuff, and lines that end nothing: in a chunk they are octets like any other.
TRICKY = b"Subject: chunks\r\n\r\n..two dots stay\r\n.\r\nMAIL FROM:<x@y>\r\nx\rbare CR\r\n\r\n.\r\n"
#: BINARYMIME content: NUL, 8-bit octets, bare CRs, a line far past 1000 octets, no final CRLF.
BINARY = (b"Subject: raw\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\x01\xff\r\x80\r\r\n"
          + bytes(range(14, 256)) * 10 + b"\r")


def reply(r: replies.Reply, **values: object) -> bytes:
    return r(**values).wire() if values else r.wire()


def received(n: int) -> bytes:
    return reply(replies.CHUNK_RECEIVED, octets=n)


class BDATTestCase(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.connect()
        self.ehlo()

    def stored(self) -> bytes:
        """The one stored message without our Return-Path and Received (4 lines for one recipient)."""
        [(addresses, data)] = self.store.calls
        self.assertEqual(addresses, ["alice@example.test"])
        return data.split(b"\r\n", 4)[4]

    def spool(self) -> list[str]:
        spool_dir = self.ctx.config.spool_dir
        return os.listdir(spool_dir) if os.path.isdir(spool_dir) else []


class ChunkTests(BDATTestCase):
    def test_one_last_chunk_is_the_whole_message_byte_exact(self):
        out = self.say(ENVELOPE + b"BDAT %d LAST\r\n" % len(TRICKY) + TRICKY)
        self.assertEqual(out[:len(OK)], OK)
        self.assertRegex(out[len(OK):], QUEUED)
        self.assertEqual(self.stored(), TRICKY)  # nothing unstuffed, nothing taken for an end of data
        [(_, data)] = self.store.calls
        self.assertIn(b"\tby mx.example.test (mailsrv) with ESMTP id ", data)  # RFC 3848 unchanged
        [transaction] = self.transactions()
        self.assertEqual((transaction["result"], transaction["size"]), (250, len(TRICKY)))

    def test_many_chunks_in_one_write_each_get_their_reply_in_order(self):
        pieces = [TRICKY[:5], TRICKY[5:20], TRICKY[20:21], TRICKY[21:]]
        data = ENVELOPE + b"".join(b"BDAT %d\r\n" % len(p) + p for p in pieces[:-1])
        data += b"BDAT %d LAST\r\n" % len(pieces[-1]) + pieces[-1] + b"NOOP\r\n"
        out = self.say(data)
        expected = OK + received(5) + received(15) + received(1)
        self.assertEqual(out[:len(expected)], expected)
        queued = QUEUED.match(out, len(expected))
        self.assertIsNotNone(queued)
        self.assertEqual(out[queued.end():], reply(replies.OK))
        self.assertEqual(self.stored(), TRICKY)

    def test_chunks_cut_anywhere_give_the_same_replies_and_message(self):
        # The same session fed whole, one octet at a time and in random packets: a CRLF split
        # between chunks ("\r" last in one, "\n" first in the next) is one CRLF.
        pieces = [b"Subject: x\r", b"\n\r\nline\r", b"\n", b"", b"\r\n.\r\nend\r\n"]
        session = ENVELOPE + b"".join(b"BDAT %d\r\n" % len(p) + p for p in pieces) + b"BDAT 0 LAST\r\nRSET\r\n"

        def run(cuts: list[int]) -> tuple[bytes, bytes]:
            self.setUp()
            out = b""
            for start, end in zip([0, *cuts], [*cuts, len(session)]):
                out += self.say(session[start:end])
            return re.sub(rb"queued as \w+", b"queued", out), self.stored()

        reference = run([])
        rng = random.Random(3030)
        for cuts in [list(range(1, len(session))), *(sorted(rng.sample(range(1, len(session)), 12)) for _ in range(20))]:
            self.assertEqual(run(cuts), reference)
        out, stored = reference
        self.assertEqual(stored, b"".join(pieces))
        self.assertTrue(out.endswith(b"250 2.0.0 Ok: queued\r\n250 2.0.0 Ok\r\n"))

    def test_bdat_0_last_ends_the_message(self):
        self.assertEqual(self.say(ENVELOPE + b"BDAT 6\r\nx: y\r\n"), OK + received(6))
        self.assertRegex(self.say(b"BDAT 0 LAST\r\n"), QUEUED)
        self.assertEqual(self.stored(), b"x: y\r\n")

    def test_last_is_case_insensitive(self):
        self.assertRegex(self.say(ENVELOPE + b"BDAT 6 last\r\nx: y\r\n")[len(OK):], QUEUED)

    def test_binarymime_content_is_stored_as_sent(self):
        out = self.say(BINARY_ENVELOPE + b"BDAT %d LAST\r\n" % len(BINARY) + BINARY)
        self.assertRegex(out[len(OK):], QUEUED)
        self.assertEqual(self.stored(), BINARY)

    def test_a_spooled_chunk_is_written_as_it_arrives(self):
        limits = dataclasses.replace(self.config.limits, spool_threshold=64, max_message_size=10 * MAX_SIZE)
        self.ctx.config = dataclasses.replace(self.config, limits=limits)
        body = b"Subject: big\r\n\r\n" + b"y" * 998 + b"\r\n" + b"z" * (8 * MAX_SIZE)
        self.assertEqual(self.say(ENVELOPE + b"BDAT %d LAST\r\n" % len(body) + body[:1000]), OK)
        self.assertEqual(len(self.spool()), 1)  # past the threshold the chunk goes to the spool file
        self.assertTrue(self.server.transaction.writer.spooled)
        for start in range(1000, len(body) - 4096, 4096):
            self.assertEqual(self.say(body[start:start + 4096]), b"")
        self.assertRegex(self.say(body[start + 4096:]), QUEUED)
        self.assertEqual(self.stored(), body)
        self.assertEqual(self.spool(), [])

    def test_input_after_the_last_chunk_waits_for_the_store(self):
        self.store.manual = True
        self.say(ENVELOPE)
        self.assertEqual(self.say(b"BDAT 6 LAST\r\nx: y\r\nNOOP\r\n"), b"")
        self.assertEqual(self.transport.producerState, "paused")  # back-pressure while the body is stored
        self.transport.clear()
        self.store.pending[0].callback("stored")
        out = self.transport.value()
        self.assertRegex(out, QUEUED)
        self.assertTrue(out.endswith(b"\r\n" + reply(replies.OK)))
        self.assertEqual(self.transport.producerState, "producing")


class SequenceTests(BDATTestCase):
    def test_bdat_without_mail_is_503_and_its_octets_are_read(self):
        # RFC 3030 2: the octets are read, then the reply; "NOOP" inside the chunk is never run.
        self.assertEqual(self.say(b"BDAT 6\r\nNOOP\r\nRSET\r\n"), reply(replies.NEED_MAIL) + reply(replies.OK))
        self.assertEqual(self.say(b"BDAT 6 LAST\r\nQUIT\r\nNOOP\r\n"), reply(replies.NEED_MAIL) + reply(replies.OK))
        self.assertFalse(self.transport.disconnecting)

    def test_bdat_without_recipients_is_554_and_its_octets_are_read(self):
        out = self.say(b"MAIL FROM:<bob@example.net>\r\nRCPT TO:<nobody@example.test>\r\nBDAT 6 LAST\r\nRSET\r\nNOOP\r\n")
        self.assertTrue(out.endswith(reply(replies.NO_RECIPIENTS) + reply(replies.OK)), out)
        self.assertEqual(self.store.calls, [])

    def test_data_after_bdat_is_503(self):
        # RFC 3030 2: DATA and BDAT do not mix in one transaction.
        self.assertEqual(self.say(ENVELOPE + b"BDAT 5\r\nx: \r\nDATA\r\n"),
                         OK + received(5) + reply(replies.DATA_AFTER_BDAT))
        self.assertEqual(self.say(b"RSET\r\n"), reply(replies.OK))
        self.assertEqual(self.spool(), [])
        self.assertEqual(self.say(ENVELOPE + b"DATA\r\n")[len(OK):], reply(replies.START_DATA))

    def test_data_after_body_binarymime_is_503(self):
        # RFC 3030 3: a BINARYMIME message can only be sent with BDAT.
        self.assertEqual(self.say(BINARY_ENVELOPE + b"DATA\r\n"), OK + reply(replies.BINARYMIME_NEEDS_BDAT))
        self.assertRegex(self.say(b"BDAT 6 LAST\r\nx: y\r\n"), QUEUED)

    def test_rset_between_chunks_drops_the_body(self):
        limits = dataclasses.replace(self.config.limits, spool_threshold=64)
        self.ctx.config = dataclasses.replace(self.config, limits=limits)
        self.say(ENVELOPE + b"BDAT 200\r\n" + b"a" * 200)
        self.assertEqual(len(self.spool()), 1)
        self.assertEqual(self.say(b"RSET\r\nBDAT 1 LAST\r\nx"), reply(replies.OK) + reply(replies.NEED_MAIL))
        self.assertEqual(self.spool(), [])
        self.assertEqual(self.store.calls, [])
        self.assertEqual(self.transactions()[0]["result"], "aborted")

    def test_a_client_leaving_inside_a_chunk_leaves_no_spool_file(self):
        limits = dataclasses.replace(self.config.limits, spool_threshold=64)
        self.ctx.config = dataclasses.replace(self.config, limits=limits)
        self.say(ENVELOPE + b"BDAT 500 LAST\r\n" + b"a" * 200)
        self.assertEqual(len(self.spool()), 1)
        self.server.connectionLost()
        self.assertEqual(self.spool(), [])
        self.assertEqual(self.store.calls, [])

    def test_the_timeout_runs_while_a_chunk_is_awaited(self):
        self.say(ENVELOPE + b"BDAT 100 LAST\r\n" + b"a" * 10)
        self.clock.advance(299)
        self.say(b"b" * 10)  # progress restarts the timer
        self.clock.advance(299)
        self.assertFalse(self.transport.disconnecting)
        self.transport.clear()
        self.clock.advance(2)
        self.assertEqual(self.transport.value(), reply(replies.TIMEOUT, host=HOST))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.store.calls, [])


class LimitTests(BDATTestCase):
    def test_exactly_the_size_limit_in_chunks_is_accepted(self):
        half = b"x" * (MAX_SIZE // 2)
        out = self.say(ENVELOPE + b"BDAT %d\r\n" % len(half) + half + b"BDAT %d LAST\r\n" % len(half) + half)
        self.assertRegex(out[len(OK) + len(received(len(half))):], QUEUED)

    def test_the_chunk_over_the_limit_is_552_read_to_its_end(self):
        # RFC 1870 6.3 and RFC 3030 2: the chunk taking the total over the limit fails the
        # transaction; its octets are read, the chunks pipelined after it get 503, theirs read too.
        half = b"x" * (MAX_SIZE // 2)
        out = self.say(ENVELOPE + b"BDAT %d\r\n" % len(half) + half + b"BDAT %d\r\n" % (len(half) + 1) + half + b"y"
                       + b"BDAT 4 LAST\r\nNOOPNOOP\r\n")
        self.assertEqual(out, OK + received(len(half)) + reply(replies.SIZE_EXCEEDED) + reply(replies.NEED_MAIL)
                         + reply(replies.OK))
        self.assertEqual(self.store.calls, [])
        self.assertEqual(self.spool(), [])
        [transaction] = self.transactions()
        self.assertEqual((transaction["result"], transaction["size"]), (552, MAX_SIZE + 1))

    def test_a_huge_chunk_is_not_read_and_closes(self):
        # A client can announce 10^20 octets and send nothing: 552, then 421 and the connection closes.
        out = self.say(ENVELOPE + b"BDAT 99999999999999999999 LAST\r\nNOOP\r\n")
        self.assertEqual(out, OK + reply(replies.SIZE_EXCEEDED) + reply(replies.CHUNK_TOO_BIG, host=HOST))
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.transactions()[0]["result"], 552)

    def test_a_huge_chunk_without_a_transaction_closes_too(self):
        out = self.say(b"BDAT %d\r\n" % (3 * MAX_SIZE))
        self.assertEqual(out, reply(replies.NEED_MAIL) + reply(replies.CHUNK_TOO_BIG, host=HOST))
        self.assertTrue(self.transport.disconnecting)

    def test_an_unreadable_size_is_501_and_closes(self):
        # Without a size the end of the chunk cannot be found: what follows is not commands.
        for arguments in [b"", b" -1", b" x", b" 1x", b" +1", b" 0x10", b" 10 NOTLAST", b" 10 LAST x", b" \xff"]:
            self.connect()
            self.ehlo()
            out = self.say(ENVELOPE + b"BDAT" + arguments + b"\r\nNOOP\r\n")
            self.assertEqual(out, OK + reply(replies.SYNTAX, usage="BDAT size [LAST]")
                             + reply(replies.BDAT_UNREADABLE, host=HOST), arguments)
            self.assertTrue(self.transport.disconnecting)
            self.assertEqual(self.store.calls, [])


class BareLineFeedTests(BDATTestCase):
    def test_a_bare_lf_is_554_as_for_data(self):
        # RFC 5321 2.3.8: the store would give the LF back as CRLF.
        self.assertEqual(self.say(ENVELOPE + b"BDAT 8 LAST\r\nx: y\nz\r\nNOOP\r\n"),
                         OK + reply(replies.BARE_LF) + reply(replies.OK))
        self.assertEqual(self.store.calls, [])

    def test_a_bare_lf_at_the_start_of_a_chunk(self):
        self.assertEqual(self.say(ENVELOPE + b"BDAT 4\r\nx: y" + b"BDAT 3 LAST\r\n\nz\n"),
                         OK + received(4) + reply(replies.BARE_LF))

    def test_a_bare_lf_in_binarymime_is_refused_not_changed(self):
        body = b"Content-Transfer-Encoding: binary\r\n\r\nPNG\r\n\x1a\n\x00"
        self.assertEqual(self.say(BINARY_ENVELOPE + b"BDAT %d LAST\r\n" % len(body) + body),
                         OK + reply(replies.BINARY_BARE_LF))
        self.assertEqual(self.store.calls, [])
        self.assertEqual(audit_events(list(self.log), "transaction")[0]["result"], 554)

    def test_the_disk_form_gives_every_other_octet_back(self):
        # What the store keeps (LF line ends) comes back as it was sent when no LF is bare.
        self.assertEqual(wire.to_wire(wire.to_disk(BINARY)), BINARY)

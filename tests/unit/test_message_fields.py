"""message/fields.py: header fields as a mail client reads them, for the submission checks."""

from __future__ import annotations

import io
import random
import string

from twisted.trial import unittest

from mailsrv.message import fields, wire
from mailsrv.message.body import Body, BodyWriter
from mailsrv.message.fields import field_values, mailbox_list, parsed_mailbox_list, read_header


class ReadHeaderTests(unittest.SynchronousTestCase):
    def test_the_header_in_wire_form_without_the_empty_line(self):
        body = Body.from_wire(b"Received: x\r\n\ty\r\nSubject: a\r\r\n\r\nbody\r\n\r\nmore\r\n")
        self.assertEqual(read_header(body), b"Received: x\r\n\ty\r\nSubject: a\r\r\n")

    def test_no_empty_line_is_all_header_and_a_leading_one_is_none(self):
        self.assertEqual(read_header(Body.from_wire(b"A: b\r\n")), b"A: b\r\n")
        self.assertEqual(read_header(Body.from_wire(b"\r\nbody\r\n")), b"")

    def test_a_spooled_body_is_read_only_up_to_its_header(self):
        writer = BodyWriter(self.mktemp(), threshold=10)
        writer.write(b"A: " + b"a" * (wire.CHUNK - 4) + b"\r\n\r\n" + b"b" * 10 * wire.CHUNK)
        body = writer.finish()
        self.addCleanup(body.discard)
        reads: list[int] = []
        opened = body.open

        def counting() -> io.BufferedReader:
            f = opened()
            read = f.read
            f.read = lambda size=-1: reads.append(size) or read(size)  # type: ignore[method-assign]
            return f

        body.open = counting  # type: ignore[method-assign]
        self.assertEqual(read_header(body), b"A: " + b"a" * (wire.CHUNK - 4) + b"\r\n")
        self.assertEqual(len(reads), 2)  # the empty line straddles the first two chunks


class FieldValueTests(unittest.SynchronousTestCase):
    def test_values_are_unfolded_and_names_case_insensitive(self):
        header = b"From: a@b\r\nSubject: x\r\nFROM :\r\n c@d,\r\n\te@f\r\nX-From: no\r\n"
        self.assertEqual(field_values(header, b"from"), [b"a@b", b"c@d,\te@f"])
        self.assertEqual(field_values(header, b"date"), [])

    def test_a_bare_cr_stays_in_its_field(self):
        self.assertEqual(field_values(b"From: a@b\rFrom: c@d\r\n", b"from"), [b"a@b\rFrom: c@d"])


class MailboxListTests(unittest.SynchronousTestCase):
    def test_clean_lists_give_their_addresses(self):
        for value, addresses in [
            (b"alice@example.test", ["alice@example.test"]),
            (b'"Smith, Alice" <alice@example.test>, bob@example.test (Bob)', ["alice@example.test", "bob@example.test"]),
            (b"=?utf-8?q?B=C3=B6b?= <bob@example.test>", ["bob@example.test"]),
            (b"J\xc3\xb6rg Q. Public <jqp@example.test>", ["jqp@example.test"]),  # obsolete but clear
            (b"team: alice@example.test, bob@example.test;", ["alice@example.test", "bob@example.test"]),
        ]:
            self.assertEqual(mailbox_list(value), addresses, value)

    def test_anything_a_parser_must_guess_at_is_none(self):
        for value in (b"", b"undisclosed:;", b"alice", b"alice@example.test <bob@example.test>",
                      b"<alice@example.test>bob@example.test", b"alice@example.test; bob@example.test",
                      b"a\rb <alice@example.test>", b"\xff <alice@example.test>", b"alice@", b'"', b"a:b:c;d;"):
            self.assertIsNone(mailbox_list(value), value)


class FastPathTests(unittest.SynchronousTestCase):
    """The common From: forms skip the stdlib's parser; they must read as it reads them."""

    def test_simple_forms_agree_with_the_parser(self):
        rng = random.Random(5322)
        atext = string.ascii_letters + string.digits + "!#$%&'*+/=?^_`{|}~-"

        def atom() -> str:
            return "".join(rng.choice(atext) for _ in range(rng.randint(1, 6)))

        def dot_atom() -> str:
            return ".".join(atom() for _ in range(rng.randint(1, 3)))

        fast = 0
        for _ in range(1000):
            addr = f"{dot_atom()}@{dot_atom()}"
            name = rng.choice(["", " ".join(atom() for _ in range(rng.randint(1, 3))),
                               '"' + "".join(rng.choice(atext + " ,.;:@<>()[]") for _ in range(5)) + '"'])
            value = rng.choice([addr, f"<{addr}>", f"{name} <{addr}>", f"{name}<{addr}>"]).encode()
            self.assertEqual(mailbox_list(value), parsed_mailbox_list(value), value)
            self.assertEqual(mailbox_list(value), [addr], value)
            fast += fields._SIMPLE_MAILBOX.match(value) is not None
        self.assertGreater(fast, 700)  # most took the fast path, so the comparison tested it

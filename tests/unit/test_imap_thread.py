"""The RFC 5256 threading algorithms on fields alone (no mailbox), and the THREAD response."""

from __future__ import annotations

from mailsrv.imap import thread
from mailsrv.imap.search import Message
from mailsrv.imap.sort import Hit
from mailsrv.imap.sortfields import fields_of


def hit(seq: int, header: str, internaldate: float = 0.0) -> Hit:
    message = Message(seq, seq + 100, frozenset(), 10, internaldate, "", lambda: None)
    return message, fields_of(header.replace("\n", "\r\n").encode() + b"\r\n", internaldate)


def test_fields_of_a_header() -> None:
    _, fields = hit(1, "Subject: Re: [x] Hi\nFrom: \"B\" <Bob@Example>\nDate: Mon, 01 Jan 2024 01:00:00 -0000\n"
                       "Message-ID: < a@b > <c@d>\nReferences: junk <p@q>\n  <r@s>\nIn-Reply-To: <t@u>\n")
    assert (fields.subject, fields.refwd, fields.from_key, fields.to_key) == ("Hi", True, b"BOB", b"")
    assert fields.sent == 1704070800.0  # -0000 is UTC
    assert fields.message_id == "c@d"  # "< a@b >" holds spaces: not a valid id
    assert fields.references == ("p@q", "r@s")


def test_fields_fall_back() -> None:
    _, fields = hit(1, "Date: yesterday\nReferences: none here\nIn-Reply-To: <t@u> <v@w>\n", internaldate=42.0)
    assert fields.sent == 42.0  # RFC 5256 2.2: unparseable Date: the internal date
    assert fields.references == ("t@u",)  # the first valid id of In-Reply-To
    assert fields.message_id is None and fields.subject == ""


def test_render() -> None:
    a, b, c, d = (thread.Node(n, hit(n, "")[1], n) for n in (1, 2, 3, 4))
    a.adopt(b)
    b.adopt(c)
    b.adopt(d)
    dummy = thread.Node()
    dummy.adopt(thread.Node(7, hit(7, "")[1], 7))
    dummy.adopt(thread.Node(8, hit(8, "")[1], 8))
    assert thread.render([a, dummy]) == b"(1 2 (3)(4))((7)(8))"  # RFC 5256 5: thread-members, thread-nested
    assert thread.render([]) == b""


def test_a_long_chain_does_not_recurse() -> None:
    hits = [hit(1, "Message-ID: <m1@x>\nSubject: deep")]
    for n in range(2, 5001):
        hits.append(hit(n, f"Message-ID: <m{n}@x>\nIn-Reply-To: <m{n - 1}@x>\nSubject: Re: deep"))
    rendered = thread.render(thread.references(hits, uid=False))
    assert rendered == b"(" + b" ".join(b"%d" % n for n in range(1, 5001)) + b")"
    wide = [hit(1, "Message-ID: <r@x>\nSubject: wide")]
    # Each a reply to the one before, and a second reply beside it: 2,000 levels of nesting.
    for n in range(2, 4001, 2):
        parent = "r" if n == 2 else f"m{n - 2}"
        wide.append(hit(n, f"Message-ID: <m{n}@x>\nIn-Reply-To: <{parent}@x>\nSubject: Re: wide"))
        wide.append(hit(n + 1, f"Message-ID: <s{n}@x>\nIn-Reply-To: <{parent}@x>\nSubject: Re: wide"))
    assert thread.render(thread.references(wide, uid=False)).count(b"(") == 4001


def test_uid_numbers() -> None:
    hits = [hit(1, "Message-ID: <a@x>"), hit(2, "Message-ID: <b@x>\nReferences: <a@x>")]
    assert thread.render(thread.references(hits, uid=True)) == b"(101 102)"
    assert thread.render(thread.ordered_subject(hits, uid=True)) == b"(101 102)"


def test_dummy_subjects_merge() -> None:
    # Two threads, each under a missing parent, with one base subject: one dummy holds them all.
    hits = [
        hit(1, "Message-ID: <a@x>\nReferences: <gone1@x>\nSubject: Re: topic\nDate: Mon, 01 Jan 2024 01:00 +0000"),
        hit(2, "Message-ID: <b@x>\nReferences: <gone1@x>\nSubject: Re: topic\nDate: Mon, 01 Jan 2024 02:00 +0000"),
        hit(3, "Message-ID: <c@x>\nReferences: <gone2@x>\nSubject: Re: topic\nDate: Mon, 01 Jan 2024 03:00 +0000"),
        hit(4, "Message-ID: <d@x>\nReferences: <gone2@x>\nSubject: Re: topic\nDate: Mon, 01 Jan 2024 00:00 +0000"),
    ]
    assert thread.render(thread.references(hits, uid=False)) == b"((4)(1)(2)(3))"


def test_a_huge_references_field_links_in_linear_time() -> None:
    # 20,000 missing ancestors, each a dummy that pruning removes; then the subject makes 1 a reply to 2.
    references = " ".join(f"<r{n}@x>" for n in range(20_000))
    hits = [hit(1, f"Message-ID: <m@x>\nReferences: {references}\nSubject: Re: x"), hit(2, "Subject: x")]
    assert thread.render(thread.references(hits, uid=False)) == b"(2 1)"

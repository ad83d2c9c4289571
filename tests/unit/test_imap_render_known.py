"""``fetch.render_known``, the one-string FETCH response of items that need no file, says what ``render`` says."""

from __future__ import annotations

import itertools

from mailsrv.imap import fetch
from mailsrv.imap.fetchatt import FetchItem
from mailsrv.store.message import MessageInfo

VIEWS = [
    MessageInfo(1, "k1", frozenset(), 0, 0.0, 1),
    MessageInfo(4294967295, "k2", frozenset({"\\Seen", "\\Recent", "$Label1", "\\Flagged"}), 123456789,
                1700000000.5, 2**63 - 1),
    MessageInfo(7, "k3", frozenset({"\\Deleted"}), 5, 951782400.0, 0),  # 29-Feb-2000
]
NAMES = ["UID", "FLAGS", "MODSEQ", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODYSTRUCTURE", "BODY"]
CACHED = {"envelope": b'("Mon, 7 Feb 1994" "=?utf-8?q?x?=" NIL NIL NIL NIL NIL NIL NIL NIL)',
          "bodystructure": b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 3 1 NIL NIL NIL NIL)',
          "body": b'("TEXT" "PLAIN" NIL NIL NIL "7BIT" 3 1)'}


def test_every_combination_answers_as_render() -> None:
    for count in (1, 2, 3):
        for names in itertools.permutations(NAMES, count):
            items = [FetchItem(name) for name in names]
            for view, with_uid, seq in itertools.product(VIEWS, (False, True), (1, 99999)):
                expected = b"".join(fetch.render(seq, view, items, with_uid, cached=CACHED))  # type: ignore[arg-type]
                assert fetch.render_known(seq, view, items, with_uid, CACHED) == expected, (names, view, with_uid)


def test_without_the_cache_it_answers_the_items_of_the_view() -> None:
    items = [FetchItem(name) for name in ("FLAGS", "UID", "RFC822.SIZE")]
    assert fetch.render_known(3, VIEWS[1], items, True) == b"".join(fetch.render(3, VIEWS[1], items, True))  # type: ignore[arg-type]
    assert fetch.render_known(3, VIEWS[0], items, True) == b"* 3 FETCH (FLAGS () UID 1 RFC822.SIZE 0)\r\n"

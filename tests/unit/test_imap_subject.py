"""RFC 5256 2.1 base subjects and the i;ascii-casemap collation."""

from __future__ import annotations

import pytest

from mailsrv.imap.subject import base_subject, casemap


@pytest.mark.parametrize(
    "subject, base, refwd",
    [
        ("Hello", "Hello", False),
        ("Re: Hello", "Hello", True),
        ("RE:   re: FWD: fw: Hello", "Hello", True),
        ("Re[2]: Hello", "Hello", True),  # subj-refwd may hold a blob before its colon
        ("Re [list]: Hello", "Hello", True),
        ("[list] Re: Hello", "Hello", True),  # blobs before a subj-refwd go with it
        ("[list] Hello", "Hello", False),  # (4): a leading blob goes ...
        ("[list]", "[list]", False),  # ... unless nothing would be left
        ("[a] [b] Hello", "Hello", False),
        ("Hello (fwd)", "Hello", True),  # (2): the trailer
        ("Hello (FWD)  (fwd) ", "Hello", True),
        ("[Fwd: Re: Hello]", "Hello", True),  # (6): unwrapped, then (2)..(5) again
        ("[fwd: Hello (fwd)]", "Hello", True),
        ("  Hello\t  world  ", "Hello world", False),  # (1): tabs, folding, runs of spaces
        ("=?utf-8?q?Re=3A_Gr=C3=BC=C3=9Fe?=", "Grüße", True),  # (1): RFC 2047 first
        ("=?iso-8859-1?q?Re:_caf=E9?= (fwd)", "café", True),
        ("=?x-unknown?q?abc?=", "=?x-unknown?q?abc?=", False),  # undecodable: kept as is
        ("", "", False),
        (None, "", False),
        ("Re:", "", True),
        ("Reply: Hello", "Reply: Hello", False),  # "re" must be followed by its colon
    ],
)
def test_base_subject(subject: str | None, base: str, refwd: bool) -> None:
    assert base_subject(subject) == (base, refwd)


def test_casemap_folds_ascii_letters_only() -> None:
    assert casemap("abc XYZ") == b"ABC XYZ"
    assert casemap("é") == "é".encode()  # i;ascii-casemap leaves non-ASCII octets alone
    assert sorted(["b", "A", "a", "_"], key=casemap) == ["A", "a", "b", "_"]

"""mailsrv.address: SMTP paths, user addresses, domains, and the store's paths."""

from __future__ import annotations

import os

import pytest

from mailsrv.address import (
    AddressSyntaxError,
    Mailbox,
    address_problem,
    canonical_address,
    canonical_domain,
    mailbox_path,
    normalize_domain,
    parse_path,
)
from mailsrv.store import Store
from mailsrv.store.errors import InvalidAddress
from mailsrv.workers import InlineExecutor

# --- domains -------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain, normal",
    [
        ("Example.TEST", "example.test"),
        ("example.test.", "example.test"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("BÜCHER.example.", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("[IPv6:::1]", "[ipv6:::1]"),
    ],
)
def test_normalize_domain_folds_case_root_dot_and_unicode(domain, normal):
    assert normalize_domain(domain) == normal


def test_a_label_idna_refuses_is_not_a_domain():
    with pytest.raises(AddressSyntaxError, match="not a domain name"):
        normalize_domain("a\u200dü.example")  # a joiner where RFC 5892 forbids it
    assert canonical_domain("a\u200dü.example") is None


@pytest.mark.parametrize(
    "domain", ["", ".", "..", "example..test", "exa_mple.test", "-example.test", "a" * 64 + ".test",
               ("a" * 63 + ".") * 4 + "test", "example/test", "[192.0.2.1]"],
)
def test_canonical_domain_refuses_non_dns_names(domain):
    assert canonical_domain(domain) is None


def test_canonical_domain_takes_the_longest_labels_and_names():
    assert canonical_domain("a" * 63 + ".test") == "a" * 63 + ".test"
    longest = ".".join(["a" * 63] * 3 + ["b" * 63])  # 255 octets, RFC 5321 4.5.3.1.2
    assert canonical_domain(longest) == longest


# --- user addresses ------------------------------------------------------------


def test_canonical_address_folds_case_and_converts_the_domain():
    assert canonical_address("Alice.B+Tag@Example.TEST") == "alice.b+tag@example.test"
    assert canonical_address("alice@Bücher.example.") == "alice@xn--bcher-kva.example"


@pytest.mark.parametrize(
    "address",
    [
        "",
        "alice",
        "@example.test",
        "alice@",
        '"alice"@example.test',
        "bob%remote.test@example.test",
        "remote.test!bob@example.test",
        "@relay.test:bob@example.test",
        "a..b@example.test",
        ".a@example.test",
        "alice@exa_mple.test",
        "alice@-example.test",
        "a b@example.test",
        "x" * 65 + "@example.test",
        "alice@example.test\n",
        "a€@example.test",  # a symbol: only letters, marks and digits outside ASCII
        "a\u00a0b@example.test",  # a no-break space
        "a\u200bb@example.test",  # a zero-width space
        "ö" * 33 + "@example.test",  # 66 octets in UTF-8
    ],
)
def test_canonical_address_refuses_non_plain(address):
    assert canonical_address(address) is None


@pytest.mark.parametrize(
    "address, reason",
    [
        ("a/b@example.test", "may not contain '/'"),
        ('"q"@example.test', "may not contain '\"'"),
        ("bob%x@example.test", "may not contain '%'"),
        (".x@example.test", "may not start or end with a dot"),
        ("a..b@example.test", "two dots in a row"),
        ("alice@exa_mple.test", "'exa_mple.test' is not a domain name"),
        ("alice", "expected local@domain"),
        ("x" * 65 + "@example.test", "longer than 64"),
        ("x" * 64 + "@" + ".".join(["a" * 63] * 3) + ".test", "longer than 254"),
    ],
)
def test_address_problem_says_why(address, reason):
    assert reason in address_problem(address)
    assert address_problem("Alice.B+tag@Example.TEST") is None


def test_a_user_local_part_may_be_utf8_in_nfc_and_lower_case():
    """RFC 6531 users: non-ASCII letters, NFC (RFC 6532 3.1), so both spellings of é are one user."""
    assert canonical_address("JÖSÉ@Bücher.Example") == "jösé@xn--bcher-kva.example"
    assert canonical_address("jo\u0308se\u0301@example.test") == "jösé@example.test"
    assert canonical_address("用户@例え.テスト") == "用户@xn--r8jz45g.xn--zckzah"
    assert canonical_address("ö" * 32 + "@example.test") is not None  # 64 octets


def test_utf8_local_parts_are_lower_cased_not_case_folded():
    """Full folding would make straße and strasse one user (and rename Maildirs); lower case keeps them two."""
    assert canonical_address("STRAẞE@example.test") == "straße@example.test"
    assert canonical_address("straße@example.test") != canonical_address("strasse@example.test")
    assert canonical_address("ΟΔΟΣ@example.test") == "οδος@example.test"  # final sigma, as Python lowers it


def test_a_user_address_fits_an_smtp_path():
    """RFC 5321 4.5.3.1.3: a user whose address no RCPT can carry would never get mail."""
    address = "x" * 64 + "@" + ".".join(["a" * 63, "a" * 63, "b" * 59]) + ".t"
    assert len(address) == 254
    assert canonical_address(address) == address
    assert parse_path(address.encode()).plain == address


# --- the store's paths -----------------------------------------------------------

# Addresses that look plain but would name another path in the store.
STORE_REFUSES = [
    "a/b@example.test",
    "alice/.proj2@example.test",
    "alice/../bob@example.test",
    "../x@example.test",
    "a\\b@example.test",
    "a\x00b@example.test",
    ".hidden@example.test",
    ".@example.test",
    "..@example.test",
    "alice@.example.test",
    "alice@example/test",
    "alice@..",
    "alice@../x",
    "alice@.",
    "@example.test",
    "noat",
]
TRICKY_BUT_FINE = [
    "alice@example.test",
    "a.b@example.test",
    "alice+tag@example.test",
    "o'brien@example.test",
    "#$&*=?^_`{|}~-@example.test",
    "a-b@sub.example.test",
    "x" * 64 + "@example.test",
]


@pytest.mark.parametrize("address", STORE_REFUSES)
def test_the_store_refuses_every_address_that_would_name_another_path(tmp_path, address):
    root = tmp_path / "mail"
    with pytest.raises(AddressSyntaxError):
        mailbox_path(address)
    with pytest.raises(InvalidAddress):
        Store(str(root), InlineExecutor()).user(address)
    assert not root.exists()


@pytest.mark.parametrize("address", TRICKY_BUT_FINE)
def test_every_user_address_gets_its_own_maildir_under_its_domain(tmp_path, address):
    """Otherwise a user can exist whose login and delivery then fail."""
    canonical = canonical_address(address)
    assert canonical == address.lower()
    domain, local = mailbox_path(canonical)
    for part in (domain, local):
        assert part not in (".", "..") and not part.startswith(".")
        assert not any(c in part for c in "/\\\x00")
    user = Store(str(tmp_path), InlineExecutor()).user(canonical)
    assert os.path.dirname(os.path.dirname(os.path.normpath(user.path))) == str(tmp_path)
    assert (user.address, user.path) == (canonical, os.path.join(str(tmp_path), domain, local))


def test_the_store_keys_users_by_canonical_address(tmp_path):
    store = Store(str(tmp_path), InlineExecutor())
    assert store.user("Alice@Example.TEST.") is store.user("alice@example.test")


# --- SMTP paths ------------------------------------------------------------------


def test_plain_path():
    assert parse_path(b"Alice@Example.TEST") == Mailbox("Alice", "example.test")


def test_quoted_local_part_is_dequoted():
    box = parse_path(b'"john \\"j\\" doe"@example.test')
    assert box.local == 'john "j" doe'
    assert str(box) == '"john \\"j\\" doe"@example.test'


def test_routing_forms_route_elsewhere():
    for path in (b"a%b.example@example.test", b"b.example!a@example.test", b'"a@b.example"@example.test'):
        assert parse_path(path).routes_elsewhere, path
    assert not parse_path(b"a.b+tag@example.test").routes_elsewhere


def test_source_route_is_recorded_and_left_out_of_the_mailbox():
    # RFC 5321 4.1.1.3: the route is to be ignored, the mailbox judged alone.
    box = parse_path(b"@x.example,@y.example:a@example.test")
    assert (box.routed, box.routes_elsewhere, str(box)) == (True, False, "a@example.test")


def test_mailbox_shows_as_sent_and_looks_up_dequoted():
    box = parse_path(b'"Bob%x.example"@Example.TEST')
    assert (str(box), box.plain) == ('"Bob%x.example"@Example.TEST', "Bob%x.example@example.test")


def test_literal():
    assert parse_path(b"a@[192.0.2.1]").is_literal


@pytest.mark.parametrize(
    "path",
    [b"", b"a", b"a@", b"@example.test", b"a..b@example.test", b"a@-x.example", b"\xc3\xa4@example.test",
     b"a@b@c", b"a@" + b"b" * 64 + b".example", b"a@example.test."],
)
def test_bad_path_syntax(path):
    with pytest.raises(AddressSyntaxError):
        parse_path(path)


def test_path_length_limits():
    # RFC 5321 4.5.3.1
    with pytest.raises(AddressSyntaxError, match="local part too long"):
        parse_path(b"a" * 65 + b"@example.test")
    parse_path(b"a" * 64 + b"@example.test")
    with pytest.raises(AddressSyntaxError, match="address too long"):
        parse_path(b"a@" + b"b." * 127 + b"example")


def test_a_utf8_path_takes_utf8_local_parts_and_u_labels():
    """RFC 6531 3.3 (the transaction has SMTPUTF8)."""
    box = parse_path("Jösé@Bücher.example".encode(), utf8=True)
    assert (box.local, box.domain, str(box)) == ("Jösé", "xn--bcher-kva.example", "Jösé@Bücher.example")
    assert parse_path("jösé@xn--bcher-kva.example".encode(), utf8=True).plain == "jösé@xn--bcher-kva.example"
    assert parse_path('"jö sé"@example.test'.encode(), utf8=True).local == "jö sé"
    assert parse_path("jo\u0308@example.test".encode(), utf8=True).local == "jö"  # NFC, RFC 6532 3.1
    assert parse_path(b"alice@example.test", utf8=True) == parse_path(b"alice@example.test")


@pytest.mark.parametrize(
    "path, reason",
    [
        (b"j\xf6s\xe9@example.test", "not UTF-8"),  # Latin-1
        (b"a@ex\xc3ample.test", "not UTF-8"),  # a truncated sequence
        ("ö" * 33 + "@example.test", "local part too long"),  # 66 octets
        ("a@a\u200dü.example", "not a domain name"),  # IDNA refuses the label
        ("a..ö@example.test", "bad address syntax"),
        ("a@ö-.example", "bad address syntax"),
        ("a\x00ö@example.test", "bad address syntax"),
    ],
)
def test_a_bad_utf8_path_says_why(path, reason):
    raw = path if isinstance(path, bytes) else path.encode()
    with pytest.raises(AddressSyntaxError, match=reason):
        parse_path(raw, utf8=True)


def test_path_domains_and_user_domains_are_normalised_alike():
    domain = parse_path(b"a@Example.TEST").domain
    assert domain == normalize_domain("Example.TEST.") == canonical_domain("EXAMPLE.test")

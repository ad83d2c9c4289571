"""Keys, records and signed messages for the sender authentication tests (protocol and e2e).

The keys are made with mailsrv's own ``dkim keygen`` code, published as it
prints them, and messages signed with dkimpy, as a remote sender would.
"""

from __future__ import annotations

import dkim

from dns_harness import Zone
from mailsrv.dkim.keys import Algorithm, generate, load

_KEYS: dict[str, bytes] = {}


def key(name: str) -> bytes:
    """A PEM RSA key per name, made once per test run (2048 bits take a moment)."""
    if name not in _KEYS:
        _KEYS[name] = generate(Algorithm.RSA)
    return _KEYS[name]


def publish_key(zone: Zone, domain: str, selector: str, pem: bytes) -> None:
    """The key's record in *zone*, as ``mailsrv dkim keygen`` prints it."""
    record = load(pem, domain, selector).record
    _, _, value = record.partition(" IN TXT ")
    zone.add(f"{selector}._domainkey.{domain}", "TXT", value)


def message(author: str = "bob@example.net", subject: str = "hi", extra: bytes = b"") -> bytes:
    """A small message from *author* to alice@example.test, with *extra* header lines on top."""
    return extra + (f"From: Bob <{author}>\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
                    f"Message-ID: <1@example.net>\r\n\r\nHello.\r\n").encode()


def sign(data: bytes, domain: str = "example.net", selector: str = "s1", pem: bytes | None = None) -> bytes:
    """*data* with a DKIM-Signature of *domain* on top (relaxed/simple, as dkimpy signs by default)."""
    signature = dkim.sign(data, selector.encode(), domain.encode(), pem or key(domain),
                          include_headers=[b"from", b"to", b"subject", b"message-id"])
    return signature + data

"""DKIM signatures (RFC 6376) on the mail our users send, made with dkimpy.

What is signed, and why:

* the domain of the first ``From:`` address (read as RFC 5322 defines it,
  :mod:`mailsrv.message.fields`), when it has a key: that is the domain a
  receiver's DMARC check aligns with;
* with every key that domain has, the newest on top (see
  :meth:`mailsrv.dkim.keys.KeyRing.signing`): a receiver needs one valid
  signature, so a new key and its record can be made and published in any
  order while the old key goes on signing, until its file is removed;
* relaxed/relaxed canonicalization (RFC 6376 3.4.2, 3.4.4), which survives
  the re-folding and trailing-space changes relays commonly make;
* the header fields of :data:`SIGNED` that the message has, each as many
  times as it occurs, and ``From`` once more (RFC 6376 5.4.2, 8.15): an
  ``h=`` entry with no field to match signs "no such field", so a second
  ``From:`` added on the way breaks the signature.

dkimpy takes the whole message as ``bytes``: a spooled body
(:mod:`mailsrv.message.body`) is read into memory for the time of one
signature, which with its canonical copy costs about three times the
message size.  That is bounded by the size limit (``limits.max_message_size``)
times the threads of the pool that signs (``threads.signing``); the
reactor thread never holds it.
"""

from __future__ import annotations

import dkim
from twisted.logger import Logger

from mailsrv.address import canonical_domain
from mailsrv.dkim import fastrsa
from mailsrv.dkim.keys import Key, KeyRing
from mailsrv.message import wire
from mailsrv.message.body import Body
from mailsrv.message.fields import field_values, mailbox_list, read_header

log = Logger()

#: The fields signed when present (RFC 6376 5.4.1's list, trimmed to what readers see and threads use).
SIGNED = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to", b"references",
    b"mime-version", b"content-type", b"content-transfer-encoding",
)
_CANONICALIZE = (b"relaxed", b"relaxed")


def header_of(message: bytes) -> bytes:
    """The header section of a wire-form *message*, without the empty line that ends it."""
    end = message.find(b"\r\n\r\n")
    return message if end < 0 else message[: end + 2]


def signed_fields(header: bytes) -> list[bytes]:
    """The ``h=`` list for *header* (wire form): each present field of :data:`SIGNED` per occurrence, From once more."""
    names = []
    for name in SIGNED:
        names += [name] * len(field_values(header, name))
    return names + [b"from"] if b"from" in names else names


def author_domain(header: bytes) -> str | None:
    """The canonical domain of the first ``From:`` address, ``None`` without a clean one."""
    values = field_values(header, b"from")
    addresses = mailbox_list(values[0]) if values else None
    if not addresses:
        return None
    return canonical_domain(addresses[0].rpartition("@")[2])


class Signer:
    """Signs messages with the keys of a :class:`~mailsrv.dkim.keys.KeyRing`.

    Every method blocks (disk, CPU): call them in a worker pool.
    """

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        fastrsa.install()

    def sign(self, message: bytes, domain: str) -> bytes | None:
        """The ``DKIM-Signature:`` fields (CRLF-ended, wire form) for *message* as *domain*.

        *message* is the message in wire form (CRLF) exactly as it will be
        sent.  ``None`` when *domain* has no key or the message has no
        ``From:``.  This is what the bounce generator calls for a message
        it makes; blocking, so it runs in a pool.
        """
        include = signed_fields(header_of(message))
        domain = canonical_domain(domain) or ""
        if not include or not domain:
            return None
        signatures = b"".join(self._sign(message, domain, key, include) for key in self.keyring.signing(domain))
        return signatures or None

    def _sign(self, message: bytes, domain: str, key: Key, include: list[bytes]) -> bytes:
        try:
            return dkim.sign(
                message, key.selector.encode("ascii"), domain.encode("ascii"), key.private,
                canonicalize=_CANONICALIZE, signature_algorithm=key.algorithm.signing, include_headers=include,
            )
        except dkim.DKIMException as e:
            log.error("DKIM: cannot sign as {selector}._domainkey.{domain}: {error}", selector=key.selector,
                      domain=domain, error=str(e))
            return b""

    def sign_body(self, body: Body) -> bytes | None:
        """The signatures for a message as received and completed, as its ``From:`` domain.

        Only the header is read unless that domain has a key.
        """
        domain = author_domain(read_header(body))
        if domain is None or not self.keyring.signing(domain):
            return None
        return self.sign(wire.to_wire(body.read()), domain)

    def sign_report(self, body: Body, hostname: str) -> Body:
        """*body*, a report we wrote (a DSN from ``MAILER-DAEMON@hostname``), signed for the way out.

        Signed as *hostname* or, when it has no key, as the nearest parent
        domain that has one (``mail.example.test`` by ``example.test``): a
        ``d=`` that is the From: domain or its parent aligns under DMARC's
        relaxed mode (RFC 7489 3.1.1), so a bounce passes where the
        receiver checks it.  *body* unchanged when no such domain has a key.
        """
        labels = (canonical_domain(hostname) or "").split(".")
        for domain in (".".join(labels[i:]) for i in range(len(labels) - 1)):
            if self.keyring.signing(domain):
                fields = self.sign(wire.to_wire(body.read()), domain)
                return body if fields is None else body.insert([(0, fields)])
        return body

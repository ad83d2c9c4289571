"""ARC sealing (RFC 8617) of the mail an alias forwards, made with dkimpy.

A forwarded message keeps its author's ``From:``, so the receiver's DMARC
check rests on the author's DKIM signature surviving the trip (SPF now
names our SRS sender).  Where it did not survive, or to let the receiver
see what we saw, we add an ARC set: ``ARC-Authentication-Results`` (the
results of our own port 25 checks, :mod:`mailsrv.policy.senderauth`),
``ARC-Message-Signature`` (a DKIM-like signature of the message as we send
it) and ``ARC-Seal`` (a signature over the chain's sets, with ``cv=`` the
chain validation status the checks found).

What is sealed, and how:

* only a message our checks judged (the caller knows: their verdict
  carried our Authentication-Results field); dkimpy takes the results
  (``arc=`` becomes ``cv=``) from the field of our authserv-id, which is
  then the only one in the message, since the checks drop forged ones;
* as the first of the server's ``domains``, the domain of the SRS
  envelope sender too, with that domain's newest RSA key (dkimpy seals
  with ``rsa-sha256`` only): one sealing domain, which is what a
  receiver's list of trusted sealers names;
* the instance ``i=`` one above the highest that arrived (dkimpy counts);
  a chain whose last seal says ``cv=fail`` is not sealed again (RFC 8617
  5.1 step 1); one that fails our validation gets ``cv=fail``, the seal
  covering our own set only (RFC 8617 5.1.2, done by dkimpy);
* relaxed/relaxed over the same fields a DKIM signature covers
  (:data:`mailsrv.dkim.signer.SIGNED`, ``From`` oversigned).

Forwarded mail is not DKIM-signed by us: its ``From:`` is the author's,
whose domain our signature would not align with, and the author's own
signature stays intact (the body and the signed fields are unchanged).

Every method blocks (CPU, and the key directory's ``stat``): call them in
the signing pool.  RSA goes through OpenSSL (:mod:`.fastrsa`).
"""

from __future__ import annotations

import dkim
from dkim.util import InvalidTagValueList, parse_tag_value
from twisted.logger import Logger

from mailsrv.dkim import fastrsa
from mailsrv.dkim.keys import Algorithm, Key, KeyRing
from mailsrv.dkim.signer import header_of, signed_fields
from mailsrv.message import wire
from mailsrv.message.body import Body
from mailsrv.message.fields import field_values, read_header

log = Logger()

def last_seal_failed(message: bytes) -> bool:
    """Whether the ARC-Seal with the highest ``i=`` of *message* (wire form) says ``cv=fail``."""
    seals = []
    for value in field_values(header_of(message), b"arc-seal"):
        try:
            tags = parse_tag_value(b"".join(value.split()))
        except InvalidTagValueList:
            continue
        instance = tags.get(b"i", b"")
        if instance.isdigit():
            seals.append((int(instance), tags.get(b"cv", b"").lower()))
    return bool(seals) and max(seals)[1] == b"fail"


class Sealer:
    """Adds ARC sets as *domain*, with the RSA keys of *keyring*, for the checks of *authserv_id*."""

    def __init__(self, keyring: KeyRing, authserv_id: str, domain: str) -> None:
        self._keyring = keyring
        self._authserv_id = authserv_id.encode("ascii")
        self._domain = domain
        fastrsa.install()

    def key(self) -> Key | None:
        """The newest RSA key of the sealing domain, ``None`` without one."""
        return next((k for k in self._keyring.signing(self._domain) if k.algorithm is Algorithm.RSA), None)

    def seal(self, message: bytes, now: int | None = None) -> bytes | None:
        """The ARC set for *message* (wire form, as it will be sent), top first and CRLF-ended.

        ``None`` when nothing is to be added: no key, no result of ours in
        the message, a failed chain already marked, or 50 sets already.
        """
        key = self.key()
        if key is None:
            log.info("forwarded mail not ARC-sealed: {domain} has no RSA DKIM key", domain=self._domain)
            return None
        if last_seal_failed(message):
            return None  # RFC 8617 5.1 step 1
        include = signed_fields(header_of(message))
        try:
            fields = dkim.arc_sign(message, key.selector.encode("ascii"), self._domain.encode("ascii"),
                                   key.private, self._authserv_id, include_headers=include, timestamp=now)
        except dkim.DKIMException as e:  # 50 sets already, or a chain dkimpy cannot continue
            log.info("forwarded mail not ARC-sealed: {error}", error=str(e))
            return None
        return b"".join(fields) or None

    def seal_body(self, body: Body) -> bytes | None:
        """:meth:`seal` for a message as received and checked (disk form; reads a spooled body whole)."""
        if not field_values(read_header(body), b"from"):
            return None  # RFC 8617 4.1.2 as RFC 6376 5.4: the AMS must sign From:
        return self.seal(wire.to_wire(body.read()))

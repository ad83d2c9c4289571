"""SPF (RFC 7208), DKIM (RFC 6376) and ARC (RFC 8617) on one message, then DMARC on their results.

:func:`authenticate` is blocking (DNS waits, a hash of the body and a
signature check per DKIM signature): the check runs it in the ``dns``
pool, on the server's resolver (:mod:`.lookups`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import dkim
import spf

from mailsrv.address import canonical_domain
from mailsrv.policy.senderauth import dmarc, lookups
from mailsrv.policy.senderauth.spfresults import SPFResults

#: RFC 8601 2.7.1 results from what dkimpy makes of a signature.
PASS, FAIL, NONE, TEMPERROR, PERMERROR, POLICY = "pass", "fail", "none", "temperror", "permerror", "policy"
_SPF_RESULTS = {"pass", "fail", "softfail", "neutral", "none", "temperror", "permerror"}
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_SIGNED = re.compile(rb"^dkim-signature[ \t]*:", re.I | re.M)
#: The empty line that ends the header: at the start, or right after a line end (dkimpy splits on ``\r?\n``).
_HEADER_END = re.compile(rb"(?:\A|\n)\r?\n")
#: Seconds all the SPF lookups of one identity may take together (RFC 7208 4.6.4 recommends 20).
SPF_TIME = 20
#: DKIM signatures checked per message, top first (RFC 6376 6.1 lets a verifier stop; rspamd stops at 5
#: too): each hashes the whole body again, a quarter second per 10 MiB with relaxed canonicalization, so a
#: message with a thousand would hold a ``dns`` thread (and the interpreter) for minutes.
MAX_SIGNATURES = 5


@dataclass(frozen=True)
class Signature:
    """One DKIM signature's result and who signed (``d=``, ``s=``, the start of ``b=``); *comment* says why."""

    result: str
    domain: str = ""
    selector: str = ""
    b: str = ""
    comment: str = ""


@dataclass(frozen=True)
class Results:
    """Everything the Authentication-Results header reports, and the DMARC outcome that decides."""

    spf: str
    mailfrom: str  # the MAIL FROM identity checked, as the header shows it (RFC 8601 2.7.2)
    helo_spf: str | None  # None: no HELO name to check (an address literal)
    helo: str
    dkim: tuple[Signature, ...]
    dmarc: dmarc.Outcome
    author: str | None  # the From: domain DMARC was evaluated for
    arc: str


@dataclass(frozen=True)
class Message:
    """What the check read from the message (in the disk pool) for :func:`authenticate`."""

    data: bytes  # the whole message, disk form (dkimpy takes LF line ends)
    authors: tuple[str, ...]  # the domains of the From: addresses
    drop: tuple[tuple[int, int], ...]  # fields claiming our authserv-id (removed, RFC 8601 5)


def spf_result(resolver: Any, ip: str, identity: str, helo: str) -> str:
    """The SPF result a receiver would reach for *identity* from *ip* (``dns check`` of our own domain); blocks."""
    return _spf(resolver, ip, identity, helo, None)


def _spf(resolver: Any, ip: str, identity: str, helo: str, kept: SPFResults | None) -> str:
    """The SPF result for *identity* (``local@domain``, or a bare HELO name) from *ip*; *kept*: results kept."""
    if not ip:
        return NONE
    key = (ip, identity, helo)
    known = kept.get(key) if kept is not None else None
    if known is not None:
        return known
    with lookups.spf_resolver(resolver) as expiry:
        result, _, _ = spf.query(i=ip, s=identity, h=helo, querytime=SPF_TIME).check()
    result = result if result in _SPF_RESULTS else PERMERROR
    if kept is not None:
        kept.put(key, result, expiry.at)
    return result


Parsed = tuple[list[list[bytes]], bytes]


def parse(message: bytes) -> Parsed:
    """``dkim.rfc822_parse(message)``: the header fields and the body with CRLF line ends, for both checkers.

    dkimpy's own splits the whole message into lines to join the body's
    again, most of a check's time on a big message (0.8 ms per 100 KiB,
    and it ran once for DKIM and once for ARC); here only the header is
    split, by dkimpy, and the body's line ends are converted in one pass.
    Raises ``dkim.MessageFormatError`` as dkimpy does.
    """
    end = _HEADER_END.search(message)
    if end is None:  # no body: dkimpy's on the header alone is the same work
        return dkim.rfc822_parse(message)
    headers, _ = dkim.rfc822_parse(message[:end.end()])
    body = message[end.end():]
    return headers, body.replace(b"\n", b"\r\n") if b"\r" not in body else re.sub(rb"\r?\n", b"\r\n", body)


def _checker(kind: type, parsed: Parsed) -> Any:
    """A dkimpy ``DKIM`` or ``ARC`` on a parsed message, with header fields of its own (they may be changed)."""
    checker = kind()
    checker.headers, checker.body = [list(field) for field in parsed[0]], parsed[1]
    return checker


def _signatures(message: bytes, parsed: Parsed | None, resolver: Any) -> tuple[Signature, ...]:
    """Every DKIM-Signature of *message* checked (RFC 6376 6.1), top first; *parsed* ``None``: unreadable."""
    if parsed is None:  # a header dkimpy cannot read: no signature in it can be checked
        return (Signature(PERMERROR),) if _SIGNED.search(message) else ()
    checker = _checker(dkim.DKIM, parsed)
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    key = lookups.KeyLookup(resolver)
    results = []
    for index in range(min(count, MAX_SIGNATURES)):
        key.last = lookups.FOUND
        checker.signature_fields = None
        try:
            valid = checker.verify(idx=index, dnsfunc=key)
        except dkim.ValidationError as e:  # a changed body is a signature that fails; else it is unusable
            results.append(Signature(FAIL if "body hash mismatch" in str(e) else PERMERROR, *_signer(checker)))
            continue
        except dkim.DKIMException:  # a signature that does not parse, or a key that cannot be used
            results.append(Signature(PERMERROR, *_signer(checker)))
            continue
        if valid:
            result = PASS
        else:
            result = {lookups.FAILED: TEMPERROR, lookups.MISSING: PERMERROR}.get(key.last, FAIL)
        results.append(Signature(result, *_signer(checker)))
    if count > MAX_SIGNATURES:  # RFC 8601 2.7.1: signed, but not acceptable to the verifier
        results.append(Signature(POLICY, comment=f"{count - MAX_SIGNATURES} more signatures not checked"))
    return tuple(results)


def _signer(checker: dkim.DKIM) -> tuple[str, str, str]:
    """``d=``, ``s=`` and the first 8 characters of ``b=`` of the signature dkimpy looked at last."""
    fields = getattr(checker, "signature_fields", None) or {}
    domain = canonical_domain(fields.get(b"d", b"").decode("ascii", "replace")) or ""
    selector = fields.get(b"s", b"").decode("ascii", "replace")
    b = re.sub(r"[^A-Za-z0-9+/]", "", fields.get(b"b", b"").decode("ascii", "replace"))[:8]
    return domain, selector if _DOT_ATOM.match(selector) else "", b


def _arc(parsed: Parsed | None, resolver: Any) -> str:
    """RFC 8617 5.2: the chain validation status, ``none`` without ARC sets (and without asking dkimpy)."""
    if parsed is None:
        return FAIL
    if not any(name.lower() == b"arc-seal" for name, _ in parsed[0]):
        return NONE
    try:
        status, _, _ = _checker(dkim.ARC, parsed).verify(dnsfunc=lookups.KeyLookup(resolver))
    except dkim.DKIMException:
        return FAIL
    return status.decode("ascii") if status in (dkim.CV_Pass, dkim.CV_None) else FAIL


def identity(sender: str, helo: str) -> tuple[str, str]:
    """``(SPF identity, its domain)`` for MAIL FROM: postmaster@HELO for the null sender (RFC 7208 2.4)."""
    if not sender:
        return f"postmaster@{helo}", helo
    return sender, sender.rpartition("@")[2]


def authenticate(
    message: Message, *, resolver: Any, ip: str, helo: str, sender: str, spf_results: SPFResults | None = None,
) -> Results:
    """SPF for MAIL FROM and HELO, every DKIM signature, ARC, then DMARC for the author's domain.

    *spf_results* keeps SPF results across messages (:mod:`.spfresults`).
    """
    helo_name = canonical_domain(helo) if helo and not helo.startswith("[") else None
    mail_identity, mail_domain = identity(sender, helo_name or "")
    domain = canonical_domain(mail_domain)
    mail_spf = _spf(resolver, ip, mail_identity, helo_name or "", spf_results) if domain else NONE
    helo_spf = _spf(resolver, ip, helo_name, helo_name, spf_results) if helo_name else None
    try:
        parsed: Parsed | None = parse(message.data)
    except dkim.DKIMException:
        parsed = None
    signatures = _signatures(message.data, parsed, resolver)
    arc = _arc(parsed, resolver)
    local = mail_identity.rpartition("@")[0]
    shown = mail_identity if _DOT_ATOM.match(local) and domain else (domain or "")
    authors = set(message.authors)
    if len(authors) != 1 or "" in authors:  # "": a From: domain that is no DNS name
        outcome = dmarc.Outcome(NONE if not authors else PERMERROR)  # RFC 7489 6.6.1: one author domain
        author = None
    else:
        [author] = authors
        spf_domain = domain if mail_spf == PASS else None
        passed = [s.domain for s in signatures if s.result == PASS and s.domain]
        outcome = dmarc.evaluate(author, spf_domain, passed, lambda name: lookups.txt(resolver, name))
    return Results(spf=mail_spf, mailfrom=shown, helo_spf=helo_spf, helo=helo_name or "", dkim=signatures,
                   dmarc=outcome, author=author, arc=arc)

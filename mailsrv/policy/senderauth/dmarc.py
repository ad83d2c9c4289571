"""DMARC (RFC 7489): the author domain's policy, identifier alignment, and what to do with a failure.

Small enough to own, on the Public Suffix List (``publicsuffixlist``, which
ships the list: no download at run time) for the organizational domain
(RFC 7489 3.2).  Blocking: the record lookups go to the server's resolver,
in the ``dns`` pool.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass
from typing import Callable

from publicsuffixlist import PublicSuffixList

from mailsrv.policy.senderauth.lookups import TemporaryFailure

NONE, QUARANTINE, REJECT = "none", "quarantine", "reject"
_POLICIES = (NONE, QUARANTINE, REJECT)
#: RFC 7489 6.6.4: a message the ``pct=`` sample leaves out gets the next milder policy.
_MILDER = {REJECT: QUARANTINE, QUARANTINE: NONE, NONE: NONE}

@functools.lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    """The list, parsed once (half a second), in the first check's thread."""
    return PublicSuffixList()


@functools.lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """RFC 7489 3.2: the registered domain of *domain* (itself when it is a public suffix).

    Kept for the domains seen lately: each message asks for its author's
    and its signers' several times, and the lookup IDNA-encodes every label.
    """
    return _suffixes().privatesuffix(domain.lower()) or domain.lower()


def aligned(identifier: str, author: str, strict: bool) -> bool:
    """RFC 7489 3.1.1/3.1.2: strict is the same name, relaxed the same organizational domain."""
    identifier, author = identifier.lower().rstrip("."), author.lower().rstrip(".")
    if strict:
        return identifier == author
    return organizational_domain(identifier) == organizational_domain(author)


@dataclass(frozen=True)
class Record:
    """The tags of a DMARC record that decide a message's fate (RFC 7489 6.3)."""

    policy: str
    subdomain_policy: str
    percent: int = 100
    strict_dkim: bool = False
    strict_spf: bool = False


def parse(text: bytes) -> Record | None:
    """*text* as a DMARC record, ``None`` when it is not one (RFC 7489 6.3, 6.6.3).

    ``v=DMARC1`` must come first.  An invalid or missing ``p=`` makes the
    record ``p=none`` when it names a report address, else no record at all
    (6.6.3 step 6); a bad ``sp=``, ``pct=``, ``adkim=`` or ``aspf=`` is left
    at its default (6.3: unknown values are ignored).
    """
    try:
        tags = [part.strip() for part in text.decode("ascii").split(";")]
    except UnicodeDecodeError:
        return None
    pairs = [tag.partition("=") for tag in tags if tag]
    if not pairs or (pairs[0][0].strip(), pairs[0][2].strip()) != ("v", "DMARC1"):
        return None
    values = {name.strip().lower(): value.strip() for name, sep, value in pairs[1:] if sep}
    policy = values.get("p", "").lower()
    if policy not in _POLICIES:
        if "rua" not in values:
            return None
        policy = NONE
    subdomain = values.get("sp", "").lower()
    percent = values.get("pct", "100")
    return Record(
        policy=policy,
        subdomain_policy=subdomain if subdomain in _POLICIES else policy,
        percent=min(int(percent), 100) if percent.isdigit() else 100,
        strict_dkim=values.get("adkim", "r").lower() == "s",
        strict_spf=values.get("aspf", "r").lower() == "s",
    )


@dataclass(frozen=True)
class Outcome:
    """The DMARC result for the A-R header and the policy it calls for (``none`` when it passed)."""

    result: str  # pass, fail, none, temperror, permerror (RFC 8601 2.7.x, RFC 7489 11.2)
    policy: str = NONE  # the published policy that applied (p= or sp=)
    disposition: str = NONE  # what to do: the policy, milder when pct= sampled the message out


def _record(domain: str, txt: Callable[[str], list[bytes]]) -> Record | None:
    """The one DMARC record at ``_dmarc.<domain>``; none if there are none or several (6.6.3 step 3)."""
    records = [record for record in map(parse, txt(f"_dmarc.{domain}")) if record is not None]
    return records[0] if len(records) == 1 else None


def evaluate(
    author: str, spf_domain: str | None, dkim_domains: list[str], txt: Callable[[str], list[bytes]],
    sample: Callable[[], int] = lambda: random.randrange(100),
) -> Outcome:
    """DMARC for a message whose ``From:`` domain is *author* (RFC 7489 6.6).

    *spf_domain* is the domain SPF passed for (``None`` unless SPF passed);
    *dkim_domains* the ``d=`` of every signature that verified; *txt* looks
    up TXT records (raising :class:`TemporaryFailure`); *sample* gives a
    number in 0..99 for ``pct=``.
    """
    try:
        record = _record(author, txt)
        organization = organizational_domain(author)
        at_organization = record is None and organization != author.lower()
        if at_organization:
            record = _record(organization, txt)  # RFC 7489 6.6.3 step 4
    except TemporaryFailure:
        return Outcome("temperror")
    if record is None:
        return Outcome("none")
    policy = record.subdomain_policy if at_organization else record.policy
    passed = (spf_domain is not None and aligned(spf_domain, author, record.strict_spf)) or any(
        aligned(domain, author, record.strict_dkim) for domain in dkim_domains
    )
    if passed:
        return Outcome("pass", policy)
    disposition = policy if sample() < record.percent else _MILDER[policy]
    return Outcome("fail", policy, disposition)

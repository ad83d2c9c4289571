"""The server's resolver in the shapes pyspf and dkimpy ask for; blocking, for the ``dns`` pool.

Both libraries would otherwise ask the system resolver, behind the
configured ``[dns]`` (and a test's local name server).  dkimpy takes a
function per call (``dnsfunc=``): :class:`KeyLookup`.  pyspf has no such
parameter: every query goes through its module-level ``spf.DNSLookup``,
which this module replaces once with :func:`_spf_lookup`; that answers
from the resolver :func:`spf_resolver` set for the calling thread and
refuses (a temporary error) on a thread that set none, so pyspf never
reaches the system resolver.  It also notes when the answers it gave
expire (:class:`Expiry`), for a result kept no longer than they hold.

:func:`txt` (DKIM keys, DMARC records) keeps each resolver's answers until
they expire: the resolver caches them too, but its way to a cached answer
(names parsed, a resolution set up) costs more than the rest of a DMARC
evaluation, twice per message.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import weakref
from typing import Any, Iterator

import dkim
import dns.exception
import dns.resolver
import spf

#: What a lookup ended with, for a result dkimpy reduces to ``False``.
FOUND, MISSING, FAILED = "found", "missing", "failed"

_thread = threading.local()

#: TXT answers kept per name, per resolver (a test's own resolver has its own).
_TXT_NAMES = 4096
_txt_answers: "weakref.WeakKeyDictionary[Any, dict[str, tuple[float, tuple[bytes, ...]]]]" = (
    weakref.WeakKeyDictionary())


class TemporaryFailure(Exception):
    """The resolver gave no answer (timeout, SERVFAIL): the result is a temperror."""


def txt(resolver: Any, name: str) -> list[bytes]:
    """Every TXT record of *name*, each one's strings joined; ``[]`` when there is none (NXDOMAIN, NODATA).

    An answer (records or NODATA) is kept until it expires (its TTL, RFC
    1035 3.2.1); NXDOMAIN and failures are asked again each time.
    """
    kept = _txt_answers.setdefault(resolver, {})
    key = name.lower()
    hit = kept.get(key)
    if hit is not None and hit[0] > time.time():
        return list(hit[1])
    try:
        answer = resolver.resolve(name, "TXT", raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration) as e:
        raise TemporaryFailure(f"{name}: {type(e).__name__}") from None
    except dns.exception.DNSException:  # a name that cannot be asked for (too long, bad label)
        return []
    records = tuple(b"".join(record.strings) for record in answer)
    if len(kept) >= _TXT_NAMES:
        kept.clear()  # a flood of made-up names: start over rather than grow
    kept[key] = (answer.expiration, records)
    return list(records)


class KeyLookup:
    """dkimpy's ``dnsfunc``: a DKIM key record (RFC 6376 3.6.2.2), remembering how the last lookup ended.

    dkimpy turns a missing key and a DNS timeout alike into "does not
    verify"; :attr:`last` tells them apart, for permerror and temperror
    (RFC 8601 2.7.1).
    """

    def __init__(self, resolver: Any) -> None:
        self._resolver = resolver
        self.last = FOUND

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        """The first TXT record of *name* (``None`` if there is none); the resolver's own timeout applies."""
        try:
            records = txt(self._resolver, name.decode("ascii", "replace"))
        except TemporaryFailure as e:
            self.last = FAILED
            raise dkim.DnsTimeoutError(str(e)) from None
        self.last = FOUND if records else MISSING
        return records[0] if records else None


class Expiry:
    """When the first of the answers pyspf was given expires (``time.time()``; 0: one had no TTL to go by)."""

    def __init__(self) -> None:
        self.at = math.inf

    def answered(self, expiration: float) -> None:
        self.at = min(self.at, expiration)


@contextlib.contextmanager
def spf_resolver(resolver: Any) -> Iterator[Expiry]:
    """pyspf's lookups on this thread go to *resolver* while the block runs; when their answers expire."""
    _thread.resolver, _thread.expiry = resolver, Expiry()
    try:
        yield _thread.expiry
    finally:
        _thread.resolver = _thread.expiry = None


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list[tuple[tuple[str, str], Any]]:
    """pyspf's ``DNSLookup`` on our resolver: ``((name, type), value)`` pairs as its dnspython variant gives."""
    resolver = getattr(_thread, "resolver", None)
    if resolver is None:
        raise spf.TempError("DNS: no resolver for this thread")
    expiry: Expiry = _thread.expiry
    try:
        answer = resolver.resolve(name, qtype, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        expiry.answered(0)  # its negative TTL is not at hand here: nothing to keep the result by
        return []
    except dns.exception.Timeout as e:
        raise spf.TempError(f"DNS {e}") from None
    except (dns.resolver.NoNameservers, dns.resolver.NoResolverConfiguration) as e:
        raise spf.TempError(f"DNS {type(e).__name__}") from None
    except dns.exception.DNSException:
        expiry.answered(0)
        return []
    expiry.answered(answer.expiration)  # the shortest TTL of its records (or of the SOA, for none)
    pairs = []
    for rdata in answer:
        if qtype in ("A", "AAAA"):
            pairs.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            pairs.append(((name, qtype), (rdata.preference, rdata.exchange)))
        elif qtype == "PTR":
            pairs.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            pairs.append(((name, qtype), rdata.strings))
    return pairs


spf.DNSLookup = _spf_lookup

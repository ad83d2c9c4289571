"""dkimpy's key record parse, done once per record text instead of once per signature.

Every DKIM and ARC signature of inbound mail costs dkimpy a parse of the
key record it looked up: the tag list, base64, the ASN.1 of the RSA key
(about 0.1 ms, a tenth of a verification, all of it holding the GIL).  The
parse depends on nothing but the record's owner name and text, so
:func:`install` puts a bounded memo in front of the module-level
``dkim.evaluate_pk`` that dkimpy's ``load_pk_from_dns`` calls.  The record
itself is still looked up for every signature, so a key its domain replaces
or revokes is used no longer than the DNS TTL allows (RFC 6376 3.6.2.2):
the memo only knows which text means which key.  A record that does not
parse raises, and raising is not memoised.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import dkim

#: Key records remembered (a busy MX sees a few hundred signing domains an hour).
RECORDS = 1024


def install() -> None:
    """Memoise ``dkim.evaluate_pk`` by (name, record text) (idempotent)."""
    current: Callable[..., Any] = dkim.evaluate_pk
    if not hasattr(current, "cache_info"):
        dkim.evaluate_pk = functools.lru_cache(maxsize=RECORDS)(current)

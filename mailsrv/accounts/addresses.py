"""Syntax of the addresses that the account files and the directory accept.

Only plain ``local@domain`` addresses ever name a user or an alias: quoted
local parts, ``%``/``!`` routing and source routes are exactly the forms an
open-relay probe uses, so anything else is simply not an address here.
Case is folded once, here, because addresses are case-insensitive for us.

This module is the one authority on what a user address is: the store
turns ``local@domain`` into the directory ``<domain>/<local>`` and refuses
any part that would name another path, so every address accepted here must
be one the store accepts (tests/test_accounts.py checks that).  Refusing
early means such a user never exists, instead of existing and then failing
at login or delivery.
"""

from __future__ import annotations

import re

# RFC 5322 3.2.3 atext, less "%" and "!" (the relay hacks) and "/", which
# in the store's <domain>/<local> path would reach into another Maildir
# ("alice/.Work" is alice's folder Work).  "\" is not atext at all.
_ATEXT = r"[a-z0-9#$&'*+=?^_`{|}~-]"
# RFC 5321 4.1.2 Dot-string: no empty atom, so no leading, trailing or
# doubled dot (which also rules out "." and ".." as a directory name).
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_LOCAL_CHAR = re.compile(rf"{_ATEXT}|\.")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")

# RFC 5321 4.5.3.1.1 and 4.5.3.1.2: local part 64 octets, domain 255 octets.
_MAX_LOCAL = 64
_MAX_DOMAIN = 255


def is_domain(domain: str) -> bool:
    """True for a lowercase DNS domain name in letters, digits and hyphens."""
    return len(domain) <= _MAX_DOMAIN and _DOMAIN.match(domain) is not None


def problem(address: str) -> str | None:
    """Why *address* is not a plain address, in words for the admin; ``None`` if it is one."""
    local, at, domain = address.lower().rpartition("@")
    if not at or not local:
        return "expected local@domain"
    if len(local) > _MAX_LOCAL:
        return f"the local part is longer than {_MAX_LOCAL} characters"
    refused = sorted({c for c in local if not _LOCAL_CHAR.fullmatch(c)})
    if refused:
        return "the local part may not contain " + " ".join(repr(c) for c in refused)
    if not _LOCAL_PART.match(local):
        return "the local part may not start or end with a dot, or contain two dots in a row"
    if not is_domain(domain):
        return f"{domain!r} is not a domain name"
    return None


def split_address(address: str) -> tuple[str, str] | None:
    """``(local, domain)`` in lowercase, or ``None`` if not a plain address."""
    if problem(address) is not None:
        return None
    local, _, domain = address.lower().rpartition("@")
    return local, domain


def normalize(address: str) -> str | None:
    """The canonical (lowercase) form of *address*, or ``None`` if invalid."""
    parts = split_address(address)
    return None if parts is None else f"{parts[0]}@{parts[1]}"

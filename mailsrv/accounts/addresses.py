"""Syntax of the addresses that the account files and the directory accept.

Only plain ``local@domain`` addresses ever name a user or an alias: quoted
local parts, ``%``/``!`` routing and source routes are exactly the forms an
open-relay probe uses, so anything else is simply not an address here.
Case is folded once, here, because addresses are case-insensitive for us.
"""

from __future__ import annotations

import re

# RFC 5322 3.2.3 atext without "%" and "!" (the relay hacks); dot-atom form.
_ATEXT = r"[a-z0-9#$&'*+/=?^_`{|}~-]"
_LOCAL_PART = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\Z")

# RFC 5321 4.5.3.1.1 and 4.5.3.1.2: local part 64 octets, domain 255 octets.
_MAX_LOCAL = 64
_MAX_DOMAIN = 255


def is_domain(domain: str) -> bool:
    """True for a lowercase DNS domain name in letters, digits and hyphens."""
    return len(domain) <= _MAX_DOMAIN and _DOMAIN.match(domain) is not None


def split_address(address: str) -> tuple[str, str] | None:
    """``(local, domain)`` in lowercase, or ``None`` if not a plain address."""
    local, at, domain = address.lower().rpartition("@")
    if not at or len(local) > _MAX_LOCAL or not _LOCAL_PART.match(local):
        return None
    if not is_domain(domain):
        return None
    return local, domain


def normalize(address: str) -> str | None:
    """The canonical (lowercase) form of *address*, or ``None`` if invalid."""
    parts = split_address(address)
    return None if parts is None else f"{parts[0]}@{parts[1]}"

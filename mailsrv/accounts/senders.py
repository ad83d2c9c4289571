"""The senders file: ``alice@example.org: sales@example.org, @example.net``.

A user may always send as their own address and as every alias that
delivers to them (:meth:`~mailsrv.accounts.directory.Directory.may_send_as`);
this file grants more: each line names a user and the addresses they may
also send as, ``@domain`` meaning every address of that domain (a domain of
their own elsewhere, say).  It is written by hand; the server re-reads it
when it changes.  Repeated lines for one user add up; a line we cannot use
is skipped with a warning naming the file and line.
"""

from __future__ import annotations

from mailsrv.accounts.aliases import alias_key
from mailsrv.accounts.textfile import parse_lists
from mailsrv.address import canonical_address


def parse(text: str, source: str) -> dict[str, tuple[str, ...]]:
    """Map user -> the canonical addresses (or ``@domain``) they may also send as."""
    return parse_lists(text, source, canonical_address, alias_key, "USER: ADDRESS-OR-@DOMAIN[, ...]")


def grants(granted: tuple[str, ...], address: str) -> bool:
    """True when *granted* (one user's entries) names the canonical *address* or its domain."""
    return address in granted or "@" + address.rpartition("@")[2] in granted

"""Envelope addresses: strict RFC 5321 syntax, and what counts as a routing trick.

Twisted's ``smtp.Address`` silently strips source routes and leaves ``%``
and ``!`` routing in the local part for the delivery agent to interpret;
on a server that must never relay, every such form has to be visible to the
policy code instead.  :func:`parse_path` therefore records the route and
keeps the dequoted local part, and :attr:`Mailbox.routes_elsewhere` answers
"does this address try to name another host?".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# RFC 5321 4.1.2 grammar, ASCII only (no SMTPUTF8 is advertised).
_ATOM = rb"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+"
_DOT_STRING = _ATOM + rb"(?:\." + _ATOM + rb")*"
_QUOTED = rb'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_LABEL = rb"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DOMAIN = _LABEL + rb"(?:\." + _LABEL + rb")*"
_LITERAL = rb"\[[\x21-\x5a\x5e-\x7e]+\]"
_ROUTE = rb"@" + _DOMAIN + rb"(?:,@" + _DOMAIN + rb")*:"
_PATH = re.compile(
    rb"(?P<route>" + _ROUTE + rb")?"
    rb"(?P<local>" + _DOT_STRING + rb"|" + _QUOTED + rb")"
    rb"@(?P<domain>" + _DOMAIN + rb"|" + _LITERAL + rb")\Z"
)
_QUOTED_PAIR = re.compile(r"\\(.)")
_NEEDS_QUOTES = re.compile(r"[^A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.]|^\.|\.$|\.\.")

MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_PATH = 256  # RFC 5321 4.5.3.1.3


class AddressSyntaxError(ValueError):
    """The path is not an RFC 5321 path; the message says why, for the reply."""


@dataclass(frozen=True)
class Mailbox:
    """One envelope address.

    ``local`` is dequoted (``"a b"@d`` has local ``a b``); ``domain`` is
    lower-cased, or an address literal in brackets; ``routed`` records a
    source route that was present in the path; ``sent`` is the mailbox as
    the client wrote it (quotes and case kept, route left out), so that
    replies and logs name the address the client actually used.
    """

    local: str
    domain: str
    routed: bool = False
    sent: str | None = field(default=None, compare=False)

    @property
    def is_literal(self) -> bool:
        """True for ``user@[192.0.2.1]``: never one of our domains."""
        return self.domain.startswith("[")

    @property
    def routes_elsewhere(self) -> bool:
        """True when the local part tries to route through or to another host.

        ``%``-hack, UUCP bang paths and an ``@`` hidden in a quoted local
        part are the classic ways to make a final-destination server relay;
        we support none of them.  A source route is not one of them: RFC
        5321 4.1.1.3 and appendix C say to ignore it and use the mailbox,
        which is then judged like any other (see ``routed``).
        """
        return any(c in self.local for c in "@%!")

    @property
    def plain(self) -> str:
        """``local@domain`` with the local part dequoted: what the directory looks up.

        RFC 5322 3.2.4: a quoted-string is semantically identical to its
        content, so ``"alice"@d`` is ``alice@d``.
        """
        return f"{self.local}@{self.domain}"

    def __str__(self) -> str:
        if self.sent is not None:
            return self.sent
        local = self.local
        if _NEEDS_QUOTES.search(local):
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return f"{local}@{self.domain}"


def parse_path(path: bytes) -> Mailbox:
    """Parse the text between ``<`` and ``>`` of a MAIL or RCPT path.

    Raises :class:`AddressSyntaxError` for anything that is not a complete
    ``local@domain`` within the RFC 5321 length limits.
    """
    if len(path) > MAX_PATH - 2:
        raise AddressSyntaxError("address too long")
    match = _PATH.match(path)
    if match is None:
        raise AddressSyntaxError("bad address syntax")
    raw_local = match.group("local").decode("ascii")
    domain = match.group("domain").decode("ascii").lower()
    if len(raw_local) > MAX_LOCAL:
        raise AddressSyntaxError("local part too long")
    if len(domain) > MAX_DOMAIN:
        raise AddressSyntaxError("domain too long")
    local = raw_local
    if raw_local.startswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", raw_local[1:-1])
    sent = match.group("local").decode("ascii") + "@" + match.group("domain").decode("ascii")
    return Mailbox(local, domain, routed=match.group("route") is not None, sent=sent)

"""Addresses and domains: the one place that says what they are.

Three questions are answered here and nowhere else:

* What did an SMTP client send?  :func:`parse_path` reads a MAIL or RCPT
  path with the strict RFC 5321 grammar.  Twisted's ``smtp.Address``
  silently strips source routes and leaves ``%`` and ``!`` routing in the
  local part for the delivery agent to interpret; on a server that must
  never relay, every such form has to be visible to the policy code
  instead, so the route is recorded and :attr:`Mailbox.routes_elsewhere`
  answers "does this address try to name another host?".
* Which user or alias is meant?  :func:`canonical_address` gives the one
  spelling of a plain ``local@domain`` that the account files, the
  directory and the store key on.  Quoted local parts, ``%``/``!`` routing
  and source routes are exactly the forms an open-relay probe uses, so
  anything else is simply not a user address; :func:`address_problem` says
  why, for the admin.
* Which domain is meant?  :func:`normalize_domain` folds case, drops the
  root dot and turns non-ASCII labels into A-labels (RFC 5890 2.3.2.1), so
  ``Bücher.Example.`` and ``xn--bcher-kva.example`` are the same domain in
  the configuration, the directory and SMTP.  The conversion is the
  ``idna`` package's (IDNA 2008 with the UTS 46 mapping), a dependency of
  ours, not Python's ``idna`` codec, which is IDNA 2003.

Internationalized addresses (RFC 6531, RFC 6532): :func:`parse_path` with
``utf8=True`` (the client gave ``SMTPUTF8``) takes UTF-8 local parts and
U-label domains; a user's local part may hold non-ASCII letters, marks and
digits, in Unicode NFC (RFC 6532 3.1), so the two spellings of ``é``
(one code point, or ``e`` and a combining accent) are one user.

The store turns ``local@domain`` into the directory ``<domain>/<local>``
through :func:`mailbox_path`, which accepts exactly the canonical
addresses: a part that would name another path (``..``, ``a/b``, ``.x``)
can then never be a user, instead of being a user whose login and delivery
fail.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

import idna

MAX_LOCAL = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_PATH = 256  # RFC 5321 4.5.3.1.3, counting the angle brackets

# RFC 5321 4.1.2 atext; RFC 6531 3.3 adds UTF8-non-ascii (see _UTF8_PATH).
_ATEXT_SPECIALS = "!#$%&'*+\\-/=?^_`{|}~"
# A user's local part leaves out "%" and "!" (the relay hacks) and "/",
# which in the store's <domain>/<local> path would reach into another
# Maildir ("alice/.Work" is alice's folder Work).
_USER_SPECIALS = _ATEXT_SPECIALS.replace("%", "").replace("!", "").replace("/", "")
# RFC 1035 2.3.1 label, at most 63 octets (RFC 1035 2.3.4).
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"{_LABEL}(?:\.{_LABEL})*"

_ATOM = rf"[A-Za-z0-9{_ATEXT_SPECIALS}]+".encode()
_DOT_STRING = _ATOM + rb"(?:\." + _ATOM + rb")*"
_QUOTED = rb'"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*"'
_LITERAL = rb"\[[\x21-\x5a\x5e-\x7e]+\]"
_ROUTE = rb"@" + _DOMAIN.encode() + rb"(?:,@" + _DOMAIN.encode() + rb")*:"
_PATH = re.compile(
    rb"(?P<route>" + _ROUTE + rb")?"
    rb"(?P<local>" + _DOT_STRING + rb"|" + _QUOTED + rb")"
    rb"@(?P<domain>" + _DOMAIN.encode() + rb"|" + _LITERAL + rb")\Z"
)
_QUOTED_PAIR = re.compile(r"\\(.)")
_NEEDS_QUOTES = re.compile(rf"[^A-Za-z0-9{_ATEXT_SPECIALS}.]|^\.|\.$|\.\.")

_USER_ATEXT = rf"[a-z0-9{_USER_SPECIALS}]"
# RFC 5321 4.1.2 Dot-string: no empty atom, so no leading, trailing or
# doubled dot (which also rules out "." and ".." as a directory name).
_USER_LOCAL = re.compile(rf"[^.]+(?:\.[^.]+)*\Z")  # the characters are judged by _user_char
_USER_LOCAL_CHAR = re.compile(rf"{_USER_ATEXT}|\.")
_DOMAIN_NAME = re.compile(_DOMAIN + r"\Z")

# RFC 6531 3.3: uAtom is atext or UTF8-non-ascii, uQuoted-string's qtext too,
# sub-domain may be a U-label (judged by IDNA in normalize_domain).  The C1
# controls are UTF8-non-ascii too, but no address needs them.
_NON_ASCII = "\u00a0-\U0010ffff"
_U_ATOM = rf"[A-Za-z0-9{_ATEXT_SPECIALS}{_NON_ASCII}]+"
_U_LABEL = rf"[A-Za-z0-9{_NON_ASCII}](?:[A-Za-z0-9{_NON_ASCII}-]*[A-Za-z0-9{_NON_ASCII}])?"
_U_DOMAIN = rf"{_U_LABEL}(?:\.{_U_LABEL})*"
_UTF8_PATH = re.compile(
    rf"(?P<route>@{_U_DOMAIN}(?:,@{_U_DOMAIN})*:)?"
    rf"(?P<local>{_U_ATOM}(?:\.{_U_ATOM})*|\"(?:[\x20\x21\x23-\x5b\x5d-\x7e{_NON_ASCII}]|\\[\x20-\x7e])*\")"
    rf"@(?P<domain>{_U_DOMAIN}|{_LITERAL.decode()})\Z"
)


class AddressSyntaxError(ValueError):
    """Not an address of the kind asked for; the message says why, for a reply or the admin."""


# --- domains ------------------------------------------------------------------


def normalize_domain(domain: str) -> str:
    """The one spelling of *domain*: lower case, no root dot, A-labels.

    A trailing dot names the DNS root and is dropped, once.  A label
    outside ASCII is mapped (UTS 46, so ``Bücher`` and ``bücher`` agree)
    and converted to its A-label (RFC 5890 2.3.2.1); ASCII labels are only
    lower-cased and judged by the caller, so an address literal such as
    ``[IPv6:::1]`` passes through in lower case.  Raises
    :class:`AddressSyntaxError` for a label IDNA refuses.
    """
    labels = domain.lower().removesuffix(".").split(".")
    try:
        return ".".join(label if label.isascii() else idna.encode(label, uts46=True).decode("ascii")
                        for label in labels)
    except idna.IDNAError as e:
        raise AddressSyntaxError(f"{domain!r} is not a domain name: {e}") from None


def canonical_domain(domain: str) -> str | None:
    """:func:`normalize_domain` of *domain* if it is a DNS domain name, else ``None``."""
    try:
        normal = normalize_domain(domain)
    except AddressSyntaxError:
        return None
    return normal if len(normal) <= MAX_DOMAIN and _DOMAIN_NAME.match(normal) else None


# --- user addresses -------------------------------------------------------------


def _user_char(c: str) -> bool:
    """ASCII atext but the routing characters, a dot, or a non-ASCII letter, mark or digit (RFC 6531)."""
    if c.isascii():
        return _USER_LOCAL_CHAR.fullmatch(c) is not None
    return unicodedata.category(c)[0] in "LMN"


def _user_address(address: str) -> tuple[str, str] | str:
    """``(local, domain)`` of a plain user address in canonical form, or why it is not one."""
    local, at, domain = address.lower().rpartition("@")
    if not at or not local:
        return "expected local@domain"
    local = unicodedata.normalize("NFC", local)  # RFC 6532 3.1
    if len(local.encode()) > MAX_LOCAL:
        return f"the local part is longer than {MAX_LOCAL} octets"
    refused = sorted({c for c in local if not _user_char(c)})
    if refused:
        return "the local part may not contain " + " ".join(repr(c) for c in refused)
    if not _USER_LOCAL.match(local):
        return "the local part may not start or end with a dot, or contain two dots in a row"
    canonical = canonical_domain(domain)
    if canonical is None:
        return f"{domain!r} is not a domain name"
    if len(local.encode()) + 1 + len(canonical) > MAX_PATH - 2:
        return f"the address is longer than {MAX_PATH - 2} characters"
    return local, canonical


def address_problem(address: str) -> str | None:
    """Why *address* is not a plain user address, in words for the admin; ``None`` if it is one."""
    checked = _user_address(address)
    return checked if isinstance(checked, str) else None


def split_address(address: str) -> tuple[str, str] | None:
    """``(local, domain)`` in canonical form, or ``None`` if not a plain user address."""
    checked = _user_address(address)
    return None if isinstance(checked, str) else checked


def canonical_address(address: str) -> str | None:
    """The canonical form of *address* (``local@domain``, see above), or ``None`` if invalid."""
    parts = split_address(address)
    return None if parts is None else f"{parts[0]}@{parts[1]}"


def mailbox_path(address: str) -> tuple[str, str]:
    """``(domain, local)``: the two directory names of *address*'s Maildir, in that order.

    Every canonical address gives two plain names (no ``/``, ``\\``, NUL,
    no leading dot, never ``.`` or ``..``), so the result never names a
    path outside ``<root>/<domain>/``; anything else raises
    :class:`AddressSyntaxError` instead of reaching the file system.
    """
    parts = split_address(address)
    if parts is None:
        raise AddressSyntaxError(f"{address!r} cannot name a mailbox: {address_problem(address)}")
    return parts[1], parts[0]


# --- SMTP paths -------------------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    """One envelope address.

    ``local`` is dequoted (``"a b"@d`` has local ``a b``); ``domain`` is
    normalised (:func:`normalize_domain`), or an address literal in
    brackets; ``routed`` records a source route that was present in the
    path; ``sent`` is the mailbox as the client wrote it (quotes and case
    kept, route left out), so that replies and logs name the address the
    client actually used.
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


def parse_path(path: bytes, utf8: bool = False) -> Mailbox:
    """Parse the text between ``<`` and ``>`` of a MAIL or RCPT path.

    *utf8*: the client gave ``SMTPUTF8`` (RFC 6531 3.3), so the path is
    UTF-8 and may hold non-ASCII local parts and U-labels; the local part
    is then brought to NFC (RFC 6532 3.1) and the domain to A-labels.
    Without it, the path is ASCII (the caller refuses 8-bit paths first,
    with RFC 6531 3.5's reply).  Raises :class:`AddressSyntaxError` for
    anything that is not a complete ``local@domain`` within the RFC 5321
    4.5.3.1 length limits, counted in octets.
    """
    if len(path) > MAX_PATH - 2:
        raise AddressSyntaxError("address too long")
    if utf8:
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            raise AddressSyntaxError("the address is not UTF-8") from None
        match = _UTF8_PATH.match(text)
    else:
        text = path.decode("ascii", "replace")
        match = _PATH.match(path)
    if match is None:
        raise AddressSyntaxError("bad address syntax")
    start, end = match.span("local")
    raw_local, raw_domain = text[start:end], text[end + 1:]
    if len(raw_local.encode()) > MAX_LOCAL:
        raise AddressSyntaxError("local part too long")
    domain = normalize_domain(raw_domain)
    if len(domain) > MAX_DOMAIN:
        raise AddressSyntaxError("domain too long")
    local = raw_local
    if raw_local.startswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", raw_local[1:-1])
    if not local.isascii():
        local = unicodedata.normalize("NFC", local)
    return Mailbox(local, domain, routed=match.group("route") is not None, sent=f"{raw_local}@{raw_domain}")

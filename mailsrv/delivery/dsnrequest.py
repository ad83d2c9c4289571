"""What a sender asked to be told about its message (RFC 3461), and the xtext those requests are written in.

A client that sees ``DSN`` in our EHLO may add ``RET`` and ``ENVID`` to
MAIL FROM and ``NOTIFY`` and ``ORCPT`` to each RCPT TO.  This module holds
their meaning, shared by the SMTP server that parses them
(:mod:`mailsrv.smtp.params`), the queue that keeps them
(:mod:`.queuedir`), the client that passes them on (:mod:`.dialogue`) and
the reports (:mod:`.bounce`): which notifications a recipient wants, what
an alias passes on to the addresses it forwards to, the xtext encoding
(RFC 3461 4) of ENVID and ORCPT, and RFC 6533 3's encodings of an
internationalized address (``ORCPT=utf-8;...``, and our reports'
recipient fields).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The NOTIFY keywords (RFC 3461 4.1); ``NEVER`` stands alone.
NEVER, SUCCESS, FAILURE, DELAY = "NEVER", "SUCCESS", "FAILURE", "DELAY"
_EVENTS = (SUCCESS, FAILURE, DELAY)
#: The RET values (RFC 3461 4.3).
FULL, HDRS = "FULL", "HDRS"
#: RFC 3461 4.4: at most 100 characters of ENVID; 4.2: at most 500 of ORCPT.
MAX_ENVID = 100
MAX_ORCPT = 500

#: RFC 3461 4: xchar is "!" to "~" but "+" and "="; hexchar is "+" and two upper-case hex digits.
_XTEXT = re.compile(r"(?:[\x21-\x2a\x2c-\x3c\x3e-\x7e]|\+[0-9A-F]{2})*\Z")
_HEXCHAR = re.compile(r"\+([0-9A-F]{2})")
#: RFC 3461 4.2 and 4.4: the decoded value is printable US-ASCII ("graphic and white space").
_PRINTABLE = re.compile(r"[\x20-\x7e\t]*\Z")
#: RFC 3461 4.2: addr-type is an atom (RFC 5322 3.2.3 atext), here without "=" (it ends a parameter).
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/?^_`{|}~-]+\Z")


#: RFC 6533 3: the addr-type of an internationalized (RFC 6531) address.
UTF8_TYPE = "utf-8"
#: RFC 6533 3: utf-8-addr-unitext: QCHAR, UTF8-non-ascii and EmbeddedUnicodeChar (``\x{HEX}``);
#: utf-8-addr-xtext is its ASCII part.
_QCHAR = r"\x21-\x2a\x2c-\x3c\x3e-\x5b\x5d-\x7e"
_UTF8_ADDR = re.compile(rf"(?:[{_QCHAR}\u00a0-\U0010ffff]|\\x\{{[0-9A-F]{{2,6}}\}})+\Z")
_EMBEDDED = re.compile(r"\\x\{([0-9A-F]{2,6})\}")
_QCHARS = re.compile(rf"[{_QCHAR}]")


class BadRequest(ValueError):
    """A DSN parameter value that does not follow RFC 3461; the message says what is wrong."""


def decode_xtext(value: str) -> str:
    """The text an xtext stands for; :class:`BadRequest` for bad xtext or a decoded control character."""
    if not _XTEXT.match(value):
        raise BadRequest("is not xtext")
    text = _HEXCHAR.sub(lambda m: chr(int(m.group(1), 16)), value)
    if not _PRINTABLE.match(text):
        raise BadRequest("decodes to a character that is not printable US-ASCII")
    return text


def encode_xtext(text: str) -> str:
    """*text* as xtext: ``+``, ``=``, space and anything outside ``!`` to ``~`` as ``+XX`` (RFC 3461 4)."""
    return "".join(c if "!" <= c <= "~" and c not in "+=" else f"+{ord(c):02X}" for c in text)


def parse_notify(value: str) -> str:
    """The canonical form of a NOTIFY value (``NEVER``, or some of ``SUCCESS,FAILURE,DELAY`` in that order)."""
    words = value.upper().split(",")
    if words == [NEVER]:
        return NEVER
    if not words or any(word not in _EVENTS for word in words):
        raise BadRequest("must be NEVER or a list of SUCCESS, FAILURE and DELAY")
    return ",".join(event for event in _EVENTS if event in words)


def decode_utf8_addr(value: str) -> str:
    """The address a utf-8-addr-xtext or utf-8-addr-unitext stands for (RFC 6533 3)."""
    if not _UTF8_ADDR.match(value):
        raise BadRequest("is not utf-8-addr-xtext")

    def embedded(match: re.Match[str]) -> str:
        point = int(match.group(1), 16)
        if point < 0x20 or point > 0x10FFFF or 0xD800 <= point <= 0xDFFF:
            raise BadRequest(f"names \\x{{{match.group(1)}}}, which is no character of an address")
        return chr(point)

    return _EMBEDDED.sub(embedded, value)


def encode_utf8_addr(address: str) -> str:
    """*address* as utf-8-addr-xtext (RFC 6533 3): ASCII, so right with or without SMTPUTF8 and in a report."""
    return "".join(c if _QCHARS.match(c) else f"\\x{{{ord(c):02X}}}" for c in address)


def parse_orcpt(value: str) -> str:
    """``addr-type;address`` with the address decoded, from an ORCPT value (RFC 3461 4.2).

    The ``utf-8`` type's address is in RFC 6533 3's encoding instead of xtext.
    """
    if len(value) > MAX_ORCPT:
        raise BadRequest(f"is longer than {MAX_ORCPT} characters")
    addr_type, semicolon, encoded = value.partition(";")
    if not semicolon or not _ADDR_TYPE.match(addr_type) or not encoded:
        raise BadRequest("must be addr-type;address")
    if addr_type.lower() == UTF8_TYPE:
        return f"{addr_type};{decode_utf8_addr(encoded)}"
    return f"{addr_type};{decode_xtext(encoded)}"


def parse_envid(value: str) -> str:
    """The decoded envelope identifier of an ENVID value (RFC 3461 4.4)."""
    if len(value) > MAX_ENVID:
        raise BadRequest(f"is longer than {MAX_ENVID} characters")
    return decode_xtext(value)


def orcpt_parameter(orcpt: str) -> str:
    """The ``ORCPT=`` value that passes a stored ``addr-type;address`` on (and our reports'
    ``Original-Recipient`` of a ``utf-8`` one, RFC 6533 3)."""
    addr_type, _, address = orcpt.partition(";")
    if addr_type.lower() == UTF8_TYPE:
        return f"{addr_type};{encode_utf8_addr(address)}"
    return f"{addr_type};{encode_xtext(address)}"


def wants(notify: str, event: str) -> bool:
    """Whether a recipient with this NOTIFY (``""``: none given) is to be told of *event*.

    RFC 3461 4.1: without NOTIFY, failures and delays are reported
    (as ``NOTIFY=FAILURE,DELAY``), success is not; ``NEVER`` asks for nothing.
    """
    if not notify:
        return event in (FAILURE, DELAY)
    return event in notify.split(",")


@dataclass(frozen=True)
class RecipientRequest:
    """The DSN parameters of one RCPT TO: *notify* canonical (``""``: none), *orcpt* ``addr-type;address``."""

    notify: str = ""
    orcpt: str = ""


#: The parameters of a recipient that gave none.
NO_REQUEST = RecipientRequest()


def passed_on(request: RecipientRequest, recipient: str, expanded: bool) -> RecipientRequest:
    """What the RCPT of a forwarding target asks, from the *request* made for the alias *recipient*.

    A single-recipient alias relays: NOTIFY and ORCPT go on unchanged
    (RFC 3461 5.2.7.2).  An alias that expands to several addresses has
    sent the sender an "expanded" DSN if it asked for success, so SUCCESS
    is taken from each target's NOTIFY, ``NEVER`` if nothing is left
    (RFC 3461 5.2.7.3).  Either way the ORCPT names what the sender wrote:
    the one it gave, else the alias itself (RFC 3461 5.2.1), when that is
    an ASCII address ``rfc822`` can carry.
    """
    orcpt = request.orcpt or (f"rfc822;{recipient}" if recipient.isascii() else "")
    notify = request.notify
    if expanded and notify:
        notify = ",".join(event for event in notify.split(",") if event != SUCCESS) or NEVER
    return RecipientRequest(notify, orcpt)

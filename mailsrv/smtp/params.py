"""ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 ``Mail-parameters``).

Twisted's MAIL/RCPT regexes capture the parameters and throw them away
(twisted #8128), so a client's ``SIZE=`` is never checked and an unknown
parameter is silently accepted.  Here every parameter is parsed, the ones
we advertise are honoured and anything else is refused with 555, as RFC
5321 4.1.1.11 asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsrv.message.body import BodyType
from mailsrv.smtp import replies
from mailsrv.smtp.replies import Rejection

_KEYWORD = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE = re.compile(rb"[\x21-\x3c\x3e-\x7e]+\Z")  # RFC 5321 esmtp-value


@dataclass(frozen=True)
class MailParams:
    """What the client declared on MAIL FROM."""

    size: int | None = None
    body: BodyType = BodyType.SEVEN_BIT


def _split(raw: bytes) -> dict[str, str | None]:
    """``KEY[=VALUE] ...`` into an upper-cased-key dict; 501 on bad syntax or repeats."""
    params: dict[str, str | None] = {}
    for item in raw.split():
        key, eq, value = item.partition(b"=")
        if not _KEYWORD.match(key) or (eq and not _VALUE.match(value)):
            raise Rejection(replies.BAD_PARAMETERS)
        name = key.decode("ascii").upper()
        if name in params:
            raise Rejection(replies.DUPLICATE_PARAMETER(name=name))
        params[name] = value.decode("ascii") if eq else None
    return params


def parse_mail_params(raw: bytes, *, max_size: int, auth_offered: bool) -> MailParams:
    """Check the MAIL FROM parameters against what EHLO advertised.

    *auth_offered*: RFC 4954 5 obliges a server that offers AUTH to accept
    the ``AUTH=`` parameter; we accept and ignore it (we do not relay, so
    there is no one to pass the original submitter on to).
    """
    size: int | None = None
    body: BodyType = BodyType.SEVEN_BIT
    for name, value in _split(raw).items():
        if name == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise Rejection(replies.BAD_SIZE)
            size = int(value)
            if size > max_size:
                # RFC 1870 6.1: the declared size already exceeds our fixed maximum.
                raise Rejection(replies.SIZE_EXCEEDED)
        elif name == "BODY":
            if (value or "").upper() not in ("7BIT", "8BITMIME"):  # RFC 6152 2
                raise Rejection(replies.BAD_BODY)
            body = BodyType.declared(value)
        elif name == "AUTH" and auth_offered and value is not None:
            continue
        else:
            raise Rejection(replies.UNSUPPORTED_PARAMETER(name=name))
    return MailParams(size=size, body=body)


def parse_rcpt_params(raw: bytes) -> None:
    """RCPT TO takes no parameters we advertise: each one gets 555 (RFC 5321 4.1.1.11)."""
    params = _split(raw)
    if params:
        raise Rejection(replies.UNSUPPORTED_PARAMETER(name=next(iter(params))))

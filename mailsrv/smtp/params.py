"""ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2 ``Mail-parameters``).

Twisted's MAIL/RCPT regexes capture the parameters and throw them away
(twisted #8128), so a client's ``SIZE=`` is never checked and an unknown
parameter is silently accepted.  Here every parameter is parsed, the ones
we advertise are honoured and anything else is refused with 555, as RFC
5321 4.1.1.11 asks: SIZE, BODY, AUTH, the DSN parameters (RFC 3461: RET
and ENVID on MAIL, NOTIFY and ORCPT on RCPT, their meaning in
:mod:`mailsrv.delivery.dsnrequest`), REQUIRETLS (RFC 8689 3), which
only a TLS session may give, and SMTPUTF8 (RFC 6531 3.4, see
:mod:`.smtputf8`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from mailsrv.delivery import dsnrequest
from mailsrv.delivery.dsnrequest import BadRequest, RecipientRequest
from mailsrv.message.body import BodyType
from mailsrv.smtp import replies
from mailsrv.smtp.replies import Rejection
from mailsrv.smtp.smtputf8 import smtputf8_param

_KEYWORD = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE = re.compile(rb"[\x21-\x3c\x3e-\x7e]+\Z")  # RFC 5321 esmtp-value
_UTF8_VALUE = re.compile(rb"[\x21-\x3c\x3e-\x7e\x80-\xff]+\Z")  # RFC 6531 3.3: and UTF8-non-ascii


@dataclass(frozen=True)
class MailParams:
    """What the client declared on MAIL FROM."""

    size: int | None = None
    body: BodyType = BodyType.SEVEN_BIT
    #: RFC 3461 4.3: ``FULL``, ``HDRS``, or ``""`` (not given).
    ret: str = ""
    #: RFC 3461 4.4: the envelope identifier, decoded (``""``: not given).
    envid: str = ""
    #: RFC 8689 3: every hop must be TLS, verified, to servers that offer REQUIRETLS.
    require_tls: bool = False
    #: RFC 6531 3.4: the envelope and header may be UTF-8.
    smtputf8: bool = False


def _split(raw: bytes, utf8: bool = False) -> dict[str, str | None]:
    """``KEY[=VALUE] ...`` into an upper-cased-key dict; 501 on bad syntax or repeats.

    *utf8* (RCPT in a transaction with SMTPUTF8): values may be UTF-8.
    """
    params: dict[str, str | None] = {}
    for item in raw.split():
        key, eq, value = item.partition(b"=")
        if not _KEYWORD.match(key) or (eq and not (_UTF8_VALUE if utf8 else _VALUE).match(value)):
            raise Rejection(replies.BAD_PARAMETERS)
        name = key.decode("ascii").upper()
        if name in params:
            raise Rejection(replies.DUPLICATE_PARAMETER(name=name))
        try:
            params[name] = value.decode() if eq else None
        except UnicodeDecodeError:
            raise Rejection(replies.BAD_PARAMETERS) from None
    return params


def _dsn_value(name: str, value: str | None, parse: Callable[[str], str]) -> str:
    """*value* of the DSN parameter *name* through *parse*; 501 naming the parameter when it is bad."""
    if value is None:
        raise Rejection(replies.BAD_DSN_PARAMETER(name=name, reason="needs a value"))
    try:
        return parse(value)
    except BadRequest as e:
        raise Rejection(replies.BAD_DSN_PARAMETER(name=name, reason=str(e))) from None


def _ret(value: str) -> str:
    if value.upper() not in (dsnrequest.FULL, dsnrequest.HDRS):
        raise BadRequest("must be FULL or HDRS")
    return value.upper()


def parse_mail_params(raw: bytes, *, max_size: int, auth_offered: bool, tls_active: bool) -> MailParams:
    """Check the MAIL FROM parameters against what EHLO advertised.

    *auth_offered*: RFC 4954 5 obliges a server that offers AUTH to accept
    the ``AUTH=`` parameter; we accept and ignore it (we do not relay, so
    there is no one to pass the original submitter on to).  *tls_active*:
    REQUIRETLS is advertised on TLS sessions only, and taken only there.
    """
    size: int | None = None
    body: BodyType = BodyType.SEVEN_BIT
    ret = envid = ""
    require_tls = smtputf8 = False
    for name, value in _split(raw).items():
        if name == "SIZE":
            if value is None or not value.isdigit() or len(value) > 20:
                raise Rejection(replies.BAD_SIZE)
            size = int(value)
            if size > max_size:
                # RFC 1870 6.1: the declared size already exceeds our fixed maximum.
                raise Rejection(replies.SIZE_EXCEEDED)
        elif name == "BODY":
            if (value or "").upper() not in ("7BIT", "8BITMIME", "BINARYMIME"):  # RFC 6152 2, RFC 3030 3
                raise Rejection(replies.BAD_BODY)
            body = BodyType.declared(value)
        elif name == "AUTH" and auth_offered and value is not None:
            continue
        elif name == "RET":
            ret = _dsn_value(name, value, _ret)
        elif name == "ENVID":
            envid = _dsn_value(name, value, dsnrequest.parse_envid)
        elif name == "REQUIRETLS":
            if value is not None:
                raise Rejection(replies.BAD_REQUIRETLS)  # RFC 8689 3: the parameter has no value
            if not tls_active:
                raise Rejection(replies.REQUIRETLS_NEEDS_TLS)
            require_tls = True
        elif name == "SMTPUTF8":
            smtputf8 = smtputf8_param(value)
        else:
            raise Rejection(replies.UNSUPPORTED_PARAMETER(name=name))
    return MailParams(size=size, body=body, ret=ret, envid=envid, require_tls=require_tls, smtputf8=smtputf8)


def parse_rcpt_params(raw: bytes, utf8: bool = False) -> RecipientRequest:
    """The RFC 3461 NOTIFY and ORCPT of a RCPT TO; any other parameter gets 555 (RFC 5321 4.1.1.11).

    *utf8*: the transaction has SMTPUTF8, so ORCPT may be ``utf-8;`` and
    raw UTF-8 (RFC 6533 3 utf-8-addr-unitext).
    """
    notify = orcpt = ""
    for name, value in _split(raw, utf8).items():
        if name == "NOTIFY":
            notify = _dsn_value(name, value, dsnrequest.parse_notify)
        elif name == "ORCPT":
            orcpt = _dsn_value(name, value, dsnrequest.parse_orcpt)
        else:
            raise Rejection(replies.UNSUPPORTED_PARAMETER(name=name))
    return RecipientRequest(notify=notify, orcpt=orcpt)

"""Trace headers: ``Return-Path`` and ``Received`` (RFC 5321 4.4).

Twisted's own ``receivedHeader`` folds with a bare LF inside CRLF mail and
names the server by its class; ours is CRLF-folded, states the protocol with
the RFC 3848 ``with`` keywords and carries the TLS details, because the
trace header is what an admin reads when a message's path is in question.
"""

from __future__ import annotations

import functools
import time
from datetime import datetime, timezone
from email.utils import format_datetime

from mailsrv.message.headers import return_path_line


_FOLD = "\r\n\t"  # RFC 5322 2.2.3: fold with CRLF followed by whitespace


def with_protocol(esmtp: bool, tls: bool, authenticated: bool, utf8: bool = False) -> str:
    """The ``with`` keyword of RFC 3848 2: ESMTP, ESMTPS, ESMTPA, ESMTPSA (or SMTP after HELO);
    for a transaction with SMTPUTF8 (*utf8*) RFC 6531 4.3's UTF8SMTP, UTF8SMTPS, UTF8SMTPA, UTF8SMTPSA."""
    if not esmtp:
        return "SMTP"
    return ("UTF8SMTP" if utf8 else "ESMTP") + ("S" if tls else "") + ("A" if authenticated else "")


def address_literal(ip: str) -> str:
    """``[192.0.2.1]`` or ``[IPv6:2001:db8::1]`` (RFC 5321 4.1.3)."""
    # Only an IPv6 address has a colon; parsing each one would cost more
    # than the rest of the header.
    return f"[IPv6:{ip}]" if ":" in ip else f"[{ip}]"


@functools.lru_cache(maxsize=2)
def _date_time(second: int) -> str:
    """The RFC 5322 3.3 date-time of a whole UTC *second*.

    Every message of a busy second carries the same one, so it is made once
    per second, not once per message (the formatting costs more than the
    rest of the header; the date-time has no finer unit than the second).
    """
    return format_datetime(datetime.fromtimestamp(second, timezone.utc))


def trace_headers(
    *,
    sender: str,
    helo: str,
    client_ip: str,
    hostname: str,
    protocol: str,
    queue_id: str,
    tls: str | None,
    recipient: str | None,
    login: str | None = None,
    when: datetime | None = None,
) -> bytes:
    """``Return-Path`` and ``Received`` as CRLF-terminated header lines.

    *sender* is the reverse-path ('' for the null sender).  *recipient* is
    named in the ``for`` clause only when the message has exactly one, so
    that Bcc recipients are not disclosed to each other.  *login*, the
    user who submitted the message, goes in a comment as Postfix and
    Sendmail write it, so a recipient (or their admin) can tell who sent
    it; it is a canonical user address, which holds no character a
    comment would need escaped.  The addresses may be UTF-8 (RFC 6531 4.3,
    a transaction with SMTPUTF8; RFC 6532 3.7 lets the header hold them).
    """
    # RFC 5321 4.4 TCP-info: the address literal alone, as no reverse DNS is looked up.
    parts = [f"from {helo} ({address_literal(client_ip)})"]
    if tls:
        parts.append(f"(using {tls})")
    if login:
        parts.append(f"(Authenticated sender: {login})")
    parts.append(f"by {hostname} (mailsrv) with {protocol} id {queue_id}")
    # RFC 5322 3.3 date-time, as RFC 5321 4.4 asks
    stamp = _date_time(int(time.time())) if when is None else format_datetime(when)
    if recipient is not None:
        parts.append(f"for <{recipient}>; {stamp}")
    else:
        parts[-1] += ";"
        parts.append(stamp)
    received = "Received: " + _FOLD.join(parts)
    return return_path_line(sender, b"\r\n") + f"{received}\r\n".encode()

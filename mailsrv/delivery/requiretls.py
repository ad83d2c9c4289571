"""What RFC 8689 does to a message's TLS policy: REQUIRETLS raises it, ``TLS-Required: No`` lowers it.

:func:`decision` is where :mod:`.remote` applies it, to the destination's
own decision (:mod:`.tlspolicy`: a ``[delivery.domains]`` rule, MTA-STS,
``[delivery] tls``).

A message that came with ``MAIL FROM ... REQUIRETLS`` goes only over TLS
whose certificate chain and name check out (RFC 8689 4.2.2.1, our
``verify``), to a server that offers REQUIRETLS itself and is given the
parameter (:mod:`.dialogue`), whatever ``[delivery] tls`` says.  A message
without it whose header says ``TLS-Required: No`` (RFC 8689 4) asks the
opposite: deliver even when the recipient's TLS policy cannot be met,
so it goes under ``may`` (STARTTLS when offered, any certificate,
plaintext when the handshake fails; RFC 8689 4.2.2.2), and the domain's
MTA-STS policy is set aside (its MX list too).  Nothing lowers a relay's
policy: that one is the operator's agreement with the relay, which AUTH
needs.
"""

from __future__ import annotations

from dataclasses import replace

from mailsrv.delivery.attempt import Options
from mailsrv.delivery.tlspolicy import Decision
from mailsrv.message.fields import field_values

#: RFC 8689 5.2 (IANA): X.7.30, "REQUIRETLS support required".
UNSUPPORTED = "550 5.7.30 REQUIRETLS support required: no server of the destination offers REQUIRETLS"


def tls_optional(header: bytes) -> bool:
    """Whether the wire-form *header* has ``TLS-Required: No`` (RFC 8689 4: the one value defined)."""
    return any(value.lower() == b"no" for value in field_values(header, b"tls-required"))


def policy(configured: str, *, require_tls: bool, tls_optional: bool, relay: bool) -> str:
    """The TLS policy (``none``, ``may``, ``encrypt``, ``verify``) for one message towards one destination.

    *configured* is the destination's own; REQUIRETLS wins over the
    header (RFC 8689 4.2.1: with the parameter the header is ignored).
    """
    if require_tls:
        return "verify"
    if tls_optional and not relay and configured in ("encrypt", "verify"):
        return "may"
    return configured


def decision(decided: Decision, options: Options, *, relay: bool) -> Decision:
    """*decided* as the message's demands change it (see the module docstring)."""
    tls = policy(decided.tls, require_tls=options.require_tls, tls_optional=options.tls_optional, relay=relay)
    if options.tls_optional and not options.require_tls and not relay:
        return replace(decided, tls=tls, sts=None)  # RFC 8689 4.2.2.2: the recipient's MTA-STS policy ignored
    return replace(decided, tls=tls)


def sessions_key(destination: str, options: Options) -> str:
    """Where the sessions to *destination* are kept for reuse by a message with *options*.

    A session is reused only under the TLS demands it was opened for: one
    opened for plain ``may`` never carries a REQUIRETLS message (RFC 8689
    4.2.2.1), nor one opened for REQUIRETLS a message that wants less.
    """
    if options.require_tls:
        return f"{destination} REQUIRETLS"
    if options.tls_optional:
        return f"{destination} TLS-Required: No"
    return destination

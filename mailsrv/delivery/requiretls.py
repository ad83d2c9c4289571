"""What RFC 8689 does to a message's TLS policy: REQUIRETLS raises it, ``TLS-Required: No`` lowers it.

:func:`decision` is where :mod:`.remote` applies it, to the destination's
own decision (:mod:`.tlspolicy`: a ``[delivery.domains]`` rule, MTA-STS,
``[delivery] tls``).

A message that came with ``MAIL FROM ... REQUIRETLS`` goes only over TLS
whose certificate chain and name check out (RFC 8689 4.2.2.1, our
``verify``), to a server that offers REQUIRETLS itself and is given the
parameter (:mod:`.dialogue`), whatever ``[delivery] tls`` says, and only
to an MX host whose MX records were DNSSEC-validated or which the
domain's MTA-STS policy in ``enforce`` mode lists (:func:`qualified`; a
relay or a per-domain route the admin named needs neither).  A message
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

from collections.abc import Sequence

from twisted.logger import Logger

from mailsrv.delivery.attempt import Options
from mailsrv.delivery.mtasts.policy import Mode
from mailsrv.delivery.mx import Host, address_literal
from mailsrv.delivery.tlspolicy import Decision
from mailsrv.message.fields import field_values

log = Logger()

#: RFC 8689 5.2 (IANA): X.7.30, "REQUIRETLS support required".
UNSUPPORTED = "550 5.7.30 REQUIRETLS support required: no server of the destination offers REQUIRETLS"
#: RFC 8689 4.2.2.1: no MX host whose name can be trusted; X.7.10, "encryption needed".
NOT_VALIDATED = ("550 5.7.10 REQUIRETLS: no MX host of {domain} ({hosts}) is DNSSEC-validated "
                 "or listed in an MTA-STS policy in enforce mode")


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


def qualified(queue_id: str, hosts: Sequence[Host], decision: Decision, options: Options) -> list[Host]:
    """The MX *hosts* a message may go to: for REQUIRETLS, those whose name can be trusted (RFC 8689 4.2.2.1).

    That is an MX answer the resolver validated (DNSSEC, the AD bit), or
    the host being listed in the domain's MTA-STS policy in ``enforce``
    mode; without either an attacker who forges the MX answer would get a
    REQUIRETLS message over TLS with a certificate of his own name.  An
    address literal names no MX at all.  Each host left out is logged.
    """
    if not options.require_tls:
        return list(hosts)
    sts = decision.sts if decision.sts is not None and decision.sts.mode is Mode.ENFORCE else None
    allowed = [host for host in hosts if host.mx_validated or address_literal(host.name) is not None
               or (sts is not None and sts.allows(host.name))]
    for host in hosts:
        if host not in allowed:
            log.info("{queue_id}: REQUIRETLS: the MX record of {host} is neither DNSSEC-validated nor in an "
                     "enforced MTA-STS policy of {domain}; skipped", queue_id=queue_id, host=host.name,
                     domain=decision.domain)
    return allowed


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

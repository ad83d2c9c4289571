"""The LIMITS extension (RFC 9422): the session's limits, told to the client in EHLO.

A client that knows them splits its recipients and messages to fit instead
of running into a refusal.  Only limits we enforce, with the values we
enforce, are named:

* ``RCPTMAX`` (RFC 9422 4.2): ``[limits] max_recipients``, the recipients
  of one transaction; the next RCPT gets ``452 4.5.3``
  (:func:`mailsrv.smtp.transaction.rcpt`), as RFC 5321 4.5.3.1.10 and RFC
  9422 4.2 ask;
* ``MAILMAX`` (RFC 9422 4.1): ``[limits] smtp_messages_per_connection``,
  the transactions of one session, when it has one (not ``0``) and applies
  to this client (not one of ``rates_exempt_networks``); the next MAIL
  gets ``421 4.7.0`` and the connection closes.

``RCPTDOMAINMAX`` is not named: no limit on the domains of one transaction
is enforced.  ``[limits] smtp_recipients_per_connection`` counts over the
whole session, which no LIMITS name describes.
"""

from __future__ import annotations

from mailsrv.config.limits import LimitsConfig
from mailsrv.smtp.connection import SessionCounts


def limits_keyword(limits: LimitsConfig, counts: SessionCounts) -> bytes:
    """The EHLO line ``LIMITS RCPTMAX=n[ MAILMAX=n]`` for a session with these *counts*."""
    named = [b"RCPTMAX=%d" % limits.max_recipients]
    if limits.smtp_messages_per_connection and counts.limited:
        named.append(b"MAILMAX=%d" % limits.smtp_messages_per_connection)
    return b"LIMITS " + b" ".join(named)

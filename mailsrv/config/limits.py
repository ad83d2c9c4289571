"""``[limits]``: the bounds that keep one client from exhausting the server.

Each key protects against one kind of abuse; the defaults are sized for a
small server on one machine.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, at_least, setting


def _networks(values: tuple[str, ...]) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise Invalid(f"{value!r} is not a network like 192.0.2.0/24 or 2001:db8::/32") from None
    return values


@dataclass(frozen=True)
class LimitsConfig(Table):
    """Protocol and resource limits."""

    DOC = "Protocol limits; each protects the server from one kind of abuse."

    max_message_size: int = setting(
        50 * 1024 * 1024, "Largest message accepted over SMTP, in octets (advertised as SIZE).", at_least(1024)
    )
    max_line_length: int = setting(
        16 * 1024,
        "Longest SMTP command or text line, in octets (RFC 5321 minimum is 1000).",
        at_least(1000, "RFC 5321 4.5.3.1.6"),
    )
    max_recipients: int = setting(100, "Recipients per SMTP transaction; more get 452 4.5.3.", at_least(1))
    max_command_errors: int = setting(
        20, "Unknown or bad SMTP commands per session before it is closed with 421.", at_least(1)
    )
    smtp_timeout: int = setting(300, "Seconds an SMTP session may stay idle.", at_least(1))
    imap_max_line_length: int = setting(
        1024 * 1024,
        "Longest IMAP command, in octets, its literals included except APPEND's message (clients syncing "
        "large folders send UID sets of several hundred KiB). A connection holds at most this much unread input.",
        at_least(1000),
    )
    imap_max_literal_size: int = setting(
        50 * 1024 * 1024, "Largest IMAP literal (APPEND message), in octets.", at_least(1)
    )
    pop3_timeout: int = setting(
        600, "Seconds a POP3 session may stay idle (RFC 1939 asks for at least 600).", at_least(1)
    )
    spool_threshold: int = setting(
        1024 * 1024,
        "Message bodies larger than this (octets) are spooled to disk while they arrive; smaller ones stay in memory.",
    )
    max_connections: int = setting(
        1000, "Client connections over all listeners; more are refused with a temporary error.", at_least(1)
    )
    max_connections_per_ip: int = setting(
        50,
        "Connections from one client IP over all listeners; more are refused with a temporary error. 0 means "
        "no per-address limit (behind haproxy: every connection comes from the proxy's address).",
        at_least(0),
    )
    smtp_connections_per_ip_minute: int = setting(
        60, "New connections on port 25 from one client address (an IPv6 /64) per minute; more get 421 4.7.0. "
        "0: no limit.", at_least(0),
    )
    smtp_messages_per_ip_hour: int = setting(
        1000, "Messages (MAIL commands) on port 25 from one client address per hour; more get 421 4.7.0. 0: no limit.",
        at_least(0),
    )
    smtp_recipients_per_ip_hour: int = setting(
        5000, "Recipients (RCPT commands) on port 25 from one client address per hour; more get 421 4.7.0. "
        "0: no limit.", at_least(0),
    )
    rates_exempt_networks: tuple[str, ...] = setting(
        ("127.0.0.0/8", "::1/128"),
        "Client networks the per-address rates and the per-connection message and recipient limits do not "
        "apply to (local scripts, a webmail, a trusted relay; Postfix exempts its mynetworks the same way).",
        _networks,
    )
    rates_tracked: int = setting(
        10000, "Client addresses the per-address rates remember; past that the oldest is forgotten.", at_least(1)
    )
    smtp_messages_per_connection: int = setting(
        100, "Messages in one SMTP connection; the next MAIL gets 421 4.7.0 and the connection closes. 0: no limit.",
        at_least(0),
    )
    smtp_recipients_per_connection: int = setting(
        1000, "Recipients in one SMTP connection; the next RCPT gets 421 4.7.0 and the connection closes. "
        "0: no limit.", at_least(0),
    )
    smtp_failed_recipients: int = setting(
        10, "Refused recipients (unknown users, relaying) in one connection before it is closed with 421 4.7.0: "
        "a dictionary attack. 0: no limit.", at_least(0),
    )
    smtp_failed_recipients_before_delay: int = setting(
        3, "Refused recipients in one connection answered at once; each one after waits a second longer than "
        "the one before.", at_least(0),
    )
    pregreet_wait: int = setting(
        0, "Seconds port 25 holds its greeting; a client that talks before it (spam software that does not "
        "wait) gets 421 4.7.0. 0: greet at once. Postfix's postscreen waits 6.", at_least(0),
    )
    greylist: bool = setting(
        False, "Greylist port 25 (RFC 6647): the first RCPT of a new (client /24 or /64, sender, recipient) gets "
        "451 4.7.1, a retry after greylist_delay passes. Delays the first mail of every new sender.",
    )
    greylist_delay: int = setting(300, "Seconds before a greylisted triplet's retry is accepted.", at_least(0))
    greylist_retry_window: int = setting(
        4 * 3600, "Seconds after its first attempt within which a triplet must retry, or it starts over.", at_least(1)
    )
    greylist_pass_for: int = setting(
        36 * 86400, "Seconds a triplet that passed keeps passing at once after it was last seen.", at_least(1)
    )

"""``[spam]``: spam scoring of port 25 mail by rspamd, and what users teach it (:mod:`mailsrv.spam`).

Off unless ``rspamd`` names the scanner.  Which mail is scanned is
``[policy] trusted_networks``'s rule: mail from those networks and what
logged-in users submit is not.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from mailsrv.config.delivery import duration
from mailsrv.config.schema import Invalid, Table, one_of, setting

#: What a message gets when the scanner cannot answer.
ON_ERROR = ("accept", "tempfail")


def http_url(value: str) -> str:
    """``""`` or an ``http://`` / ``https://`` URL with a host and no path, query or fragment."""
    if not value:
        return value
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path.strip("/") or parts.query \
            or parts.fragment:
        raise Invalid(f"{value!r} is not a URL such as \"http://127.0.0.1:11333\"")
    try:
        parts.port
    except ValueError:
        raise Invalid(f"{value!r} has no valid port") from None
    return value.rstrip("/")


@dataclass(frozen=True)
class SpamConfig(Table):
    """rspamd's scanner and controller."""

    DOC = (
        "Spam scoring (port 25): each message from outside [policy] trusted_networks is scanned by rspamd "
        "before the 250; its action refuses it (550, 451), marks it with X-Spam headers, rewrites its subject "
        "or delivers it to Junk. Users moving mail into or out of Junk over IMAP teach rspamd."
    )

    rspamd: str = setting(
        "", 'The rspamd scanner (its normal worker), such as "http://127.0.0.1:11333"; "" scans nothing.', http_url,
        restart=True,
    )
    timeout: str = setting(
        "20s", "How long one scan may take before it counts as failed (on_error says what then).", duration,
        restart=True,
    )
    hostname_timeout: str = setting(
        "5s", "How long the client's name (reverse DNS confirmed by forward DNS, rspamd's Hostname header) may "
        'take to look up; past it, or when no name is confirmed, rspamd is told "unknown".', duration,
        restart=True,
    )
    on_error: str = setting(
        "accept",
        'When rspamd is down, slow or answers nonsense: "accept" delivers the message marked '
        '"X-Spam-Status: Unchecked"; "tempfail" answers 451 4.7.0 so the sender tries again later.',
        one_of(ON_ERROR),
    )
    controller: str = setting(
        "", 'The rspamd controller that learns spam and ham from IMAP moves, such as "http://127.0.0.1:11334"; '
        '"" learns nothing.', http_url, restart=True,
    )
    password_file: str = setting(
        "", "File holding the controller's password (its first line), sent as its Password header; \"\" sends none.",
        restart=True,
    )

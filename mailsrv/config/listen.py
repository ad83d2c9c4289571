"""``[listen]``: where each kind of listener accepts connections.

The keys are the listener kinds of :class:`mailsrv.listeners.Kind`, one
per ``Kind.label``, so a new kind is a new key with no second list to keep
in step: the dataclass is made from the enum, and a kind without a default
below stops the import.
"""

from __future__ import annotations

import dataclasses

from mailsrv.config.schema import Table, setting
from mailsrv.listeners import Kind

#: Default loopback port (``None``: off unless configured) and the admin's line for each kind.
_DEFAULTS: dict[Kind, tuple[int | None, str]] = {
    Kind.SMTP: (2525, "Inbound mail from other servers (MX; port 25 in production): STARTTLS, no AUTH."),
    Kind.SUBMISSION: (2587, "Your mail clients send here (RFC 6409; port 587): STARTTLS, then AUTH."),
    Kind.SUBMISSIONS: (2465, "Submission over implicit TLS (RFC 8314; port 465), with AUTH."),
    Kind.POP3: (2110, "POP3 (port 110), with STLS."),
    Kind.POP3S: (2995, "POP3 over implicit TLS (port 995)."),
    Kind.IMAP: (2143, "IMAP (port 143), with STARTTLS."),
    Kind.IMAPS: (2993, "IMAP over implicit TLS (port 993)."),
    Kind.HTTP: (None, "HTTP (port 80): client autoconfig (Thunderbird, Outlook, Apple), the MTA-STS policy, "
                      "/metrics with [http] metrics_token."),
    Kind.HTTPS: (None, "The same over TLS (port 443): mail clients and MTA-STS senders fetch from https://."),
    Kind.METRICS: (None, "Prometheus /metrics only, without a token (bind it where only your scraper reaches, "
                         'e.g. "tcp:9225:interface=127.0.0.1").'),
}

_DOC = (
    "Twisted server endpoint strings per kind of listener; [] turns a kind off. "
    'Production: "tcp:25", "tcp:587", ... (bind as root with --uid/--gid). '
    'Prefix "haproxy:" (e.g. "haproxy:tcp:25") to accept PROXY-protocol traffic. '
    f"The implicit-TLS kinds ({', '.join(k.label for k in Kind if k.implicit_tls)}) are wrapped in the "
    '[tls] certificate automatically: write them as plain "tcp:" endpoints.'
)


def _endpoints(self: "ListenConfig", kind: Kind) -> tuple[str, ...]:
    """The endpoint strings configured for *kind*."""
    return getattr(self, kind.label)


def _kind_field(kind: Kind) -> tuple[str, type, dataclasses.Field]:
    port, doc = _DEFAULTS[kind]
    endpoints = () if port is None else (f"tcp:{port}:interface=127.0.0.1",)
    return kind.label, tuple[str, ...], setting(endpoints, doc)


ListenConfig = dataclasses.make_dataclass(
    "ListenConfig",
    [
        *(_kind_field(kind) for kind in Kind),
        ("backlog", int, setting(1024, "Accept queue length added to tcp endpoints that set no backlog= themselves.")),
    ],
    bases=(Table,),
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "Twisted server endpoint strings per listener kind (one field per ``Kind.label``).",
        "DOC": _DOC,
        "endpoints": _endpoints,
    },
)

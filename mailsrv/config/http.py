"""``[http]``: what the HTTP listeners (``[listen] http``, ``https``, ``metrics``) answer and take."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, at_least, setting

#: RFC 6750 2.1: b64token, what a client can send after "Bearer ".
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*\Z")


def _token(value: str) -> str:
    if value and not _B64TOKEN.match(value):
        raise Invalid("must be letters, digits and -._~+/ (then = signs), as a bearer token is sent")
    return value


@dataclass(frozen=True)
class HTTPConfig(Table):
    """Client autoconfig, the MTA-STS policy and metrics over HTTP."""

    DOC = (
        "The HTTP listeners serve mail client settings (Thunderbird autoconfig, Outlook autodiscover, an Apple "
        ".mobileconfig profile), the MTA-STS policy of every local domain, and Prometheus /metrics."
    )

    metrics_token: str = setting(
        "",
        'Bearer token that opens /metrics on the http and https listeners ("Authorization: Bearer TOKEN"); '
        '"" keeps /metrics off there. The metrics listener serves /metrics without a token.',
        _token,
    )
    max_request_body: int = setting(
        65536, "Largest request body in octets (an Outlook autodiscover POST is under 1 KiB); more get 413.",
        at_least(1024),
    )
    idle_timeout: int = setting(60, "Seconds an HTTP connection may stay idle.", at_least(1))

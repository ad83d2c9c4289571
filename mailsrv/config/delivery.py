"""``[delivery]``: how mail for other servers leaves (the queue, MX delivery, a smarthost).

The key names are a contract: tests outside the project set exactly these.
Durations are strings ``Ns``, ``Nm``, ``Nh`` or ``Nd``; :func:`seconds`
reads them, and the checks here refuse any other form when the file is
loaded, naming the key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mailsrv.address import canonical_domain
from mailsrv.config.schema import Invalid, Table, at_least, mapping, one_of, setting

#: Transport security policies for a destination, weakest first.
TLS_POLICIES = ("none", "may", "encrypt", "verify")
_DURATION = re.compile(r"([1-9][0-9]*)([smhd])\Z")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def seconds(duration: str) -> int:
    """``"5m"`` -> 300; ValueError for anything but ``N`` and one of ``s m h d``."""
    match = _DURATION.match(duration)
    if match is None:
        raise ValueError(f"{duration!r} is not a duration like 30s, 5m, 1h or 5d")
    return int(match.group(1)) * _UNIT[match.group(2)]


def duration(value: str) -> str:
    """A check refusing anything :func:`seconds` cannot read (the message says what a duration looks like)."""
    try:
        seconds(value)
    except ValueError as e:
        raise Invalid(str(e)) from None
    return value


def _optional_duration(value: str) -> str:
    return duration(value) if value else value


def _durations(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values:
        raise Invalid("needs at least one duration (the last one repeats)")
    for value in values:
        duration(value)
    return values


_policy = one_of(TLS_POLICIES)


def parse_relay(value: str) -> tuple[str, int]:
    """``(host, port)`` of a relay setting ``host:port`` (``[ipv6]:port``); ValueError otherwise."""
    host, colon, port = value.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not (colon and host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{value!r} is not host:port")
    return host, int(port)


def _relay(value: str) -> str:
    if value:
        try:
            parse_relay(value)
        except ValueError as e:
            raise Invalid(str(e)) from None
    return value


def _port(value: int) -> int:
    if not 0 < value < 65536:
        raise Invalid(f"{value} is not a TCP port")
    return value


#: :attr:`DomainRule.route` for "this domain's MX hosts, even when a relay is set".
ROUTE_MX = "mx"


def _route(value: str) -> str:
    if value in ("", ROUTE_MX):
        return value
    try:
        parse_relay(value)
    except ValueError:
        raise Invalid(f'{value!r} is neither "mx" nor host:port') from None
    return value


def _rule_policy(value: str) -> str:
    return value and _policy(value)


def _domain(name: str) -> str:
    canonical = canonical_domain(name)
    if canonical is None:
        raise Invalid("is not a domain name")
    return canonical


@dataclass(frozen=True)
class DomainRule(Table):
    """How mail for one recipient domain leaves, where it differs from the rest of ``[delivery]``."""

    EXAMPLE = (
        '"bank.example" = { tls = "verify" }',
        '"old-partner.example" = { tls = "none" }',
        '"gmail.com" = { route = "mx" }',
        '"partner.example" = { route = "smtp.partner.example:587", tls = "encrypt" }',
    )

    tls: str = setting(
        "", "TLS policy for this domain (none, may, encrypt, verify); it wins over the domain's MTA-STS policy. "
        "Empty: MTA-STS, else tls (relay_tls for a relay).",
        _rule_policy,
    )
    route: str = setting(
        "", '"mx" delivers to the domain\'s MX hosts even when relay is set; "host:port" sends through that '
        "server (relay_tls, no AUTH: the relay password goes to relay only). Empty: as relay says.",
        _route,
    )


@dataclass(frozen=True)
class DeliveryConfig(Table):
    """Remote delivery."""

    DOC = (
        "Mail for other servers: queued durably under <data_dir>/queue, then delivered to the "
        "recipient domain's MX hosts (or through a relay), retried on temporary failures, bounced on "
        "permanent ones. Durations are written like 30s, 5m, 1h or 5d."
    )

    mx_port: int = setting(25, "TCP port used to reach remote MX hosts.", _port, restart=True)
    tls: str = setting(
        "may",
        "Default TLS policy towards remote servers: none (never STARTTLS), may (STARTTLS when offered), "
        "encrypt (STARTTLS required, certificate not checked), verify (STARTTLS required, certificate "
        "valid for the MX host name).",
        _policy, restart=True,
    )
    tls_ca_file: str = setting("", "CA bundle for verify; empty uses the system's trust store.", restart=True)
    dane: bool = setting(
        True,
        "DANE (RFC 7672) for MX delivery: a host whose DNSSEC-validated TLSA records say so is reached "
        "only over STARTTLS with a certificate those records match, before MTA-STS and tls (but not with tls "
        "none, and a [delivery.domains] rule's tls goes first). Validation is the [dns] resolver's: it must be "
        "a validating one on a trusted path, such as a local unbound.", restart=True,
    )
    relay: str = setting(
        "", 'Smarthost "host:port" every remote message goes through (":465" for implicit TLS); '
        "empty delivers to each domain's MX hosts.",
        _relay, restart=True,
    )
    relay_tls: str = setting(
        "verify",
        "TLS policy towards the relay (none, may, encrypt, verify; see tls). AUTH is only ever sent over TLS; "
        "port 465 is TLS from the start whatever this says.",
        _policy, restart=True,
    )
    relay_username: str = setting("", "User name for AUTH at the relay; empty sends without AUTH.", restart=True)
    relay_password_file: str = setting("", "File holding the relay password (its first line).", restart=True)
    retry: tuple[str, ...] = setting(
        ("5m", "10m", "20m", "40m", "1h"),
        "Waits between attempts after a temporary failure; the last one repeats until the lifetime ends.",
        _durations,
    )
    max_connections: int = setting(
        20, "Messages being sent, and outbound SMTP connections open, at once, to all destinations.", at_least(1),
        restart=True,
    )
    max_connections_per_domain: int = setting(
        3, "Outbound connections open at once to one recipient domain (or to the relay).", at_least(1), restart=True
    )
    lifetime: str = setting("5d", "How long a message is retried before it is bounced as undeliverable.", duration)
    delay_warning: str = setting(
        "4h",
        "After how long a message still being retried sends its sender one delay warning (for the recipients "
        'whose NOTIFY allows it); "" sends none.',
        _optional_duration,
    )
    mta_sts: bool = setting(
        True,
        "Honour the MTA-STS policies (RFC 8461) of recipient domains when delivering by MX: a domain in "
        "enforce mode gets mail only from its listed MX hosts over verified TLS (else the mail waits), testing "
        "mode is logged. Policies are cached in <data_dir>/mta-sts/.", restart=True,
    )
    mta_sts_port: int = setting(
        443, "TCP port of the policy hosts (https://mta-sts.<domain>/); only tests change it.", _port, restart=True,
    )
    domains: Mapping[str, DomainRule] = mapping(
        DomainRule,
        "Exceptions for some recipient domains (the exact domain, not its subdomains), one line each: "
        "\"domain\" = { tls = \"...\", route = \"...\" }, either key or both.",
        _domain, restart=True,
    )

    @property
    def retry_seconds(self) -> tuple[int, ...]:
        """The waits of :attr:`retry`, in seconds."""
        return tuple(seconds(value) for value in self.retry)

    @property
    def lifetime_seconds(self) -> int:
        """:attr:`lifetime`, in seconds."""
        return seconds(self.lifetime)

    @property
    def delay_warning_seconds(self) -> int:
        """:attr:`delay_warning`, in seconds; 0 when it is off."""
        return seconds(self.delay_warning) if self.delay_warning else 0

"""The top level of the file: who the server is, where its data lives, its tables.

:class:`Config` is the whole configuration, one frozen object handed to
every part of the server.  The paths under ``data_dir`` are derived here,
not configured, so the server, the CLI and an admin reading the docs agree
on where each file is.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field

from mailsrv.config.auth import AuthConfig
from mailsrv.config.delivery import DeliveryConfig
from mailsrv.config.dns import DNSConfig
from mailsrv.config.http import HTTPConfig
from mailsrv.config.imap import IMAPConfig
from mailsrv.config.limits import LimitsConfig
from mailsrv.config.listen import ListenConfig
from mailsrv.config.log import LogConfig
from mailsrv.config.mtastspolicy import MTASTSPolicyConfig
from mailsrv.config.policy import PolicyConfig
from mailsrv.config.quota import QuotaConfig
from mailsrv.config.schema import Invalid, Table, at_least, domain_names, every, setting, table
from mailsrv.config.spam import SpamConfig
from mailsrv.config.submission import SubmissionConfig
from mailsrv.config.threads import ThreadsConfig
from mailsrv.config.tls import TLSConfig
from mailsrv.config.warmup import WarmupConfig

#: ``Config.source`` when no file was read.
DEFAULT_SOURCE = "<defaults>"


def _hostname(name: str) -> str:
    if not name:
        raise Invalid("must not be empty")
    return name


def _domains(names: tuple[str, ...]) -> tuple[str, ...]:
    """The local domains in canonical form (:func:`mailsrv.address.canonical_domain`)."""
    if not names:
        raise Invalid("at least one local domain is needed")
    return tuple(dict.fromkeys(domain_names(names)))


@dataclass(frozen=True)
class Config(Table):
    """The whole server configuration; ``domains`` are canonical when read by the loader."""

    hostname: str = setting(
        "localhost",
        "Name used in the SMTP greeting and EHLO reply, Received headers, and the generated self-signed "
        "certificate. Use the name your MX record points at.",
        _hostname, restart=True,
    )
    data_dir: str = setting(
        "mailsrv-data",
        "Holds mail/ (the Maildirs), spool/, users, aliases, senders and tls/ (generated certificate).", restart=True,
    )
    domains: tuple[str, ...] = setting(
        ("example.test",),
        "Domains whose mail is delivered here (IDNA names may be written in Unicode). Mail for any other "
        "domain is refused on port 25 (no open relay); logged-in users send to any domain through the queue.",
        _domains, restart=True,
    )
    shutdown_grace: int = setting(
        10,
        "Seconds a stopping server (SIGTERM) lets commands in progress finish, such as a message being "
        "sent; idle sessions are told goodbye at once. Then every connection is closed.",
        at_least(0), restart=True,
    )
    public_addresses: tuple[str, ...] = setting(
        (),
        "The addresses the internet reaches this server at, for the A/AAAA and PTR records `mailsrv dns records` "
        "prints; [] uses the source address of the host's default routes (wrong behind NAT).",
        every(ipaddress.ip_address, "an IPv4 or IPv6 address"),
    )
    listen: ListenConfig = table(ListenConfig, restart=True)
    tls: TLSConfig = table(TLSConfig)
    limits: LimitsConfig = table(LimitsConfig)
    auth: AuthConfig = table(AuthConfig)
    submission: SubmissionConfig = table(SubmissionConfig)
    policy: PolicyConfig = table(PolicyConfig)
    spam: SpamConfig = table(SpamConfig)
    imap: IMAPConfig = table(IMAPConfig)
    quota: QuotaConfig = table(QuotaConfig)
    threads: ThreadsConfig = table(ThreadsConfig, restart=True)
    dns: DNSConfig = table(DNSConfig, restart=True)
    delivery: DeliveryConfig = table(DeliveryConfig)
    warmup: WarmupConfig = table(WarmupConfig, restart=True)
    mta_sts_policy: MTASTSPolicyConfig = table(MTASTSPolicyConfig, restart=True)
    http: HTTPConfig = table(HTTPConfig, restart=True)
    log: LogConfig = table(LogConfig, restart=True)
    #: The file the configuration was read from, for messages.
    source: str = field(default=DEFAULT_SOURCE)

    def check(self) -> None:
        """ACME's HTTP-01 challenge is answered on an ``http`` listener, so one must be there."""
        if self.tls.acme and not self.listen.http:
            raise Invalid("acme = true answers the CA's HTTP-01 challenge on [listen] http: list one", key="tls.acme")

    @property
    def acme_names(self) -> tuple[str, ...]:
        """The names of the ACME certificate: ``tls.acme_names``, else the hostname and each domain's
        ``autoconfig.``, ``autodiscover.`` and ``mta-sts.`` names (the CNAMEs ``mailsrv dns records``
        prints), at which clients and MTA-STS senders fetch from the https listener."""
        if self.tls.acme_names:
            return tuple(dict.fromkeys(self.tls.acme_names))
        served = (f"{prefix}.{domain}" for domain in self.domains
                  for prefix in ("autoconfig", "autodiscover", "mta-sts"))
        return tuple(dict.fromkeys([self.hostname, *served]))

    @property
    def acme_dir(self) -> str:
        """The ACME account key and certificate (:mod:`mailsrv.acme.files`): ``<data_dir>/acme``."""
        return os.path.join(self.data_dir, "acme")

    @property
    def mail_dir(self) -> str:
        """Root of the Maildir tree: ``<data_dir>/mail``."""
        return os.path.join(self.data_dir, "mail")

    @property
    def spool_dir(self) -> str:
        """Message bodies being received, past ``limits.spool_threshold``: ``<data_dir>/spool``."""
        return os.path.join(self.data_dir, "spool")

    @property
    def queue_dir(self) -> str:
        """Messages waiting for remote delivery (:mod:`mailsrv.delivery.queuedir`): ``<data_dir>/queue``."""
        return os.path.join(self.data_dir, "queue")

    @property
    def warmup_file(self) -> str:
        """The warm-up counters (:mod:`mailsrv.delivery.warmup`): ``<data_dir>/warmup.json``."""
        return os.path.join(self.data_dir, "warmup.json")

    @property
    def mta_sts_dir(self) -> str:
        """The cached MTA-STS policies (:mod:`mailsrv.delivery.mtasts.cache`): ``<data_dir>/mta-sts``."""
        return os.path.join(self.data_dir, "mta-sts")

    @property
    def srs_secret_file(self) -> str:
        """The secret of SRS addresses (:mod:`mailsrv.delivery.srs`), made at the first start."""
        return os.path.join(self.data_dir, "srs-secret")

    @property
    def users_file(self) -> str:
        """The passwd-file style user database."""
        return os.path.join(self.data_dir, "users")

    @property
    def aliases_file(self) -> str:
        """The alias map."""
        return os.path.join(self.data_dir, "aliases")

    @property
    def senders_file(self) -> str:
        """The addresses users may send as besides their own and their aliases."""
        return os.path.join(self.data_dir, "senders")

"""The shared objects every protocol server is built from.

One :class:`ServerContext` is made by :mod:`mailsrv.tap` and handed to each
listener's factory, so a protocol module never constructs the store, the
directory or the portal itself, and tests build one from fakes
(``tests/support.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mailsrv.net.audit import Audit
from mailsrv.net.limits import ConnectionLimits
from mailsrv.workers import Workers

if TYPE_CHECKING:
    from twisted.cred.portal import Portal

    from mailsrv.accounts import Directory
    from mailsrv.config import Config
    from mailsrv.delivery.local import LocalDelivery
    from mailsrv.delivery.queue import IQueue
    from mailsrv.delivery.router import Router
    from mailsrv.policy import Policy
    from mailsrv.store import Store


@dataclass
class ServerContext:
    """Everything a listener needs: configuration, store, users, TLS, policy, routing."""

    config: "Config"
    store: "Store"
    directory: "Directory"
    portal: "Portal"
    #: A ``twisted.internet.ssl.CertificateOptions`` (has ``getContext()``),
    #: used both for STARTTLS/STLS and for implicit-TLS listeners.
    tls: Any
    router: "Router"
    policy: "Policy"
    delivery: "LocalDelivery"
    workers: Workers = field(default_factory=Workers.inline)
    audit: Audit = field(default_factory=Audit)
    connections: ConnectionLimits = field(default_factory=lambda: ConnectionLimits(0, 0))
    #: Where mail for remote recipients goes; ``None`` until the queue exists.
    queue: "IQueue | None" = None

    @classmethod
    def assemble(
        cls, config: "Config", *, store: "Store", directory: "Directory", portal: "Portal", tls: Any,
        workers: Workers, resolver: Any = None,
    ) -> "ServerContext":
        """The context around the given parts: routing, policy, delivery, audit and limits are derived.

        ``tap.py`` passes the real parts, tests their fakes; both get the same wiring.
        """
        from mailsrv.delivery.local import LocalDelivery
        from mailsrv.delivery.router import Router
        from mailsrv.policy import Policy
        from mailsrv.policy.submission import AuthRequired

        audit = Audit()
        limits = config.limits
        return cls(
            config=config, store=store, directory=directory, portal=portal, tls=tls,
            router=Router(directory),
            policy=Policy([AuthRequired()], resolver=resolver),
            delivery=LocalDelivery(store, audit),
            workers=workers,
            audit=audit,
            connections=ConnectionLimits(limits.max_connections, limits.max_connections_per_ip),
        )

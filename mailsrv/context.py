"""The shared objects every protocol server is built from.

One :class:`ServerContext` is made by :mod:`mailsrv.tap`
(:func:`~mailsrv.tap.assemble`) and handed to each listener's factory, so a
protocol module never constructs the store, the directory or the portal
itself, and tests build one from fakes with the same ``assemble``
(``tests/support.py``).  This module imports nothing of the server: every
package may name the context without depending on how it is wired.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.cred.portal import Portal

    from mailsrv.accounts import Directory
    from mailsrv.acme.challenge import ChallengeTokens
    from mailsrv.config import Config
    from mailsrv.config.live import LiveConfig
    from mailsrv.dkim.keys import KeyRing
    from mailsrv.delivery.local import LocalDelivery
    from mailsrv.delivery.queue import IQueue
    from mailsrv.delivery.router import Router
    from mailsrv.delivery.srs import Rewriter
    from mailsrv.dkim.arc import Sealer
    from mailsrv.dkim.signer import Signer
    from mailsrv.http.metrics import Metrics
    from mailsrv.net.audit import Audit
    from mailsrv.net.limits import ConnectionLimits
    from mailsrv.net.shutdown import OpenSessions
    from mailsrv.net.throttle import LoginThrottle
    from mailsrv.policy import Policy
    from mailsrv.spam.learn import Learner
    from mailsrv.store import Store
    from mailsrv.workers import Workers


@dataclass
class ServerContext:
    """Everything a listener needs: configuration, store, users, TLS, policy, routing."""

    config: "Config"
    store: "Store"
    directory: "Directory"
    portal: "Portal"
    #: A :class:`mailsrv.tls.ServerTLS` (has ``getContext()``), used both
    #: for STARTTLS/STLS and for implicit-TLS listeners.
    tls: Any
    router: "Router"
    policy: "Policy"
    delivery: "LocalDelivery"
    workers: "Workers"
    audit: "Audit"
    connections: "ConnectionLimits"
    #: Every session not ended yet, which a stopping server closes.
    sessions: "OpenSessions"
    #: Failed logins per address and account, shared by SMTP AUTH, POP3 and IMAP.
    throttle: "LoginThrottle"
    #: The configuration in force, which a SIGHUP replaces (:mod:`mailsrv.config.live`); it sets :attr:`config`.
    live: "LiveConfig"
    #: The DKIM keys the signer and the sealer read, whose cache a SIGHUP drops.
    keyring: "KeyRing"
    #: Signs what authenticated users submit (:mod:`mailsrv.dkim`); ``None`` signs nothing.
    signer: "Signer | None" = None
    #: Where mail for remote recipients goes; ``None`` until the queue exists.
    queue: "IQueue | None" = None
    #: Rewrites the sender of forwarded mail (:mod:`mailsrv.delivery.srs`); ``None``: no forwarding.
    srs: "Rewriter | None" = None
    #: ARC-seals the forwarded mail the port 25 checks judged (:mod:`mailsrv.dkim.arc`); ``None`` seals nothing.
    sealer: "Sealer | None" = None
    #: The server's Prometheus metrics (:mod:`mailsrv.http.metrics`), which the HTTP listeners serve.
    metrics: "Metrics | None" = None
    #: Teaches rspamd what users move into and out of Junk (:mod:`mailsrv.spam.learn`); ``None``: nothing.
    spam_learner: "Learner | None" = None
    #: The ACME HTTP-01 tokens the ``http`` and ``https`` listeners serve; ``None`` without ``[tls] acme``.
    acme_tokens: "ChallengeTokens | None" = None

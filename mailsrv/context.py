"""The shared objects every protocol factory is built from.

One :class:`ServerContext` is made by :mod:`mailsrv.tap` and handed to each
listener's factory, so a protocol module never constructs the store, the
directory or the portal itself and tests can build one from fakes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from twisted.cred.portal import Portal

    from mailsrv.accounts import Directory
    from mailsrv.config import Config
    from mailsrv.store import Store


@dataclass
class ServerContext:
    """Everything a listener needs: configuration, store, users, TLS."""

    config: "Config"
    store: "Store"
    directory: "Directory"
    portal: "Portal"
    #: A ``twisted.internet.ssl.CertificateOptions`` (has ``getContext()``),
    #: used both for STARTTLS/STLS and for implicit-TLS listeners.
    tls: Any

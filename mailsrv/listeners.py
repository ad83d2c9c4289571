"""The kinds of listener, and turning configured endpoints into listening services.

A listener kind says which protocol a port speaks and how: implicit TLS
from the first byte (465, 995, 993) or STARTTLS/STLS, and whether SMTP
logins are taken (submission) or not (port 25).  Code asks the
:class:`Kind` instead of comparing kind names.

The services here bind synchronously in ``privilegedStartService`` (as root,
before twistd drops to ``--uid``), so a port in use stops start-up with one
line naming the listener.
"""

from __future__ import annotations

import enum
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort, IStreamServerEndpoint
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.failure import Failure

log = Logger()


class Kind(enum.Enum):
    """A listener kind: ``(protocol, implicit TLS, takes SMTP submission logins)``."""

    SMTP = ("smtp", False, False)
    SUBMISSION = ("smtp", False, True)
    SUBMISSIONS = ("smtp", True, True)
    POP3 = ("pop3", False, False)
    POP3S = ("pop3", True, False)
    IMAP = ("imap", False, False)
    IMAPS = ("imap", True, False)
    HTTP = ("http", False, False)
    HTTPS = ("http", True, False)
    #: The fourth value only keeps it apart from ``HTTP``: it serves ``/metrics`` alone.
    METRICS = ("http", False, False, "metrics only")

    def __init__(self, protocol: str, implicit_tls: bool, submission: bool, _distinct: str = "") -> None:
        self.protocol = protocol
        self.implicit_tls = implicit_tls
        self.submission = submission

    @property
    def label(self) -> str:
        """The name used in the config file (``[listen] submissions = ...``) and logs."""
        return self.name.lower()

    @property
    def offers_starttls(self) -> bool:
        """STARTTLS (SMTP, IMAP) or STLS (POP3) is offered before TLS; HTTP has no upgrade to TLS."""
        return not self.implicit_tls and self.protocol != "http"

    @classmethod
    def named(cls, label: str) -> "Kind":
        """The kind called *label* in the config file; ``KeyError`` if none."""
        return cls[label.upper()]


def endpoint_port(endpoint: str) -> int | None:
    """The port of a ``tcp:`` endpoint string (``haproxy:`` prefix allowed), None if it names none."""
    parts = endpoint.split(":")
    if parts and parts[0] == "haproxy":
        parts = parts[1:]
    if len(parts) < 2 or parts[0] not in ("tcp", "tcp6"):
        return None
    for part in parts[1:]:
        value = part.partition("=")[2] if part.startswith("port=") else part
        if value.isdigit():
            return int(value)
    return None


def with_backlog(description: str, backlog: int) -> str:
    """Add a large accept backlog to TCP endpoints that do not set one.

    Twisted's default of 50 overflows under a burst of SMTP connections and
    clients then wait for SYN retransmits (docs/twisted-notes.rst, "Listen
    backlog").
    """
    if "backlog=" in description:
        return description
    plain = description.removeprefix("haproxy:")
    if plain.startswith(("tcp:", "tcp6:")) or plain.split(":", 1)[0].isdigit():
        return f"{description}:backlog={backlog}"
    return description


class Listener(Service):
    """Serves one factory on one endpoint; a bind failure is one line naming it.

    A port already in use is the commonest start-up failure; the admin needs
    to see which listener and which address, not a traceback.  Binding
    happens in :meth:`privilegedStartService` (as root, before twistd drops
    to ``--uid``); stream endpoints bind synchronously, so the failure is
    raised right there and twistd stops.
    """

    def __init__(self, endpoint: IStreamServerEndpoint, factory: ServerFactory) -> None:
        self.endpoint = endpoint
        self.factory = factory
        self._port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        """Bind now; raise ``SystemExit`` with one line if that fails."""
        super().privilegedStartService()
        outcome: list[object] = []
        self.endpoint.listen(self.factory).addBoth(outcome.append)
        if not outcome:
            raise SystemExit(f"mailsrv: cannot listen for {self.name}: the endpoint did not bind at once")
        if isinstance(outcome[0], Failure):
            error = outcome[0].value
            if not isinstance(error, CannotListenError):
                outcome[0].raiseException()
            reason = getattr(error.socketError, "strerror", None) or str(error.socketError)
            raise SystemExit(f"mailsrv: cannot listen for {self.name}: {reason}")
        self._port = outcome[0]  # type: ignore[assignment]
        log.info("mailsrv {listener} listening", listener=self.name)

    def stopService(self) -> "Deferred[None] | None":
        """Stop accepting connections."""
        super().stopService()
        port, self._port = self._port, None
        return port.stopListening() if port is not None else None


def listener(
    description: str, backlog: int, factory: ServerFactory, kind: Kind, tls: object, reactor: object
) -> Listener:
    """The service serving *factory* on the configured *description*.

    TCP endpoints get the accept *backlog* (:func:`with_backlog`).
    Implicit-TLS kinds wrap the plain endpoint with the server certificate,
    so the config names ``tcp:993`` and not the certificate twice; behind
    ``haproxy:`` the PROXY header comes first and TLS after it, as HAProxy's
    ``send-proxy`` sends them.
    """
    if kind.implicit_tls:
        factory = TLSMemoryBIOFactory(tls, False, factory)
    service = Listener(serverFromString(reactor, with_backlog(description, backlog)), factory)
    service.setName(f"{kind.label} {description}")
    return service

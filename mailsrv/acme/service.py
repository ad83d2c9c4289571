"""When the server checks its ACME certificate, orders a new one, and swaps it in.

A check runs at start and every ``[tls] acme_check_interval`` seconds (12 h
by default): in a thread, it takes the order lock, orders when
:func:`~mailsrv.acme.renewal.renewal_reason` says so, and loads the stored
certificate whenever the file differs from the one served, also when
another process of the same data dir wrote it.  On the reactor, the new
options go to :meth:`mailsrv.tls.ServerTLS.replace`: every TLS listener
serves them to the connections that start TLS from then on, open sessions
keep theirs.  A failed order is one log line with the CA's error and is
tried again after 1, 2, 4 ... minutes (at most the check interval); the
server keeps serving the certificate it has.  While another process holds
the lock the check comes back after a minute, to pick its file up.

The thread is a daemon thread of its own per check (:class:`DaemonExecutor`),
not one of the server's pools: an order may wait minutes on the CA, and a
stopping server must neither wait for it nor block its pools' shutdown.
The files it writes are replaced by rename, so one killed at exit leaves
the old certificate intact.
"""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from cryptography import x509
from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorFromThreads, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv import tls
from mailsrv.acme.challenge import ChallengeTokens, HandOver
from mailsrv.acme.files import AcmeFiles
from mailsrv.acme.order import CA, Stopped, describe, obtain
from mailsrv.acme.renewal import FIRST_RETRY, renewal_reason, retry_delay
from mailsrv.config import Config, ConfigError
from mailsrv.workers import Executor, hand_back

log = Logger()

T = TypeVar("T")


class DaemonExecutor:
    """Runs each job in a new daemon thread; its result comes back on the reactor thread."""

    pending = 0

    def __init__(self, reactor: IReactorFromThreads) -> None:
        self.reactor = reactor

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> "defer.Deferred[T]":
        """Start *fn* in a thread named ``mailsrv-acme``."""
        d: defer.Deferred[T] = defer.Deferred()
        threading.Thread(target=hand_back, args=(self.reactor, d, fn, args, kwargs), name="mailsrv-acme",
                         daemon=True).start()
        return d


@dataclass(frozen=True)
class Outcome:
    """What one check did, for the reactor side to log and apply."""

    #: Why a certificate was ordered (and issued); ``None``: no order.
    ordered: str | None = None
    #: Another process holds the order lock.
    busy: bool = False
    #: The stored certificate, loaded, when it is not the one served yet.
    options: Any = None
    #: ``valid until ...`` of the loaded certificate, for the log.
    validity: str = ""


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class Certificates:
    """The thread side: one check at a time (the service never runs two at once)."""

    def __init__(self, config: Config, tokens: HandOver, stop: threading.Event,
                 now: Callable[[], datetime.datetime] = _utcnow,
                 order: Callable[..., tuple[bytes, bytes]] = obtain) -> None:
        self.config = config
        self.files = AcmeFiles(config.acme_dir)
        self.tokens = tokens
        self.stop = stop
        self.now = now
        self.order = order
        self.ca = CA(config.tls.acme_directory, config.tls.acme_ca_file, config.tls.acme_email)
        #: The certificate file's bytes as last loaded.
        self.served: bytes | None = None

    def check(self) -> Outcome:
        """Order if the stored certificate will not do and no other process is ordering; load a new file."""
        ordered = None
        busy = False
        try:
            with self.files.ordering():
                reason = renewal_reason(self.files.certificate(), self.config.acme_names, self.now(),
                                        datetime.timedelta(days=self.config.tls.acme_renew_days))
                if reason is not None:
                    key, chain = self.order(self.ca, self.files.account_key(), self.config.acme_names,
                                            self.tokens, self.stop)
                    self.files.store_certificate(key, chain)
                    ordered = reason
        except BlockingIOError:
            busy = True
        stored = self.files.certificate()
        if stored is None or stored == self.served:
            return Outcome(ordered, busy)
        options = tls.server_options(self.config)
        self.served = stored
        return Outcome(ordered, busy, options, _validity(options))


def _validity(options: Any) -> str:
    cert: x509.Certificate = options.certificate.to_cryptography()
    return f"valid until {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"


class AcmeService(Service):
    """Checks on a timer (see the module docstring) and swaps new certificates into *server_tls*."""

    name = "acme"

    def __init__(self, config: Config, server_tls: tls.ServerTLS, tokens: ChallengeTokens, reactor: Any,
                 executor: Executor | None = None, certificates: Certificates | None = None) -> None:
        self.config = config
        self.server_tls = server_tls
        self.clock: IReactorTime = reactor
        self.executor = executor or DaemonExecutor(reactor)
        self.stopping = threading.Event()
        self.certificates = certificates or Certificates(config, HandOver(tokens, reactor), self.stopping)
        self.failures = 0
        self._next: IDelayedCall | None = None

    def configure(self, config: Config) -> None:
        """A SIGHUP's configuration: its TLS settings (``min_version``) go with the next certificate
        loaded, so a swap does not bring back the old ones; the ``acme_*`` keys take a restart."""
        self.config = self.certificates.config = config

    def startService(self) -> None:
        """Check at once (the first certificate is ordered while the current one serves)."""
        super().startService()
        self.stopping.clear()
        self._schedule(0)

    def stopService(self) -> None:
        """No further check; an order in progress gives up at its next step."""
        super().stopService()
        self.stopping.set()
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None

    def _schedule(self, delay: float) -> None:
        self._next = self.clock.callLater(delay, self.check)

    def check(self) -> "defer.Deferred[None]":
        """One check in the thread; the next one is scheduled when it is over."""
        self._next = None
        d = self.executor.run(self.certificates.check)
        d.addCallbacks(self._done, self._failed)
        return d

    def _done(self, outcome: Outcome) -> None:
        names = ", ".join(self.config.acme_names)
        if outcome.ordered is not None:
            log.info("ACME: issued a certificate for {names} ({reason})", names=names, reason=outcome.ordered)
        if outcome.options is not None:
            self.server_tls.replace(outcome.options)
            log.info("ACME: every TLS listener now serves the certificate for {names}, {validity}",
                     names=names, validity=outcome.validity)
        self.failures = 0
        if self.running:
            self._schedule(FIRST_RETRY if outcome.busy else self.config.tls.acme_check_interval)

    def _failed(self, failure: Failure) -> None:
        if failure.check(Stopped):
            return
        self.failures += 1
        delay = retry_delay(self.failures, self.config.tls.acme_check_interval)
        error = failure.value
        what = str(error) if isinstance(error, ConfigError) else describe(error)
        log.error("ACME: no certificate from {ca}: {error}; trying again in {delay:.0f} s",
                  ca=self.config.tls.acme_directory, error=what, delay=delay)
        if self.running:
            self._schedule(delay)

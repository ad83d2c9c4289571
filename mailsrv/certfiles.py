"""The certificate files, served again when they change: on SIGHUP, and when a look finds them replaced.

A renewal outside the server (certbot, the host's ACME client, a copy by
hand) writes a new certificate and key at the paths ``[tls] cert`` and
``key`` name.  Every ``[tls] check_interval`` seconds a worker thread takes
the :class:`~mailsrv.store.files.FileStamp` of both files (a file replaced
by rename has a new inode, one rewritten in place a new size or mtime);
when either moved, the pair is loaded the way SIGHUP loads it, with
:func:`mailsrv.tls.server_options`, and handed to
:meth:`mailsrv.tls.ServerTLS.replace`, the path a certificate of
:mod:`mailsrv.acme` takes too: every TLS listener serves it to the
connections that start TLS from then on, open sessions keep theirs.

A pair that does not load (the new certificate is there, its key is not
yet) is an error line, the served certificate stays and the next look
tries again; the line is not repeated while the files stay as they are.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from mailsrv import tls
from mailsrv.config import Config, ConfigError
from mailsrv.config.live import LiveConfig
from mailsrv.store.files import FileStamp
from mailsrv.workers import Executor

log = Logger()

#: The stamps of the cert and key files (``None`` for a missing one).
Stamps = tuple["FileStamp | None", "FileStamp | None"]


def describe(options: Any) -> str:
    """``CN=mail.example.org, valid until 2027-03-01``: enough to see that the new one is served."""
    cert = options.certificate.to_cryptography()
    return f"{cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}"


def _stamps(config: Config) -> Stamps:
    return FileStamp.of(config.tls.cert), FileStamp.of(config.tls.key)


def _read(config: Config) -> tuple[Stamps, Any]:
    """In a thread: the stamps, then the options (a change while reading shows at the next look)."""
    stamps = _stamps(config) if config.tls.cert else (None, None)
    return stamps, tls.server_options(config)


class CertificateFiles(Service):
    """Loads the configured certificate into *server_tls*: :meth:`load` on SIGHUP, :meth:`look` on a timer."""

    name = "certificate-files"

    def __init__(self, live: LiveConfig, server_tls: tls.ServerTLS, disk: Executor, clock: Any) -> None:
        self.live = live
        self.server_tls = server_tls
        self.disk = disk
        self.clock = clock
        #: The stamps of the files served; ``None`` until the first look takes them.
        self.served: Stamps | None = None
        #: The stamps of the files that did not load last, so their error is logged once.
        self.failed: Stamps | None = None
        self._loop: LoopingCall | None = None

    def startService(self) -> None:
        """Look every ``[tls] check_interval`` seconds (none when 0), the first time at once."""
        super().startService()
        interval = self.live.current.tls.check_interval
        if interval:
            self._loop = LoopingCall(lambda: Deferred.fromCoroutine(self.look()))
            self._loop.clock = self.clock
            self._loop.start(interval, now=True)

    def stopService(self) -> None:
        """No further look."""
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None

    async def load(self, config: Config) -> Any:
        """Read the certificate of *config* in a thread and serve it; its options.

        :class:`ConfigError` (the files are missing, unreadable or do not
        match) leaves the served certificate as it is.
        """
        stamps, options = await self.disk.run(_read, config)
        self.server_tls.replace(options)
        self.served = stamps
        self.failed = None
        return options

    async def look(self) -> None:
        """Serve the files again if they changed since they were loaded (see the module docstring)."""
        config = self.live.current
        if not config.tls.cert:
            return  # the self-signed or the ACME certificate: nobody else writes those
        stamps: Stamps | None = None
        try:
            stamps = await self.disk.run(_stamps, config)
            if self.served is None:
                self.served = stamps  # loaded at start, as root
                return
            if stamps == self.served:
                return
            options = await self.load(config)
        except (ConfigError, OSError) as e:
            if stamps != self.failed or stamps is None:
                log.error("TLS: {cert} changed but cannot be served, the current certificate stays "
                          "(tried again every {interval} s): {error}",
                          cert=config.tls.cert, interval=config.tls.check_interval,
                          error=str(e) if isinstance(e, ConfigError) else f"{e.filename}: {e.strerror}")
            self.failed = stamps
        except Exception:
            log.failure("TLS: looking at {cert} failed", cert=config.tls.cert)
        else:
            log.info("TLS: {cert} changed: every TLS listener now serves {what}", cert=config.tls.cert,
                     what=describe(options))

"""What SIGHUP reloads: the log file, users and aliases, the TLS certificate.

Everything else in the configuration (listeners, limits, the data dir)
takes a restart.  The certificate is read again from the files the
configuration names (a renewed Let's Encrypt certificate keeps its paths)
and serves every connection that starts TLS from then on, on every
listener; open sessions keep theirs.  A certificate or key that cannot be
used is an error line, and the current one stays.  One line says what was
reloaded.
"""

from __future__ import annotations

from twisted.logger import Logger

from mailsrv import tls
from mailsrv.accounts import Directory
from mailsrv.config import Config, ConfigError
from mailsrv.logfile import LogFile
from mailsrv.workers import Executor

log = Logger()


class Reloader:
    """Reloads the parts of a running server that can change without a restart."""

    def __init__(
        self, config: Config, directory: Directory, server_tls: tls.ServerTLS, disk: Executor,
        log_file: LogFile | None,
    ) -> None:
        self.config = config
        self.directory = directory
        self.server_tls = server_tls
        self.disk = disk
        self.log_file = log_file

    async def reload(self) -> None:
        """Reload all of it; the log file first, so the lines about the rest land in the new one."""
        done = []
        if self.log_file is not None:
            try:
                self.log_file.reopen()
            except OSError as e:
                log.error("SIGHUP: log file {path} not reopened: {error}", path=self.log_file.path, error=e.strerror)
            else:
                done.append(f"log file {self.log_file.path}")
        users, aliases = self.directory.reload()
        done.append(f"{users} users, {aliases} aliases")
        try:
            options = await self.disk.run(tls.server_options, self.config)
        except ConfigError as e:
            log.error("SIGHUP: TLS certificate not reloaded, the current one stays: {error}", error=str(e))
        else:
            self.server_tls.replace(options)
            done.append(f"TLS certificate {_describe(options)}")
        log.info("SIGHUP: reloaded {what}", what="; ".join(done))


def _describe(options: object) -> str:
    """``CN=mail.example.org, valid until 2027-03-01``: enough to see that the new one is served."""
    cert = options.certificate.to_cryptography()  # type: ignore[attr-defined]
    return f"{cert.subject.rfc4514_string()}, valid until {cert.not_valid_after_utc:%Y-%m-%d}"

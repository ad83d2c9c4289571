"""What SIGHUP reloads: the log file, the configuration, users and aliases, DKIM keys, the TLS certificate.

The configuration file is read again (the same file and ``--data-dir`` as
at start, in a worker thread) and checked as at start.  A file that does
not load is one error line naming the file and the key, and nothing else
is reloaded: the server goes on exactly as it was, and the admin fixes the
file and sends SIGHUP again.  A file that loads replaces the running
configuration (:class:`~mailsrv.config.live.LiveConfig`) for what starts
after the reload: connections, transactions, logins; open sessions go on.
A changed key that takes a restart (:mod:`mailsrv.config.changes`) keeps
its running value, with one line saying so.

Then the users, aliases and senders files are re-read, the DKIM keys are
read again at their next use (a key file rewritten in place does not show
in its directory's stamp), and the certificate is read again from the
files the configuration names (:mod:`mailsrv.certfiles`; a renewed
certificate keeps its paths) and serves every connection that starts TLS
from then on; a certificate or key that cannot be used is an error line,
and the current one stays.  One line says what was reloaded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from twisted.logger import Logger

from mailsrv.accounts import Directory
from mailsrv.certfiles import CertificateFiles, describe
from mailsrv.config import Config, ConfigError, load
from mailsrv.config.changes import Change, applicable, changes
from mailsrv.config.live import LiveConfig
from mailsrv.config.server import DEFAULT_SOURCE
from mailsrv.dkim.keys import KeyRing
from mailsrv.logfile import LogFile
from mailsrv.workers import Executor

log = Logger()


@dataclass(frozen=True)
class Source:
    """Where the running configuration came from, to read it again the same way."""

    #: The file; ``None`` for the embedded defaults.
    path: str | None
    #: ``--data-dir``, which overrides the file's ``data_dir``.
    data_dir: str | None = None

    @classmethod
    def of(cls, config: Config, data_dir: str | None = None) -> "Source":
        """The source of *config*, loaded with *data_dir* as the override."""
        path = None if config.source == DEFAULT_SOURCE else os.path.abspath(config.source)  # twistd may chdir
        return cls(path, data_dir)

    def read(self) -> Config:
        """The configuration as the file says now (blocks: run it in a thread); :class:`ConfigError`."""
        return load(self.path, data_dir=self.data_dir)


class Reloader:
    """Reloads the parts of a running server that can change without a restart."""

    def __init__(
        self, live: LiveConfig, source: Source, directory: Directory, keyring: KeyRing,
        certificates: CertificateFiles, disk: Executor, log_file: LogFile | None,
    ) -> None:
        self.live = live
        self.source = source
        self.directory = directory
        self.keyring = keyring
        self.certificates = certificates
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
        try:
            read = await self.disk.run(self.source.read)
        except ConfigError as e:
            log.error("SIGHUP: configuration refused, the running one stays: {error}", error=str(e))
            return
        done.append(self._configure(read))
        users, aliases = self.directory.reload()
        done.append(f"{users} users, {aliases} aliases")
        self.keyring.forget()
        done.append("DKIM keys")
        try:
            options = await self.certificates.load(self.live.current)
        except ConfigError as e:
            log.error("SIGHUP: TLS certificate not reloaded, the current one stays: {error}", error=str(e))
        else:
            done.append(f"TLS certificate {describe(options)}")
        log.info("SIGHUP: reloaded {what}", what="; ".join(done))

    def _configure(self, read: Config) -> str:
        """Run with what *read* changes that needs no restart; what it did, for the summary line."""
        running = self.live.current
        found = changes(running, read)
        for change in found:
            if change.restart:
                log.warn("SIGHUP: {key} in {source} changed: takes effect after a restart",
                         key=change.key, source=read.source)
        if any(not change.restart for change in found):
            self.live.replace(applicable(running, read))
        return f"configuration {read.source} {_summary(found)}"


def _summary(found: list[Change]) -> str:
    """``unchanged``, or ``(changed: a, b; after a restart: c)``."""
    applied = [change.key for change in found if not change.restart]
    waiting = [change.key for change in found if change.restart]
    parts = [f"{label}: {', '.join(keys)}" for label, keys in (("changed", applied), ("after a restart", waiting))
             if keys]
    return f"({'; '.join(parts)})" if parts else "unchanged"

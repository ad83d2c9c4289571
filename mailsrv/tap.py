"""``twistd mailsrv``: command-line options and the service tree.

Configuration is read and checked in :meth:`Options.postOptions`, before
twistd daemonises or binds anything, so a mistake ends start-up with one line
naming the file and the key. Listeners are ``strports`` services: twistd binds
them in ``privilegedStartService`` (as root, for ports 25/110/143) and only
then drops to ``--uid/--gid``; the store touches no file before that.
"""

from __future__ import annotations

import os
import sys

from twisted.application import service
from twisted.internet import reactor
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import imap4, pop3
from twisted.python import usage

from mailsrv import __version__, config as configuration, tls
from mailsrv.accounts import Directory, make_portal
from mailsrv.context import ServerContext
from mailsrv.listeners import Kind, listener
from mailsrv.store import Store
from mailsrv.workers import Executor, PoolExecutor

log = Logger()

#: Threads for the store's fsyncs, directory scans and index updates.
DISK_THREADS = 32


class Options(usage.Options):
    """Options of ``twistd mailsrv``; everything else lives in the TOML file."""

    synopsis = "[--config FILE] [--data-dir DIR]"
    longdesc = "Serve SMTP, submission, POP3 and IMAP over one Maildir store."
    optParameters = [
        ["config", "c", None, "TOML configuration file (default: embedded defaults)"],
        ["data-dir", "d", None, "Override data_dir from the configuration"],
    ]

    def opt_version(self) -> None:
        """Print the mailsrv version and exit."""
        sys.stdout.write(f"mailsrv {__version__}\n")
        sys.exit(0)

    def postOptions(self) -> None:
        try:
            self["parsed"] = configuration.load(self["config"], data_dir=self["data-dir"])
            prepare_data_dir(self["parsed"], *self._runtime_ids())
            self["tls"] = tls.server_options(self["parsed"])
        except configuration.ConfigError as e:
            raise SystemExit(f"mailsrv: {e}") from None

    def _runtime_ids(self) -> tuple[int | None, int | None]:
        parent = self.parent or {}
        return parent.get("uid"), parent.get("gid")


def prepare_data_dir(config: configuration.Config, uid: int | None, gid: int | None) -> None:
    """Create the data dir; when root starts us for another uid, hand it over.

    twistd drops privileges after binding, and the server must then still be
    able to create Maildirs and read the user file.
    """
    for path in (config.data_dir, config.mail_dir):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as e:
            raise configuration.ConfigError(f"{config.source}: data_dir: cannot create {path}: {e.strerror}") from None
    if os.getuid() == 0 and uid is not None:
        for path in (config.data_dir, config.mail_dir, config.users_file, config.aliases_file):
            if os.path.exists(path):
                os.chown(path, uid, gid if gid is not None else -1)


def _protocol_factory(ctx: ServerContext, kind: Kind) -> ServerFactory:
    if kind.protocol == "smtp":
        from mailsrv.smtp.server import make_factory
    elif kind.protocol == "pop3":
        from mailsrv.pop3 import make_factory
    else:
        from mailsrv.imap.server import make_factory
    return make_factory(ctx, kind.label)


def build_context(config: configuration.Config, tls_options: object, disk: Executor) -> ServerContext:
    """The shared objects for every listener, with the realm's avatar makers."""
    from mailsrv.imap.server import account_factory
    from mailsrv.pop3 import mailbox_factory
    from mailsrv.smtp.auth import ISubmitter, Submitter

    directory = Directory(config)
    store = Store(config.mail_dir, disk)
    ctx = ServerContext(config=config, store=store, directory=directory, portal=None, tls=tls_options)
    ctx.portal = make_portal(
        config,
        directory,
        {pop3.IMailbox: mailbox_factory(ctx), imap4.IAccount: account_factory(ctx), ISubmitter: Submitter},
    )
    return ctx


def makeService(options: Options) -> service.IService:
    """The service tree: one listener service per configured endpoint."""
    config: configuration.Config = options["parsed"]
    top = service.MultiService()
    # A child service: its threads start after twistd dropped privileges,
    # and stop (finishing their jobs) at shutdown.
    disk = PoolExecutor(reactor, "disk", DISK_THREADS)
    disk.setServiceParent(top)
    ctx = build_context(config, options["tls"], disk)
    reactor.suggestThreadPoolSize(32)  # password hashing still runs in the global pool
    for kind in Kind:
        for description in getattr(config.listen, kind.label):
            factory = _protocol_factory(ctx, kind)
            listener(description, config.listen.backlog, factory, kind, ctx.tls, reactor).setServiceParent(top)
    return top

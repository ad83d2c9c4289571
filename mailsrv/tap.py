"""``twistd mailsrv``: command-line options and the service tree.

Configuration is read and checked in :meth:`Options.postOptions`, before
twistd daemonises or binds anything, so a mistake ends start-up with one line
naming the file and the key. Listeners bind in ``privilegedStartService``
(as root, for ports 25/110/143) and only then does twistd drop to
``--uid/--gid``; the store touches no file before that.  How the server
starts, reloads and stops is :mod:`mailsrv.service`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

if sys.platform.startswith("linux"):  # epoll: elsewhere Twisted's default reactor serves
    from mailsrv.net.reactor import install_unless_chosen

    install_unless_chosen()  # before anything imports the global reactor

from twisted.application import service  # noqa: E402
from twisted.cred.portal import Portal
from twisted.internet import reactor
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python import usage

from mailsrv import __version__, config as configuration, heap, logfile, tls
from mailsrv.accounts import Directory, make_portal
from mailsrv.acme.challenge import ChallengeTokens
from mailsrv.certfiles import CertificateFiles
from mailsrv.config.live import LiveConfig
from mailsrv.context import ServerContext
from mailsrv.delivery.local import LocalDelivery
from mailsrv.delivery.outbound import build_queue
from mailsrv.delivery.remote import make_remote_delivery
from mailsrv.delivery.router import Router
from mailsrv.delivery.srs import Rewriter, load_secret
from mailsrv.dkim.keys import KeyRing, dkim_dir, hand_over
from mailsrv.dkim.arc import Sealer
from mailsrv.dkim.signer import Signer
from mailsrv.dns import make_resolver
from mailsrv.http.metrics import Metrics
from mailsrv.listeners import Kind, listener
from mailsrv.net.audit import Audit
from mailsrv.net.limits import ConnectionLimits
from mailsrv.net.login import IUser, User
from mailsrv.net.shutdown import OpenSessions
from mailsrv.net.throttle import LoginThrottle
from mailsrv.policy import Policy
from mailsrv.policy.dnsbl import Blocklists
from mailsrv.policy.greylist import Greylist
from mailsrv.policy.loops import HopLimit
from mailsrv.policy.rates import RateLimits
from mailsrv.policy.senderauth.check import SenderAuthentication
from mailsrv.policy.submission import AuthRequired, CompleteHeader, SenderIsLogin
from mailsrv.reload import Reloader, Source
from mailsrv.service import MailServer
from mailsrv.spam.wiring import learner, make_rspamd, spam_checks
from mailsrv.startup import StartGuard
from mailsrv.store import Store
from mailsrv.store.watch import Watcher
from mailsrv.workers import PoolExecutor, Workers

log = Logger()


class Options(usage.Options):
    """Options of ``twistd mailsrv``; everything else lives in the TOML file."""

    synopsis = "[--config FILE] [--data-dir DIR]"
    longdesc = "Serve SMTP, submission, POP3 and IMAP over one Maildir store."
    optParameters = [
        ["config", "c", None, f"TOML configuration file (default: ${configuration.CONFIG_ENV}, else "
         f"{configuration.SYSTEM_CONFIG} if it exists, else the embedded defaults)"],
        ["data-dir", "d", None, "Override data_dir from the configuration"],
    ]

    def opt_version(self) -> None:
        """Print the mailsrv version and exit."""
        sys.stdout.write(f"mailsrv {__version__}\n")
        sys.exit(0)

    def postOptions(self) -> None:
        try:
            self["parsed"] = configuration.load(configuration.locate(self["config"]), data_dir=self["data-dir"])
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
    able to create Maildirs and read the user file and the DKIM keys.
    """
    for path in (config.data_dir, config.mail_dir, config.spool_dir, config.queue_dir):
        try:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError as e:
            raise configuration.ConfigError(f"{config.source}: data_dir: cannot create {path}: {e.strerror}") from None
    _srs(config)  # made now, to be handed over below
    if os.getuid() == 0 and uid is not None:
        for path in (config.data_dir, config.mail_dir, config.spool_dir, config.queue_dir, config.users_file,
                     config.aliases_file, config.senders_file, config.srs_secret_file):
            if os.path.exists(path):
                os.chown(path, uid, gid if gid is not None else -1)
        hand_over(dkim_dir(config.data_dir), uid, gid if gid is not None else -1)


def _srs(config: configuration.Config) -> Rewriter:
    """The SRS rewriter with the data dir's secret, made at the first start."""
    try:
        secret = load_secret(config.srs_secret_file)
    except (OSError, ValueError) as e:
        raise configuration.ConfigError(f"{config.source}: data_dir: SRS secret: {e}") from None
    return Rewriter(secret, config.domains)


def _watcher(config: configuration.Config, workers: Workers) -> Watcher:
    """What tells selected folders of changes other programs make (``[imap] watch``)."""
    imap = config.imap
    return Watcher(reactor, workers.disk, imap.watch, imap.poll_interval_ms / 1000)


def _protocol_factory(ctx: ServerContext, kind: Kind) -> ServerFactory:
    if kind.protocol == "smtp":
        from mailsrv.smtp.server import make_factory
    elif kind.protocol == "pop3":
        from mailsrv.pop3.server import make_factory
    elif kind.protocol == "http":
        from mailsrv.http.site import make_factory
    else:
        from mailsrv.imap.server import make_factory
    return make_factory(ctx, kind)


def assemble(
    config: configuration.Config, *, store: Store, directory: Directory, portal: Portal, tls: Any,
    workers: Workers, resolver: Any = None, srs: Rewriter | None = None, clock: IReactorTime | None = None,
) -> ServerContext:
    """The context around the given parts: routing, policy, delivery, audit and limits are derived.

    *srs* rewrites the senders of forwarded mail; without it nothing is forwarded.  *clock*
    (the reactor unless a test passes a ``task.Clock``) times the rate limits.

    :func:`build_context` passes the real parts, tests their fakes; both get
    the same wiring.  The policy checks are listed here, in the order they run.
    """
    audit = Audit()
    sessions = OpenSessions()
    live = LiveConfig(config)
    limits = config.limits
    keyring = KeyRing(dkim_dir(config.data_dir))
    rates = RateLimits(limits, clock or reactor)
    blocklists = Blocklists(config.policy, audit, clock or reactor)
    greylist = Greylist(limits, clock or reactor, blocklists.welcome)
    rspamd = make_rspamd(config, reactor, clock)
    ctx = ServerContext(
        config=config, store=store, directory=directory, portal=portal, tls=tls,
        router=Router(directory, srs),
        srs=srs,
        policy=Policy([rates, blocklists, greylist, AuthRequired(),
                       SenderIsLogin(directory), CompleteHeader(config.hostname), HopLimit(),
                       *_sender_authentication(live, resolver),
                       *spam_checks(live, rspamd, clock or reactor)],
                      workers.disk, resolver=resolver, dns=workers.dns),
        delivery=LocalDelivery(store, audit),
        workers=workers,
        audit=audit,
        connections=ConnectionLimits(limits.max_connections, limits.max_connections_per_ip),
        sessions=sessions,
        throttle=LoginThrottle(config.auth),
        live=live,
        keyring=keyring,
        signer=Signer(keyring),
        sealer=Sealer(keyring, config.hostname, config.domains[0]),
        metrics=Metrics(config, audit, sessions),
        spam_learner=learner(rspamd, workers.disk),
        acme_tokens=ChallengeTokens() if config.tls.acme else None,
    )

    def reconfigure(new: configuration.Config) -> None:
        """A SIGHUP's configuration: the sessions read it from the context, the objects below are told."""
        ctx.config = new
        rates.configure(new.limits)
        blocklists.configure(new.policy)
        greylist.limits = new.limits
        ctx.connections.total, ctx.connections.per_ip = new.limits.max_connections, new.limits.max_connections_per_ip
        ctx.throttle.configure(new.auth)
        directory.configure(new)

    live.follow(reconfigure)
    return ctx


def _sender_authentication(live: LiveConfig, resolver: Any) -> list[SenderAuthentication]:
    """SPF, DKIM, DMARC and ARC on port 25; none without a resolver to ask (tests of other things)."""
    if resolver is None:
        return []

    def judged_by(config: configuration.Config) -> tuple[Any, str, bool]:
        return config.policy.networks(), config.imap.junk, config.policy.dmarc_reject

    check = SenderAuthentication(live.current.hostname, *judged_by(live.current))
    live.follow(lambda config: check.configure(*judged_by(config)))
    return [check]


def build_context(config: configuration.Config, tls_options: object, workers: Workers) -> ServerContext:
    """The shared objects for every listener; blocking work runs in *workers*."""
    directory = Directory(config)
    return assemble(
        config,
        store=Store(config.mail_dir, workers.disk, reactor, _watcher(config, workers)),
        directory=directory,
        portal=make_portal(config, directory, {IUser: User}, workers, reactor),
        tls=tls_options,
        workers=workers,
        resolver=make_resolver(config.dns),
        srs=_srs(config),
    )


def makeService(options: Options) -> service.IService:
    """The server: worker pools, one listener per configured endpoint, reload and stop in order.

    *options* ``.parent`` is twistd's own options when twistd runs us: the
    log file and the report of a failed start need them (:mod:`mailsrv.startup`).
    """
    config: configuration.Config = options["parsed"]
    twistd_options = options.parent
    heap.tune()  # before the pools' threads allocate
    threads = config.threads
    pools = [PoolExecutor(reactor, name, size) for name, size in
             (("disk", threads.disk), ("hashing", threads.hashing), ("search", threads.search),
              ("dns", threads.dns),
              ("signing", threads.signing))]
    workers = Workers(*pools)
    ctx = build_context(config, tls.ServerTLS(options["tls"]), workers)
    # One resolver for the policy checks and the sender, so one [dns] is asked.
    remote = make_remote_delivery(config, reactor, workers, resolver=ctx.policy.resolver)
    queue = build_queue(config, reactor, workers, remote, router=ctx.router, local=ctx.delivery, audit=ctx.audit,
                        signer=ctx.signer)
    ctx.queue = queue
    ctx.live.follow(lambda new: queue.configure(new.delivery))
    listeners = [
        listener(description, config.listen.backlog, _protocol_factory(ctx, kind), kind, ctx.tls, reactor)
        for kind in Kind
        for description in config.listen.endpoints(kind)
    ]
    log_target = logfile.twistd_log_target(twistd_options)
    log_file = None if log_target in (None, logfile.STDOUT) else logfile.LogFile(log_target, config.log)
    certificates = CertificateFiles(ctx.live, ctx.tls, workers.disk, reactor)
    reloader = Reloader(ctx.live, Source.of(config, options["data-dir"]), ctx.directory, ctx.keyring, certificates,
                        workers.disk, log_file)
    jobs: list[service.Service] = [certificates]
    if ctx.acme_tokens is not None:
        # Here, not at the top: certbot's acme library and requests, which it
        # pulls in, are 5 MiB of a server's memory, and only [tls] acme needs them.
        from mailsrv.acme.service import AcmeService

        acme = AcmeService(config, ctx.tls, ctx.acme_tokens, reactor)
        ctx.live.follow(acme.configure)
        jobs.append(acme)
    return MailServer(ctx, pools, listeners, reloader, StartGuard(twistd_options), log_file, reactor, queue=queue,
                      log_to_stdout=log_target == logfile.STDOUT, jobs=jobs)

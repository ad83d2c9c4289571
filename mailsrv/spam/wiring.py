"""``[spam]`` made into the port 25 check and the learner (for :func:`mailsrv.tap.assemble`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mailsrv.config import ConfigError
from mailsrv.config.delivery import seconds
from mailsrv.policy.fcrdns import ClientNames
from mailsrv.spam.check import SpamCheck
from mailsrv.spam.learn import Learner
from mailsrv.spam.rspamd import Rspamd

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from mailsrv.config import Config
    from mailsrv.config.live import LiveConfig
    from mailsrv.workers import Executor


def make_rspamd(config: "Config", reactor: Any, clock: Any = None) -> Rspamd | None:
    """The client of the configured rspamd; ``None`` when neither scanner nor controller is set."""
    spam = config.spam
    if not (spam.rspamd or spam.controller):
        return None
    return Rspamd(reactor, spam.rspamd, spam.controller, _password(config), seconds(spam.timeout), clock)


def spam_checks(live: "LiveConfig", rspamd: Rspamd | None, clock: "IReactorTime") -> list[SpamCheck]:
    """The port 25 scan, if a scanner is configured; it follows the networks, Junk and ``on_error`` of a SIGHUP.

    *clock* times the client name lookups (``hostname_timeout``, which takes a restart).
    """
    config = live.current
    if rspamd is None or not config.spam.rspamd:
        return []

    def scanned_by(config: "Config") -> tuple[Any, str, bool]:
        return config.policy.networks(), config.imap.junk, config.spam.on_error == "tempfail"

    names = ClientNames(seconds(config.spam.hostname_timeout), clock)
    check = SpamCheck(rspamd, config.hostname, *scanned_by(config), names=names)
    live.follow(lambda new: check.configure(*scanned_by(new)))
    return [check]


def learner(rspamd: Rspamd | None, disk: "Executor") -> Learner | None:
    """What teaches the controller, if one is configured."""
    return Learner(rspamd, disk) if rspamd is not None and rspamd.learns else None


def _password(config: "Config") -> str:
    path = config.spam.password_file
    if not path:
        return ""
    try:
        with open(path, encoding="utf-8") as f:
            return f.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"{config.source}: spam.password_file: cannot read {path}: {getattr(e, 'strerror', None) or e}"
        ) from None

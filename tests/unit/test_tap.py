"""``twistd mailsrv`` wiring: the data dir it prepares and the services it builds."""

from __future__ import annotations

import io
import os
import sys
from types import SimpleNamespace

import pytest
from twisted.application.service import Application, Service
from twisted.internet import task
from twisted.logger import ILogObserver, LogLevel, formatTime

from mailsrv import config as configuration
from mailsrv.config import Config
from mailsrv.service import MailServer
from mailsrv.startup import StartGuard
from mailsrv.tap import Options, prepare_data_dir
from support import SystemClock

NOBODY = 65534


def test_data_mail_spool_and_queue_dirs_are_created_private(tmp_path):
    config = Config(data_dir=str(tmp_path / "data"))
    prepare_data_dir(config, None, None)
    for path in (config.data_dir, config.mail_dir, config.spool_dir, config.queue_dir):
        assert os.stat(path).st_mode & 0o777 == 0o700, path
    assert config.spool_dir == os.path.join(config.data_dir, "spool")


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another uid needs root")
def test_the_dirs_are_handed_to_the_uid_twistd_drops_to(tmp_path):
    config = Config(data_dir=str(tmp_path / "data"))
    prepare_data_dir(config, NOBODY, NOBODY)
    for path in (config.data_dir, config.mail_dir, config.spool_dir, config.queue_dir):
        assert (os.stat(path).st_uid, os.stat(path).st_gid) == (NOBODY, NOBODY), path


def test_the_server_finds_its_configuration_as_the_cli_does(tmp_path, monkeypatch):
    """``$MAILSRV_CONFIG``, else the system file: the same :func:`locate` as ``mailsrv user add``."""
    system, environment = tmp_path / "system.toml", tmp_path / "environment.toml"
    for path in (system, environment):
        path.write_text(f'data_dir = "{tmp_path / path.stem}"\n')
    monkeypatch.setattr(configuration.loader, "SYSTEM_CONFIG", str(system))
    assert _parsed([]).data_dir == str(tmp_path / "system")
    monkeypatch.setenv("MAILSRV_CONFIG", str(environment))
    assert _parsed([]).source == str(environment)
    assert _parsed(["--config", str(system)]).source == str(system)


def _parsed(argv: list[str]) -> Config:
    options = Options()
    options.parseOptions(argv)
    return options["parsed"]


class _Step(Service):
    """A service that records its start and stop in *steps*."""

    def __init__(self, name: str, steps: list[str]) -> None:
        self.name, self.steps = name, steps

    def startService(self) -> None:
        super().startService()
        self.steps.append(f"start {self.name}")

    def stopService(self) -> None:
        super().stopService()
        self.steps.append(f"stop {self.name}")


def test_the_queue_starts_after_the_pools_and_stops_after_the_sessions_before_the_pools(tmp_path):
    steps: list[str] = []

    class Sessions:
        async def close_all(self, grace, clock):
            steps.append("close sessions")

    ctx = SimpleNamespace(config=Config(data_dir=str(tmp_path)), sessions=Sessions())
    server = MailServer(ctx, [_Step("disk", steps)], [_Step("listener", steps)], None, StartGuard(None), None,
                        task.Clock(), queue=_Step("queue", steps))
    server.tmp_cleanup.startService = server.tmp_cleanup.stopService = lambda: None
    server.startService()
    server.stopService()
    assert steps == ["start disk", "start queue", "start listener",
                     "stop listener", "close sessions", "stop queue", "stop disk"]


@pytest.mark.parametrize(("to_stdout", "observed"), [(True, True), (False, False)])
def test_twistds_standard_output_gets_our_observer(tmp_path, monkeypatch, to_stdout, observed):
    """``twistd -n`` logs to standard output: there too the lines come from :class:`logfile.TextObserver`."""
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    ctx = SimpleNamespace(config=Config(data_dir=str(tmp_path)))
    reactor = SystemClock()
    reactor.running = False  # not started: the line is written at once
    server = MailServer(ctx, [], [], None, StartGuard(None), None, reactor, log_to_stdout=to_stdout)
    application = Application("test")
    server.setServiceParent(application)
    observer = application.getComponent(ILogObserver, None)
    assert (observer is not None) == observed
    if observer is not None:
        observer({"log_format": "hello {who}", "who": "there", "log_level": LogLevel.info,
                  "log_namespace": "t", "log_time": 0.0})
        assert out.getvalue() == formatTime(0.0) + " [t#info] hello there\n"

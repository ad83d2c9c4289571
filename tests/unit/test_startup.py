"""A failed start: the one-line reason reaches the admin, the pid file goes (see mailsrv.startup)."""

from __future__ import annotations

import io
import os

import pytest

from mailsrv.startup import StartGuard, report_failed_start

REASON = "mailsrv: cannot listen for smtp tcp:25: Address already in use"


@pytest.fixture
def pidfile(tmp_path):
    path = tmp_path / "mailsrv.pid"
    path.write_text(str(os.getpid()))
    return str(path)


@pytest.fixture
def terminal(monkeypatch):
    """What reaches the terminal's stderr; ``terminal.handlers`` are what ``atexit`` was given."""
    out = io.StringIO()
    monkeypatch.setattr("sys.__stderr__", out)
    handlers: list = []
    monkeypatch.setattr("atexit.register", handlers.append)
    monkeypatch.setattr("atexit.unregister", lambda fn: handlers.remove(fn) if fn in handlers else None)
    out.handlers = handlers
    return out


def exit_of(terminal, guard: StartGuard, error: BaseException) -> str:
    """What the admin reads when a start step raises *error*."""
    guard.arm()
    with pytest.raises(SystemExit) as exited:
        with guard.watch():
            raise error
    assert exited.value.code == 1
    for handler in terminal.handlers:
        handler()
    return terminal.getvalue()


def test_a_daemon_reports_through_the_status_pipe_its_parent_waits_on(pidfile):
    read, write = os.pipe()
    options = {"statusPipe": write, "pidfile": pidfile, "nodaemon": False}
    report_failed_start(REASON, options)
    # twistd's parent prints what follows "1 " and exits 1 (_waitForStart).
    assert os.read(read, 200) == b"1 " + REASON.encode()
    assert os.read(read, 200) == b""  # closed: the parent is not left waiting
    os.close(read)
    assert options["statusPipe"] is None
    assert not os.path.exists(pidfile)


def test_a_long_reason_is_cut_to_what_twistd_reads(pidfile):
    read, write = os.pipe()
    report_failed_start("x" * 500, {"statusPipe": write, "pidfile": pidfile})
    assert os.read(read, 1000) == b"1 " + b"x" * 98
    os.close(read)


def test_with_n_the_reason_goes_to_the_terminal_not_the_log(pidfile, terminal):
    report_failed_start(REASON, {"statusPipe": None, "pidfile": pidfile, "nodaemon": True})
    assert terminal.getvalue() == REASON + "\n"
    assert not os.path.exists(pidfile)


def test_a_pid_file_of_another_process_stays(tmp_path, terminal):
    other = tmp_path / "other.pid"
    other.write_text("1")
    report_failed_start(REASON, {"pidfile": str(other)})
    assert other.exists()


def test_watch_reports_a_steps_one_line_exit(terminal, pidfile):
    guard = StartGuard({"pidfile": pidfile, "nodaemon": True})
    assert exit_of(terminal, guard, SystemExit(REASON)) == REASON + "\n"
    assert not os.path.exists(pidfile)


def test_watch_turns_a_bug_into_one_line(terminal, pidfile):
    guard = StartGuard({"pidfile": pidfile, "nodaemon": True})
    assert exit_of(terminal, guard, ValueError("no such thing")) == "mailsrv: start-up failed: no such thing\n"


def test_an_exit_while_armed_is_reported_and_after_start_it_is_not(terminal, pidfile):
    guard = StartGuard({"pidfile": pidfile, "nodaemon": True})
    guard.arm()
    guard.started()
    assert terminal.handlers == []
    guard.arm()
    [exited] = terminal.handlers  # twistd's own sys.exit(1), say (shedPrivileges)
    exited()
    assert terminal.getvalue() == "mailsrv: start-up did not complete; the log says why\n"
    assert not os.path.exists(pidfile)


def test_without_twistd_nothing_is_registered(terminal):
    StartGuard(None).arm()
    assert terminal.handlers == []

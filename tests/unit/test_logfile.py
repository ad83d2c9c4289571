"""The log file: which one twistd would write, rotation with deletion, reopen after logrotate."""

from __future__ import annotations

import io
import os

import pytest

from mailsrv.config import LogConfig
from mailsrv import logfile
from support import SystemClock
from mailsrv.logfile import LogFile, twistd_log_target

LINE = "2026-12-01T22:41:32+0000 [mailsrv.audit#info] login ok\n"  # 55 octets


@pytest.mark.parametrize(
    ("options", "path"),
    [
        ({"logfile": "/var/log/mailsrv.log", "nodaemon": False}, "/var/log/mailsrv.log"),
        ({"logfile": "/var/log/mailsrv.log", "nodaemon": True}, "/var/log/mailsrv.log"),
        ({"logfile": None, "nodaemon": False}, "twistd.log"),  # a daemon's default, in the directory it starts in
        ({"logfile": None, "nodaemon": True}, "-"),  # -n: stdout
        ({"logfile": "-", "nodaemon": True}, "-"),
        ({"logfile": "/var/log/x", "syslog": True}, None),
        ({"logfile": "/var/log/x", "logger": object()}, None),
        (None, None),  # not run by twistd
    ],
)
def test_the_file_twistd_would_write(options, path):
    assert twistd_log_target(options) == (path if path in (None, "-") else os.path.abspath(path))


@pytest.fixture
def open_log():
    """``open_log(path, **LogConfig keys)``: a LogFile closed after the test."""
    opened = []

    def open_log(path: str, **config: int) -> LogFile:
        opened.append(LogFile(path, LogConfig(**config)))
        return opened[-1]

    yield open_log
    for log in opened:
        log.close()


def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_rotates_by_size_and_keeps_only_rotate_keep_files(tmp_path, open_log):
    path = str(tmp_path / "mailsrv.log")
    log = open_log(path, rotate_size=2 * len(LINE), rotate_keep=2)
    for n in range(7):
        log.write(f"{n}" + LINE[1:])
    assert sorted(os.listdir(tmp_path)) == ["mailsrv.log", "mailsrv.log.1", "mailsrv.log.2"]
    assert [read(path + suffix)[0] for suffix in ("", ".1", ".2")] == ["6", "4", "2"]
    assert read(path + ".1") == "4" + LINE[1:] + "5" + LINE[1:]


def test_rotate_size_0_never_rotates(tmp_path, open_log):
    path = str(tmp_path / "mailsrv.log")
    log = open_log(path, rotate_size=0)
    for _ in range(100):
        log.write(LINE)
    assert os.listdir(tmp_path) == ["mailsrv.log"]


def test_rotate_now_as_sigusr1_asks(tmp_path, open_log):
    path = str(tmp_path / "mailsrv.log")
    log = open_log(path)
    log.write(LINE)
    log.rotate()
    log.write("after\n")
    assert (read(path + ".1"), read(path)) == (LINE, "after\n")


def test_reopen_continues_in_a_new_file_after_logrotate_renamed_it(tmp_path, open_log):
    path = str(tmp_path / "mailsrv.log")
    log = open_log(path, rotate_size=0)
    log.write("before\n")
    os.rename(path, path + "-20261201")
    log.write("still the old file\n")
    log.reopen()
    log.write("after\n")
    assert read(path + "-20261201") == "before\nstill the old file\n"
    assert read(path) == "after\n"


def test_a_failed_reopen_keeps_logging_where_it_was(tmp_path, open_log):
    directory = tmp_path / "logs"
    directory.mkdir()
    path = str(directory / "mailsrv.log")
    log = open_log(path, rotate_size=0)
    os.rename(directory, tmp_path / "moved")
    with pytest.raises(OSError):
        log.reopen()
    log.write("kept\n")
    assert read(str(tmp_path / "moved" / "mailsrv.log")) == "kept\n"


def test_appends_so_that_copytruncate_leaves_no_hole(tmp_path, open_log):
    path = str(tmp_path / "mailsrv.log")
    log = open_log(path, rotate_size=0)
    log.write(LINE * 10)
    os.truncate(path, 0)  # logrotate's copytruncate
    log.write("after\n")
    assert read(path) == "after\n"


def test_a_rotation_that_fails_says_so_and_goes_on(tmp_path, open_log):
    path = str(tmp_path / "mailsrv.log")
    (tmp_path / "mailsrv.log.1").mkdir()  # cannot be removed as a file, nor renamed over
    (tmp_path / "mailsrv.log.1" / "x").write_text("")
    log = open_log(path, rotate_size=len(LINE), rotate_keep=1)
    log.write(LINE)
    log.write(LINE)
    text = read(path)
    assert text.startswith(LINE + f"mailsrv: cannot rotate {path}: ")
    assert text.endswith("; going on in this file\n" + LINE)


def test_text_observer_writes_twistds_lines(tmp_path) -> None:
    """Line for line what twistd's own text observer writes, also across a change of second."""
    from twisted.logger import LogLevel, textFileLogObserver

    ours, theirs = io.StringIO(), io.StringIO()
    observers = (logfile.TextObserver(ours), textFileLogObserver(theirs))
    for when in (1_764_650_000.25, 1_764_650_000.75, 1_764_650_001.0, 1_764_650_000.5, None):
        event = {"log_format": "delivery {result}: n={n}", "result": "stored", "n": 3, "log_level": LogLevel.info,
                 "log_namespace": "mailsrv.audit", "log_time": when}
        for observe in observers:
            observe(dict(event))
    assert ours.getvalue() == theirs.getvalue()
    assert ours.getvalue().count("\n") == 5


def _line(text: str) -> dict:
    from twisted.logger import LogLevel

    return {"log_format": text, "log_level": LogLevel.info, "log_namespace": "t", "log_time": 0.0}


class _Out(io.StringIO):
    """Standard output that counts its writes."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def lines(self) -> list[str]:
        """The lines written, without their time prefix."""
        return [line.split(" ", 1)[1] for line in self.getvalue().splitlines()]


def test_lines_of_one_reactor_turn_are_written_together() -> None:
    out, reactor, here = _Out(), SystemClock(), [True]
    observe = logfile.TextObserver(out, reactor, on_reactor_thread=lambda: here[0])
    observe(_line("one"))
    observe(_line("two"))
    assert out.lines() == []
    reactor.advance(0)
    assert (out.lines(), out.writes) == (["[t#info] one", "[t#info] two"], 1)
    here[0] = False  # a worker thread: written at once
    observe(_line("three"))
    assert out.lines()[-1] == "[t#info] three"
    here[0] = True
    observe(_line("four"))
    assert out.lines()[-1] == "[t#info] three"
    [(phase, event, write_kept)] = reactor.triggers
    assert (phase, event) == ("after", "shutdown")
    write_kept()
    assert out.lines()[-1] == "[t#info] four"
    reactor.running = False
    observe(_line("five"))
    assert out.lines()[-1] == "[t#info] five"

"""End to end: the privileges ``etc/systemd/mailsrv.service`` gives, and ``mailsrv selftest`` passing under them.

No systemd runs the tests, so ``setpriv`` applies what the unit asks for
(``User``, ``AmbientCapabilities``, ``CapabilityBoundingSet``,
``NoNewPrivileges``), read from the unit itself: the server, never root,
binds ports below 1024 and serves; the README's ``runuser -u mailsrv --
mailsrv selftest`` is ``setpriv`` as that user too.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile

import pytest

from test_e2e_privileged import NOBODY, free_privileged_ports
from twistd_server import Server, env
from unit_file import read_unit

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="taking the unit's user and capabilities needs root"),
    pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed"),
]
MAIL_KINDS = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")


def as_the_unit_runs_it(service: dict[str, list[str]], uid: int) -> list[str]:
    """``setpriv`` options for the unit's [Service] privileges, with *uid* for its ``User``."""
    def caps(key: str) -> str:
        return "-all," + ",".join("+" + cap.lower().removeprefix("cap_") for cap in service[key][0].split())

    options = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
               f"--inh-caps={caps('AmbientCapabilities')}", f"--ambient-caps={caps('AmbientCapabilities')}",
               f"--bounding-set={caps('CapabilityBoundingSet')}"]
    if service["NoNewPrivileges"] == ["yes"]:
        options.append("--no-new-privs")
    return options


def test_the_units_privileges_bind_low_ports_and_selftest_passes():
    service = read_unit()["Service"]
    assert shlex.split(service["ExecStart"][0])[1:3] == ["-n", "--pidfile="]  # what Server runs twistd with
    root = tempfile.mkdtemp(prefix="mailsrv-unit-")
    os.chmod(root, 0o755)
    server = Server(root, ports=dict(zip(MAIL_KINDS, free_privileged_ports(len(MAIL_KINDS)))),
                    wrapper=as_the_unit_runs_it(service, NOBODY))
    os.makedirs(server.data_dir)
    open(server.logfile, "w").close()  # the unit logs to the journal; the test reads a file
    for path in (server.data_dir, server.logfile):
        os.chown(path, NOBODY, NOBODY)  # StateDirectory= makes the data dir the service user's
    server.write_config()
    os.chmod(server.config, 0o644)
    server.start()
    try:
        with open(f"/proc/{server.process.pid}/status") as f:
            status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
        assert status["Uid"].split() == [str(NOBODY)] * 4
        assert int(status["CapEff"], 16) == 1 << 10  # CAP_NET_BIND_SERVICE, nothing else
        done = subprocess.run(
            [*as_the_unit_runs_it(service, NOBODY), sys.executable, "-m", "mailsrv.cli", "-c", server.config,
             "selftest"], capture_output=True, text=True, env=env(), timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "selftest passed" in done.stdout
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

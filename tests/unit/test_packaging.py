"""The shipped systemd unit and logrotate file, against README.rst's "Production in ten minutes".

The README tells the admin where to put the program, the configuration
and the data; the unit names the same paths.  These tests read both, so
neither can move without the other.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap

import pytest

from mailsrv.config import load
from unit_file import UNIT, read_unit

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir, os.pardir))
LOW_PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "pop3": 110, "pop3s": 995, "imap": 143,
             "imaps": 993}


def readme_section(title: str) -> str:
    with open(os.path.join(REPO, "README.rst"), encoding="utf-8") as f:
        readme = f.read()
    start = readme.index(f"\n{title}\n{'-' * len(title)}\n")
    end = re.search(r"\n[^\n]+\n-{3,}\n", readme[start + len(title) + 2:])
    return readme[start: start + len(title) + 2 + end.start()] if end else readme[start:]


def heredoc(section: str, command: str) -> str:
    """The text a ``command <<'END'`` block of *section* writes."""
    marker = f"{command} <<'END'\n"
    start = section.index(marker) + len(marker)
    return textwrap.dedent(section[start: section.index("       END\n", start)])


@pytest.fixture(scope="module")
def service() -> dict[str, list[str]]:
    return read_unit()["Service"]


@pytest.fixture(scope="module")
def guide() -> str:
    return readme_section("Production in ten minutes")


def test_the_unit_runs_the_program_the_guide_installs_with_the_config_it_writes(service, guide):
    command = shlex.split(service["ExecStart"][0])
    twistd, config = command[0], command[-1]
    venv = os.path.dirname(os.path.dirname(twistd))
    assert command == [twistd, "-n", "--pidfile=", "mailsrv", "--config", config]  # foreground; stdout: the journal
    assert f"python3 -m venv {venv}\n" in guide and f"{venv}/bin/pip install .\n" in guide
    assert f"cat > {config} <<'END'" in guide and f"cat >> {config} <<'END'" in guide
    assert f"{venv}/bin/mailsrv selftest" in guide and f"{venv}/bin/mailsrv dns check" in guide
    assert "install -m 644 etc/systemd/mailsrv.service /etc/systemd/system/mailsrv.service" in guide
    assert "systemctl enable --now mailsrv.service" in guide


def test_the_guides_configuration_loads_with_the_units_data_dir_and_low_ports(service, guide, tmp_path):
    data_dir = service["ReadWritePaths"][0]
    assert service["StateDirectory"] == [os.path.basename(data_dir)] and data_dir.startswith("/var/lib/")
    path = tmp_path / "mailsrv.toml"
    path.write_text(heredoc(guide, "cat > /etc/mailsrv/mailsrv.toml"))
    config = load(str(path))
    assert config.data_dir == data_dir
    assert {kind: getattr(config.listen, kind) for kind in LOW_PORTS} == {
        kind: (f"tcp:{port}",) for kind, port in LOW_PORTS.items()}
    path.write_text(path.read_text() + heredoc(guide, "cat >> /etc/mailsrv/mailsrv.toml"))
    completed = load(str(path))  # step 4 appends to the [listen] table, then the ACME [tls]
    assert completed.listen.http == ("tcp:80",) and completed.listen.https == ("tcp:443",)
    assert completed.tls.acme and completed.tls.acme_directory.startswith("https://acme-v02.")
    assert f"install -d -o mailsrv -g mailsrv -m 750 {data_dir}\n" in guide


def test_the_unit_runs_as_the_guides_user_with_binding_as_its_only_privilege(service, guide):
    assert service["User"] == service["Group"] == ["mailsrv"]
    assert "useradd --system --user-group" in guide and "--shell /usr/sbin/nologin mailsrv\n" in guide
    assert service["AmbientCapabilities"] == service["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("PrivateDevices", "yes"),
                       ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX")):
        assert service[key] == [value], key
    assert service["SystemCallFilter"][0] == "@system-service"
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP: README.rst, "Signals"


def _analyzable_copy(tmp_path) -> str:
    """The unit with its twistd replaced by this Python's (verify wants the program to exist), else a skip."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
    if not os.access(twistd, os.X_OK):
        pytest.skip(f"no twistd beside {sys.executable}")
    with open(UNIT, encoding="utf-8") as f:
        text = f.read()
    copy = tmp_path / "mailsrv.service"
    copy.write_text(text.replace("/opt/mailsrv/bin/twistd", twistd))
    return str(copy)


def test_systemd_accepts_the_unit(tmp_path):
    done = subprocess.run(["systemd-analyze", "verify", _analyzable_copy(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_the_guide_quotes_the_exposure_systemd_rates_the_unit(tmp_path, guide):
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", _analyzable_copy(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    score = re.search(r"Overall exposure level for mailsrv.service: (\d+\.\d+) (\w+)", done.stdout)
    assert score, done.stdout[-500:]
    assert f"rates it {score.group(1)}, \"{score.group(2)}\"" in " ".join(guide.split())


def test_the_logrotate_file_is_the_readmes_recipe():
    with open(os.path.join(REPO, "etc", "logrotate.d", "mailsrv"), encoding="utf-8") as f:
        shipped = "".join(line for line in f if not line.startswith("#"))
    logs = readme_section("Production notes")
    start = logs.index("      /var/log/mailsrv/mailsrv.log {")
    assert shipped == textwrap.dedent(logs[start: logs.index("\n      }\n", start) + 9])

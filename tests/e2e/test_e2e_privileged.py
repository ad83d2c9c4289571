"""twistd's privileged start: bind a port below 1024 as root, then serve as nobody."""

from __future__ import annotations

import os
import poplib
import smtplib
import tempfile
import time

import pytest

from twistd_server import Server, bindable

NOBODY = 65534
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding a privileged port needs root")


def free_privileged_ports(count: int) -> list[int]:
    """Ports below 1024 that nothing listens on (only root can take them)."""
    found = []
    for port in range(700, 1024):
        if bindable(port):
            found.append(port)
            if len(found) == count:
                return found
    pytest.skip("no free privileged ports")


@pytest.fixture
def server():
    root = tempfile.mkdtemp(prefix="mailsrv-priv-")
    os.chmod(root, 0o755)  # the unprivileged server must reach its data dir
    smtp, pop3 = free_privileged_ports(2)
    srv = Server(
        root,
        ports={"smtp": smtp, "pop3": pop3},
        twistd_args=[f"--uid={NOBODY}", f"--gid={NOBODY}"],
        extra_config="[auth]\nallow_plaintext_auth_on_loopback = true\n",
    )
    srv.add_user("alice@example.test", "pw-for-alice")  # as root, before the start
    srv.start()
    yield srv
    srv.stop()


def process_uids(pid: int) -> list[str]:
    with open(f"/proc/{pid}/status") as f:
        return next(line for line in f if line.startswith("Uid:")).split()[1:]


def test_binds_as_root_then_runs_as_nobody_and_delivers(server):
    # The ports accept as soon as root bound them; twistd drops privileges a
    # moment later, before it starts serving.
    deadline = time.monotonic() + 10
    while process_uids(server.process.pid) != [str(NOBODY)] * 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process_uids(server.process.pid) == [str(NOBODY)] * 4
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.sendmail("a@remote.test", ["alice@example.test"], b"Subject: priv\r\n\r\nhi\r\n")
    mailbox = os.path.join(server.data_dir, "mail", "example.test", "alice")
    assert os.stat(mailbox).st_uid == NOBODY
    p = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    p.user("alice@example.test")
    p.pass_("pw-for-alice")
    assert p.stat()[0] == 1
    p.quit()

"""End to end: changes other programs make to the Maildir reach an IDLE session of the real server.

procmail delivers (``tmp/`` then a rename into ``new/``), mutt renames a
file to add a flag, a hand removes one; and a second mailsrv process on
the same data dir takes an SMTP delivery.  Each reaches the session as
``EXISTS``, ``FETCH (FLAGS ...)`` or ``EXPUNGE`` while it IDLEs.  The
bounds are timeouts for a failure, not timing asserts.
"""

from __future__ import annotations

import imaplib
import os
import re
import time
from dataclasses import dataclass

import pytest

from test_e2e import PASSWORD, message, send
from twistd_server import Server

ALICE = "alice@example.test"
#: How long to wait for the server before failing.
WAIT = 15
#: How long to wait for an update before failing: the watcher takes well under a second, and this
#: stays below IDLE's own poll (``IDLE_POLL_SECONDS``), which would hide a watcher that missed it.
UPDATE_WAIT = 5


@pytest.fixture(params=["inotify", "poll"])
def server(tmp_path, request):
    srv = Server(str(tmp_path / "a"), extra_config=f'[imap]\nwatch = "{request.param}"\n')
    srv.start()
    srv.add_user(ALICE, PASSWORD)
    yield srv
    srv.stop()


def inbox(server: Server) -> str:
    return os.path.join(server.data_dir, "mail", "example.test", "alice")


def idle(server: Server) -> tuple[imaplib.IMAP4_SSL, int]:
    """An IMAP session IDLEing on alice's INBOX, and the EXISTS it was told at SELECT."""
    m = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=WAIT)
    m.login(ALICE, PASSWORD)
    m.select("INBOX")
    exists = int(m.untagged_responses["EXISTS"][-1])
    m.send(m._new_tag() + b" IDLE\r\n")
    assert m.readline().startswith(b"+ ")
    m.sock.settimeout(UPDATE_WAIT)
    return m, exists


def next_update(m: imaplib.IMAP4_SSL, pattern: bytes) -> bytes:
    """The next untagged line matching *pattern*; the socket's timeout fails the test."""
    while True:
        line = m.readline()
        assert line, "connection closed"
        if re.fullmatch(pattern, line.rstrip(b"\r\n")):
            return line


def procmail(folder: str, name: str) -> None:
    tmp = os.path.join(folder, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(message("from procmail").replace(b"\r\n", b"\n"))
    os.rename(tmp, os.path.join(folder, "new", name))


def wait_for_file(directory: str, prefix: str) -> str:
    """The name of the file starting with *prefix* once it is in *directory*."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = [n for n in os.listdir(directory) if n.startswith(prefix)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"{prefix} never reached {directory}")


def test_idle_hears_new_mail_flags_and_expunges_written_by_other_programs(server):
    send(server, [ALICE], message("first"))
    m, exists = idle(server)
    folder = inbox(server)
    name = "1700000000.M1P4242Q1.procmail-host"
    procmail(folder, name)
    next_update(m, rb"\* %d EXISTS" % (exists + 1))
    cur = os.path.join(folder, "cur")
    claimed = wait_for_file(cur, name)  # this session took it as \Recent: into cur/
    os.rename(os.path.join(cur, claimed), os.path.join(cur, name + ":2,S"))  # as mutt marks it read
    line = next_update(m, rb"\* %d FETCH \(FLAGS \(.*\)\)" % (exists + 1))
    assert b"\\Seen" in line
    os.unlink(os.path.join(cur, name + ":2,S"))
    next_update(m, rb"\* %d EXPUNGE" % (exists + 1))
    m.send(b"DONE\r\n")
    next_update(m, rb"\S+ OK IDLE terminated")
    m.logout()


@dataclass
class SecondServer(Server):
    """Another mailsrv process, on its own ports, over the data dir of a running one."""

    shared: str = ""

    @property
    def data_dir(self) -> str:
        return self.shared


def test_idle_on_one_process_hears_a_delivery_to_another_on_the_same_data_dir(server, tmp_path):
    second = SecondServer(str(tmp_path / "b"), shared=server.data_dir)
    second.start()
    try:
        m, exists = idle(server)
        send(second, [ALICE], message("through the other process"))
        next_update(m, rb"\* %d EXISTS" % (exists + 1))
        m.send(b"DONE\r\n")
        next_update(m, rb"\S+ OK IDLE terminated")
        m.logout()
    finally:
        second.stop()

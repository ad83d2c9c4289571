"""End to end: a folder's ``mailsrv-snapshot`` is written by the real twistd and a restart opens the folder from it.

The restarted server must show exactly what the first one showed (UIDs,
flags, sizes, dates, UIDVALIDITY), whether the file is used, or found
corrupt and not used.
"""

from __future__ import annotations

import imaplib
import os
import time

import pytest

from twistd_server import one_user_server

PASSWORD = "correct horse battery staple"
ALICE = "alice@example.test"
MESSAGE = b"From: bob@example.test\r\nSubject: snap\r\n\r\nbody\r\n"


@pytest.fixture
def server(tmp_path):
    yield from one_user_server(str(tmp_path), ALICE, PASSWORD)


def _session(server) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    conn.login(ALICE, PASSWORD)
    return conn


def _seen(server) -> tuple[bytes, list[bytes]]:
    """UIDVALIDITY and every message's UID, flags, size and date, as a client sees them."""
    conn = _session(server)
    try:
        conn.select("INBOX")
        validity = conn.response("UIDVALIDITY")[1][0]
        typ, data = conn.uid("FETCH", "1:*", "(FLAGS RFC822.SIZE INTERNALDATE)")
        assert typ == "OK"
        return validity, sorted(data)
    finally:
        conn.logout()


def _snapshot_written(server) -> str:
    path = os.path.join(server.data_dir, "mail", "example.test", "alice", "mailsrv-snapshot")
    deadline = time.monotonic() + 30
    while not os.path.exists(path):
        assert time.monotonic() < deadline, "no mailsrv-snapshot written"
        time.sleep(0.1)
    return path


def _fill(server) -> tuple[bytes, list[bytes]]:
    conn = _session(server)
    for flags in ("", r"(\Seen)", r"(\Flagged $Label1)"):
        assert conn.append("INBOX", flags, None, MESSAGE)[0] == "OK"
    conn.select("INBOX")
    assert conn.uid("STORE", "1", "+FLAGS", r"(\Answered)")[0] == "OK"
    conn.logout()
    return _seen(server)  # a sync that lists what the APPENDs and the STORE changed, and saves it


def test_a_restart_shows_what_the_snapshot_file_recorded(server):
    before = _fill(server)
    _snapshot_written(server)
    server.restart()
    assert _seen(server) == before
    assert "snapshot not used" not in server.log()


def test_a_corrupt_snapshot_file_is_not_used_and_nothing_is_lost(server):
    before = _fill(server)
    path = _snapshot_written(server)
    server.stop()
    with open(path, "r+b") as f:
        f.seek(-3, os.SEEK_END)
        f.write(b"\xff\xff\xff")
    server.start()
    assert _seen(server) == before
    assert "snapshot not used" in server.log()

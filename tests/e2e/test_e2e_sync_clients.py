"""End to end with the sync clients people run against their IMAP server: mbsync (isync) and offlineimap3.

Each client runs as a user configures it: implicit TLS to ``localhost``
(a name the generated certificate carries), the server's certificate as
the one CA it trusts, the password read from a file, and a home of the
test's own so no real configuration leaks in.  Both keep a local Maildir
that the test changes as a mail program would (a file renamed for its
flags, a file added, a file removed), and both are run several times, as
from cron: what a client finds in the second run must be what the first
left, and a run with nothing to do must change nothing on either side.
``.ci/run`` installs both (Debian: isync, offlineimap3); without them these
tests skip.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import re
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from twistd_server import Server

PASSWORD = "correct horse battery staple"
#: One user per client, so that neither sees what the other synced.
MBSYNC_USER, OFFLINEIMAP_USER = "alice@example.test", "carol@example.test"
MBSYNC = shutil.which("mbsync")
OFFLINEIMAP = shutil.which("offlineimap")
#: The commands a sync client sends only when it changes something on the server.
WRITING = re.compile(rb"^>>> \d+ (?:UID )?(?:APPEND|STORE|EXPUNGE|COPY|MOVE|CREATE|DELETE|RENAME)\b", re.M)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")))
    srv.start()
    srv.add_user(MBSYNC_USER, PASSWORD)
    srv.add_user(OFFLINEIMAP_USER, PASSWORD)
    yield srv
    srv.stop()


def message(subject: str) -> bytes:
    return (b"From: bob@remote.test\r\nTo: you@example.test\r\nSubject: " + subject.encode()
            + b"\r\nMessage-ID: <" + subject.encode() + b"@remote.test>\r\n\r\nHello.\r\n")


def deliver(server: Server, user: str, *subjects: str) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        for subject in subjects:
            s.sendmail("bob@remote.test", [user], message(subject))


def imap(server: Server, user: str) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    conn.login(user, PASSWORD)
    return conn


def server_folder(server: Server, user: str, folder: str) -> dict[str, set[bytes]]:
    """Subject -> flags of every message in *folder*, as IMAP shows them (read-only: no \\Recent)."""
    with imap(server, user) as conn:
        typ, _ = conn.select(folder, readonly=True)
        assert typ == "OK"
        typ, data = conn.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        found = {}
        for item in data:
            if isinstance(item, tuple):
                flags = set(re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1).split())
                found[email.message_from_bytes(item[1])["Subject"]] = flags
        return found


def expunge_on_server(server: Server, user: str, folder: str, subject: str) -> None:
    with imap(server, user) as conn:
        conn.select(folder)
        typ, data = conn.search(None, "SUBJECT", f'"{subject}"')
        (seq,) = data[0].split()
        conn.store(seq, "+FLAGS", "\\Deleted")
        conn.expunge()


def local_folder(maildir: Path) -> dict[str, Path]:
    """Subject -> file of every message in a client's Maildir folder."""
    found = {}
    for sub in ("new", "cur"):
        for path in (maildir / sub).iterdir():
            found[email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)["Subject"]] = path
    return found


def local_tree(root: Path) -> list[str]:
    """Every message file under *root*, by path: a sync that changes nothing keeps this list."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.parent.name in ("new", "cur"))


def set_local_flags(path: Path, flags: str) -> None:
    """What a mail program does to flag a Maildir message: move it to cur/ with the flags in its name."""
    base = path.name.split(":2,")[0]
    path.rename(path.parent.parent / "cur" / f"{base}:2,{flags}")


def new_local_message(maildir: Path, name: str, subject: str) -> None:
    (maildir / "new" / name).write_bytes(
        b"From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: " + subject.encode()
        + b"\r\nMessage-ID: <" + subject.encode() + b"@example.test>\r\n\r\nWritten offline.\r\n"
    )


def home(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The clients' environment (a home of their own, the password in a file only they read) and local Maildir.

    The Maildir's root exists, as the mail program made it; the clients make only what is inside.
    """
    (tmp_path / "home").mkdir()
    password = tmp_path / "home" / "password"
    password.write_text(PASSWORD + "\n")
    password.chmod(0o600)
    (tmp_path / "mail").mkdir()
    return {**os.environ, "HOME": str(tmp_path / "home")}, tmp_path / "mail"


def run(argv: list[str], environment: dict[str, str]) -> bytes:
    done = subprocess.run(argv, env=environment, capture_output=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output.decode(errors="replace")
    assert b"rror" not in output, output.decode(errors="replace")  # "Error", "error": both clients' words
    return output


# -- mbsync --------------------------------------------------------------------


def mbsync_config(server: Server, environment: dict[str, str], local: Path) -> str:
    config = Path(environment["HOME"]) / ".mbsyncrc"
    config.write_text(
        f"""IMAPAccount alice
Host localhost
Port {server.ports["imaps"]}
User {MBSYNC_USER}
PassCmd "cat {environment["HOME"]}/password"
SSLType IMAPS
CertificateFile {server.cafile}

IMAPStore remote
Account alice

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel alice
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
"""
    )
    return str(config)


@pytest.mark.skipif(MBSYNC is None, reason="mbsync (Debian: isync) is not installed")
def test_mbsync_syncs_both_ways_and_a_third_run_does_nothing(server: Server, tmp_path: Path) -> None:
    environment, local = home(tmp_path)
    mbsync = [MBSYNC, "-c", mbsync_config(server, environment, local), "-Dn", "alice"]
    deliver(server, MBSYNC_USER, "kept", "deleted here", "deleted there")

    run(mbsync, environment)
    inbox = local / "INBOX"
    assert set(local_folder(inbox)) == {"kept", "deleted here", "deleted there"}
    assert {"Sent", "Trash", "Drafts", "Junk", "Archive"} <= {p.name for p in local.iterdir()}

    mine = local_folder(inbox)
    set_local_flags(mine["kept"], "FS")
    mine["deleted here"].unlink()
    new_local_message(inbox, "1700000000.1.laptop", "written offline")
    new_local_message(local / "Drafts", "1700000000.2.laptop", "a draft")
    expunge_on_server(server, MBSYNC_USER, "INBOX", "deleted there")
    deliver(server, MBSYNC_USER, "arrived meanwhile")

    run(mbsync, environment)
    assert server_folder(server, MBSYNC_USER, "INBOX") == {
        "kept": {b"\\Seen", b"\\Flagged"}, "written offline": set(), "arrived meanwhile": set(),
    }
    assert set(server_folder(server, MBSYNC_USER, "Drafts")) == {"a draft"}
    assert set(local_folder(inbox)) == {"kept", "written offline", "arrived meanwhile"}

    before = local_tree(local), server_folder(server, MBSYNC_USER, "INBOX")
    output = run(mbsync, environment)
    assert not WRITING.findall(output), output.decode(errors="replace")
    assert b"BODY" not in output  # nothing fetched: only UIDs and flags were compared
    assert (local_tree(local), server_folder(server, MBSYNC_USER, "INBOX")) == before


# -- offlineimap ---------------------------------------------------------------


def offlineimap_config(server: Server, environment: dict[str, str], local: Path) -> str:
    config = Path(environment["HOME"]) / ".offlineimaprc"
    config.write_text(
        f"""[general]
accounts = alice
metadata = {environment["HOME"]}/.offlineimap
ui = basic

[Account alice]
localrepository = local
remoterepository = remote

[Repository local]
type = Maildir
localfolders = {local}

[Repository remote]
type = IMAP
remotehost = localhost
remoteport = {server.ports["imaps"]}
remoteuser = {OFFLINEIMAP_USER}
remotepassfile = {environment["HOME"]}/password
ssl = yes
sslcacertfile = {server.cafile}
"""
    )
    return str(config)


@pytest.mark.skipif(OFFLINEIMAP is None, reason="offlineimap (Debian: offlineimap3) is not installed")
def test_offlineimap_full_sync_then_resync(server: Server, tmp_path: Path) -> None:
    environment, local = home(tmp_path)
    deliver(server, OFFLINEIMAP_USER, "first", "second")
    offlineimap = [OFFLINEIMAP, "-c", offlineimap_config(server, environment, local), "-o", "-u", "basic"]

    run(offlineimap, environment)
    assert set(local_folder(local / "INBOX")) == {"first", "second"}
    assert {"Sent", "Trash", "Drafts", "Junk", "Archive"} <= {p.name for p in local.iterdir()}

    mine = local_folder(local / "INBOX")
    set_local_flags(mine["first"], "RS")
    mine["second"].unlink()
    new_local_message(local / "Sent", "1700000000.3.laptop", "sent offline")
    deliver(server, OFFLINEIMAP_USER, "third")

    run(offlineimap, environment)
    assert server_folder(server, OFFLINEIMAP_USER, "INBOX") == {"first": {b"\\Seen", b"\\Answered"}, "third": set()}
    assert set(server_folder(server, OFFLINEIMAP_USER, "Sent")) == {"sent offline"}
    assert set(local_folder(local / "INBOX")) == {"first", "third"}

    before = local_tree(local), server_folder(server, OFFLINEIMAP_USER, "INBOX")
    output = run(offlineimap, environment)
    assert b"Copy message" not in output and b"flag" not in output.lower(), output.decode(errors="replace")
    assert (local_tree(local), server_folder(server, OFFLINEIMAP_USER, "INBOX")) == before


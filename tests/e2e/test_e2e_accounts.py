"""Accounts as an operator meets them (issue 6): a user file from Dovecot, the CLI next to a running server."""

from __future__ import annotations

import base64
import imaplib
import os
import poplib
import smtplib
import time

import pytest

from mailsrv.config import SYSTEM_CONFIG
from twistd_server import Server, mailsrv_cli

PASSWORD = "pässword 1"

#: Lines of a Dovecot passwd-file (``doveadm pw -s SCHEME -p 'pässword 1'``), with its extra fields.
DOVECOT_USERS = {
    "crypt": "{SHA512-CRYPT}$6$adbWzhVskSTENXfL$nBlesc5Pus4n7Ng.CQRtUTOCpwrsKCpaDX.caF0gN6GXOuHj/M3NnHZP0qImSslU8VY/"
             "U1QoR6aEgS/y/yynX/",
    "blowfish": "{BLF-CRYPT}$2y$05$a8.YOsjAL9kTUt1oRAPEguyfFqvTaszZxXI6iO0bIMYfoosC6d8fG",
    "salted": "{SSHA512}My55uoIfSNTponW/PL1mxZJLwtPZR4NtcR4RHtPoyfvPX1PJ0Hs5lfS71N8xKX7kZ2tpGysOv6Iv6/su7BPXSY3DmfA=",
    "kdf": "{PBKDF2}$1$xUyvDEpbuuLyCXA.$5000$51d6301514ecf1b2b1ed08419af8259b04fd7981",
    "clear": "{PLAIN}pässword 1",
}


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    """A server whose users file an admin copied over from Dovecot, clear-text entries allowed."""
    srv = Server(str(tmp_path_factory.mktemp("migrated")), extra_config="[auth]\ncleartext_passwords = true\n")
    srv.start()
    lines = "".join(f"{user}@example.test:{stored}:5000:5000::/var/vmail/{user}::\n"
                    for user, stored in DOVECOT_USERS.items())
    with open(os.path.join(srv.data_dir, "users"), "w", encoding="utf-8") as f:
        f.write(lines)
    yield srv
    srv.stop()


def login_everywhere(server: Server) -> None:
    """Each migrated user logs in over one of the three protocols, with the password Dovecot had."""
    for user in ("crypt", "kdf"):
        with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30) as m:
            m._encoding = "utf-8"  # imaplib sends LOGIN as ASCII otherwise
            assert m.login(f"{user}@example.test", PASSWORD)[0] == "OK"
    for user in ("blowfish", "clear"):
        p = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=server.tls(), timeout=30)
        p.encoding = "utf-8"
        p.user(f"{user}@example.test")
        assert p.pass_(PASSWORD).startswith(b"+OK")
        p.quit()
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=server.tls(), timeout=30) as s:
        s.ehlo()
        response = base64.b64encode(b"\0salted@example.test\0" + PASSWORD.encode()).decode()
        assert s.docmd("AUTH", "PLAIN " + response)[0] == 235  # smtplib.login() sends ASCII only


def stored_schemes(server: Server) -> dict[str, str]:
    with open(os.path.join(server.data_dir, "users"), encoding="utf-8") as f:
        return {line.split("@")[0]: line.split(":")[1].partition("}")[0] + "}" for line in f if line.strip()}


def test_dovecot_users_keep_their_passwords_and_are_upgraded(migrated):
    login_everywhere(migrated)
    deadline = time.monotonic() + 30
    while set(stored_schemes(migrated).values()) != {"{ARGON2ID}"} and time.monotonic() < deadline:
        time.sleep(0.1)  # the upgrade runs after the login was answered
    assert stored_schemes(migrated) == {user: "{ARGON2ID}" for user in DOVECOT_USERS}
    with open(os.path.join(migrated.data_dir, "users"), encoding="utf-8") as f:
        assert all(line.endswith(":5000:5000::/var/vmail/" + line.split("@")[0] + "::\n") for line in f)
    login_everywhere(migrated)  # the same passwords, now against Argon2id
    log = migrated.log()
    assert "auth.cleartext_passwords is on" in log
    for user, stored in DOVECOT_USERS.items():
        scheme = stored[1:].partition("}")[0]
        assert f"upgraded the password hash of {user}@example.test from {scheme} to ARGON2ID" in log


def test_the_cli_edits_the_running_servers_users_from_anywhere(migrated, tmp_path):
    """``mailsrv --config FILE user add ... --password-stdin`` (the contract), run from another directory."""
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    done = mailsrv_cli(migrated.config, "user", "add", "new@example.test", "--password-stdin", stdin="pw\n",
                       cwd=str(elsewhere))
    assert (done.returncode, done.stdout) == (0, f"added new@example.test ({migrated.data_dir}/users)\n")
    with imaplib.IMAP4_SSL("127.0.0.1", migrated.ports["imaps"], ssl_context=migrated.tls(), timeout=30) as m:
        assert m.login("new@example.test", "pw")[0] == "OK"


@pytest.mark.skipif(os.path.exists(SYSTEM_CONFIG), reason=f"{SYSTEM_CONFIG} exists here: the CLI would use it")
def test_without_a_configuration_the_cli_creates_nothing_in_the_current_directory(tmp_path):
    """Issue 6: ``cd ~ && mailsrv user add dave@... --password-stdin`` made ``~/mailsrv-data``."""
    done = mailsrv_cli(None, "user", "add", "dave@example.test", "--password-stdin", stdin="pw\n", cwd=str(tmp_path))
    assert done.returncode == 1 and f"no data dir at {tmp_path}/mailsrv-data" in done.stderr
    assert os.listdir(tmp_path) == []

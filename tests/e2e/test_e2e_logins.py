"""Failed logins read one way in the log, whatever the protocol (issue 6, item 8).

Each failure is made the way a client makes it, over TLS; the log lines
must all match the regex of ``etc/fail2ban/filter.d/mailsrv.conf`` (the filter the
README tells admins to install), naming the client's address.
"""

from __future__ import annotations

import base64
import configparser
import imaplib
import os
import poplib
import re
import shutil
import smtplib
import subprocess

import pytest

from twistd_server import REPO, Server

FILTER = os.path.join(REPO, "etc", "fail2ban", "filter.d", "mailsrv.conf")
PASSWORD = "right password"
WRONG = "wrong password"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    # No throttle delay: this module is about the log lines, tests/e2e/test_attack_logins.py about the throttle.
    srv = Server(str(tmp_path_factory.mktemp("logins")), extra_config="[auth]\nthrottle_delay = 0\n")
    srv.start()
    srv.add_user("alice@example.test", PASSWORD)
    yield srv
    srv.stop()


def failregex() -> re.Pattern[str]:
    """The filter's regex, with fail2ban's ``<HOST>`` as a named group."""
    parser = configparser.RawConfigParser()
    parser.read(FILTER)
    return re.compile(parser["Definition"]["failregex"].replace("<HOST>", r"(?P<host>[0-9A-Fa-f.:]+)"))


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def fail_everywhere(server: Server) -> list[str]:
    """One failed login per protocol and mechanism; the replies the server gave."""
    tls, replies = server.tls(), []
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=tls, timeout=30) as s:
        s.ehlo()
        replies.append(s.docmd("AUTH", "PLAIN " + plain("alice@example.test", WRONG)))
        replies.append(s.docmd("AUTH", "PLAIN " + plain('a "b" c@example.test', WRONG)))  # spaces, quotes
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as s:
        s.starttls(context=tls)
        s.ehlo()
        s.docmd("AUTH", "LOGIN " + base64.b64encode(b"alice@example.test").decode())
        replies.append(s.docmd(base64.b64encode(WRONG.encode()).decode()))
    p = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=tls, timeout=30)
    p.user("alice@example.test")
    with pytest.raises(poplib.error_proto) as e:
        p.pass_(WRONG)
    replies.append(e.value.args[0])
    p.quit()
    p = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    p.stls(context=tls)
    with pytest.raises(poplib.error_proto) as e:
        p._shortcmd("AUTH PLAIN " + plain("alice@example.test", WRONG))
    replies.append(e.value.args[0])
    p.quit()
    with imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=tls, timeout=30) as m:
        for user in ("alice@example.test", r'"x \"y\"@example.test"'):  # imaplib quotes only the password
            with pytest.raises(imaplib.IMAP4.error) as e:
                m.login(user, WRONG)
            replies.append(e.value.args[0])
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as m:
        m.starttls(ssl_context=tls)
        with pytest.raises(imaplib.IMAP4.error) as e:
            m.authenticate("PLAIN", lambda _: f"\0alice@example.test\0{WRONG}".encode())
        replies.append(e.value.args[0])
    return [str(reply) for reply in replies]


@pytest.fixture(scope="module")
def replies(server):
    """The failed logins, made once for the module, then one success."""
    made = fail_everywhere(server)
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=server.tls(), timeout=30) as s:
        s.login("alice@example.test", PASSWORD)  # a success is not a failure
    return made


def test_failed_logins_of_every_protocol_match_the_documented_filter(server, replies):
    assert [r for r in replies if "535" in r and "5.7.8" in r] == replies[:3]  # SMTP
    assert all("-ERR [AUTH]" in r for r in replies[3:5])  # POP3, RFC 3206
    assert all("[AUTHENTICATIONFAILED]" in r for r in replies[5:]), replies  # IMAP, RFC 5530
    regex = failregex()
    lines = [line for line in server.log().splitlines() if "login " in line]
    # fail2ban cuts the timestamp off before it applies the regex
    matched = [m for m in (regex.search(line.split(" ", 1)[1]) for line in lines) if m]
    assert len(matched) == len(replies), "\n".join(lines)
    assert {m["host"] for m in matched} == {"127.0.0.1"}
    protocols = sorted(re.search(r"protocol=(\S+)", m.string)[1] for m in matched)
    assert protocols == ["imap"] * 3 + ["pop3"] * 2 + ["smtp"] * 3


@pytest.mark.skipif(shutil.which("fail2ban-regex") is None, reason="fail2ban (Debian: fail2ban) is not installed")
def test_fail2ban_itself_counts_every_failure(server, replies):
    done = subprocess.run(["fail2ban-regex", server.logfile, FILTER], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^Failregex: {len(replies)} total$", done.stdout, re.M), done.stdout

"""End to end: the real ``twistd mailsrv`` driven by smtplib, poplib and imaplib.

Each test is what a user or a remote server does: send over SMTP, read back
byte-exact over POP3 and IMAP, all over verified TLS.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import uuid
import warnings

import pytest

import attack
from twistd_server import HOSTNAME, Server, env, mailsrv_cli, twistd

PASSWORD = "correct horse battery staple"
USERS = ["alice", "bob", "carol", "dave", "erin", "frank", "grace"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")))
    srv.start()
    for user in USERS:
        srv.add_user(f"{user}@example.test", PASSWORD)
    yield srv
    srv.stop()


def message(subject: str, body: bytes = b"Hello.\r\n", author: str = "Sender <sender@remote.test>") -> bytes:
    return (
        f"From: {author}\r\n".encode() + b"To: someone@example.test\r\n"
        + f"Subject: {subject}\r\nMessage-ID: <{uuid.uuid4()}@remote.test>\r\n".encode()
        + b"Date: Sun, 22 Nov 2026 10:00:00 +0000\r\n\r\n"
        + body
    )


def send(server: Server, rcpts: list[str], data: bytes, sender: str = "sender@remote.test") -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        s.ehlo("client.remote.test")
        refused = s.sendmail(sender, rcpts, data)
        assert refused == {}


def imap(server: Server, user: str) -> imaplib.IMAP4_SSL:
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    conn.login(f"{user}@example.test", PASSWORD)
    return conn


def pop(server: Server, user: str) -> poplib.POP3_SSL:
    conn = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=server.tls(), timeout=30)
    conn.user(f"{user}@example.test")
    conn.pass_(PASSWORD)
    return conn


def strip_trace(data: bytes) -> bytes:
    """The message as the sender wrote it: without our Return-Path/Received lines."""
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = re.split(rb"\r\n(?![ \t])", head)
    kept = [line for line in lines if not line.lower().startswith((b"return-path:", b"received:"))]
    return b"\r\n".join(kept) + sep + body


def test_smtp_to_pop3_and_imap_byte_exact(server):
    # Lines stay under 2048 octets: poplib refuses longer ones.
    body = b".leading dot\r\n..two dots\r\n.\r\nx" + b"y" * 2000 + b"\r\n\xc3\xa9 8bit\r\nbare CR\r\r\n\r\r\n.\r\r\n"
    data = message("byte exact", body)
    send(server, ["alice@example.test"], data)
    p = pop(server, "alice")
    count, _ = p.stat()
    assert count == 1
    resp, lines, octets = p.retr(1)
    popped = b"\r\n".join(lines) + b"\r\n"
    assert strip_trace(popped) == data
    assert octets == len(popped)
    p.quit()
    m = imap(server, "alice")
    m.select("INBOX")
    typ, fetched = m.fetch("1", "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    size = int(re.search(rb"RFC822.SIZE (\d+)", fetched[0][0]).group(1))
    raw = fetched[0][1]
    assert size == len(raw)
    assert raw == popped
    assert strip_trace(raw) == data
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"Return-Path: <sender@remote.test>\r\nReceived: from client.remote.test")
    assert f"by {HOSTNAME}".encode() in head and b"ESMTPS" in head
    m.logout()


def test_pop3_stls_and_plain_refusal(server):
    send(server, ["bob@example.test"], message("for stls"))
    p = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    assert "STLS" in p.capa()
    with pytest.raises(poplib.error_proto):
        p.user("bob@example.test")
        p.pass_(PASSWORD)
    p.stls(context=server.tls())
    p.user("bob@example.test")
    p.pass_(PASSWORD)
    assert p.stat()[0] == 1
    p.quit()


def test_pop3_dele_takes_effect_at_quit_only(server):
    for i in range(2):
        send(server, ["carol@example.test"], message(f"dele {i}"))
    p = pop(server, "carol")
    uidls = p.uidl()[1]
    p.dele(1)
    p.file.close()  # dropped without QUIT: nothing deleted
    p.sock.close()
    p = pop(server, "carol")
    assert p.uidl()[1] == uidls
    p.dele(1)
    p.quit()
    p = pop(server, "carol")
    assert p.uidl()[1] == [b"1 " + uidls[1].split()[1]]
    p.quit()


def test_imap_starttls_logindisabled_and_search(server):
    send(server, ["dave@example.test"], message("needle in haystack"))
    send(server, ["dave@example.test"], message("other"))
    m = imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30)
    assert "LOGINDISABLED" in m.capabilities and "STARTTLS" in m.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        m.login("dave@example.test", PASSWORD)
    m.starttls(ssl_context=server.tls())
    assert "LOGINDISABLED" not in m.capabilities
    m.login("dave@example.test", PASSWORD)
    typ, data = m.select("INBOX")
    assert (typ, data) == ("OK", [b"2"])
    assert m.untagged_responses.get("UIDNEXT") == [b"3"]
    typ, data = m.search(None, "SUBJECT", '"needle"')
    assert data == [b"1"]
    typ, data = m.fetch("1", "(BODY.PEEK[]<0.10>)")
    assert data[0][1] == b"Return-Pat"
    m.logout()


def test_submission_auth_only_after_tls_then_delivers(server):
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as s:
        s.ehlo()
        assert not s.has_extn("auth")
        with pytest.raises(smtplib.SMTPException):
            s.login("erin@example.test", PASSWORD)
        s.starttls(context=server.tls())
        s.ehlo()
        assert "PLAIN" in s.esmtp_features["auth"]
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("erin@example.test", "wrong")
        assert e.value.smtp_code == 535
        s.login("erin@example.test", PASSWORD)
        s.sendmail("erin@example.test", ["frank@example.test"], message("via 587", author="erin@example.test"))
        # A logged-in user may send anywhere: remote mail goes into the queue (no MX answers here).
        s.sendmail("erin@example.test", ["someone@remote.test"], message("remote", author="erin@example.test"))
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=server.tls(), timeout=30) as s:
        s.login("erin@example.test", PASSWORD)
        s.sendmail("erin@example.test", ["frank@example.test"], message("via 465", author="erin@example.test"))
    m = imap(server, "frank")
    assert m.select("INBOX") == ("OK", [b"2"])
    m.logout()
    assert "erin@example.test" in server.log()
    queued = mailsrv_cli(server.config, "queue", "list")
    assert queued.returncode == 0 and "someone@remote.test" in queued.stdout, queued


def test_submission_sends_only_as_the_login_and_completes_the_header(server):
    """Issue 6: any user could send as anyone, and nothing named them.  Now the
    envelope sender and From: must be the login's (an alias delivering to
    them, or what the senders file grants, counts), the Received header and
    the log name the login, and a missing Message-ID and Date are added."""
    server.add_user("henry@example.test", PASSWORD)
    server.add_user("irene@example.test", PASSWORD)
    added = mailsrv_cli(server.config, "alias", "add", "sales@example.test", "henry@example.test")
    assert added.returncode == 0, added.stderr
    with open(os.path.join(server.data_dir, "senders"), "w") as f:
        f.write("henry@example.test: henry@remote.test\n")
    plain = b"Subject: no id, no date\r\n\r\nHello.\r\n"
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as s:
        s.starttls(context=server.tls())
        s.login("henry@example.test", PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            s.sendmail("irene@example.test", ["irene@example.test"], b"From: irene@example.test\r\n" + plain)
        assert (refused.value.smtp_code, refused.value.smtp_error[:6]) == (553, b"5.7.1 ")
        with pytest.raises(smtplib.SMTPDataError) as refused:
            s.sendmail("henry@example.test", ["irene@example.test"], b"From: The CEO <ceo@example.test>\r\n" + plain)
        assert (refused.value.smtp_code, refused.value.smtp_error[:6]) == (550, b"5.7.1 ")
        s.sendmail("sales@example.test", ["irene@example.test"], b"From: Sales <sales@example.test>\r\n" + plain)
        s.sendmail("henry@remote.test", ["irene@example.test"], b"From: henry@remote.test\r\n" + plain)
    m = imap(server, "irene")
    m.select("INBOX")
    typ, fetched = m.fetch("1:*", "(BODY.PEEK[HEADER])")
    assert typ == "OK"
    heads = [item[1] for item in fetched if isinstance(item, tuple)]
    assert len(heads) == 2
    for head, sender in zip(heads, (b"sales@example.test", b"henry@remote.test")):
        assert head.startswith(b"Return-Path: <" + sender + b">\r\n"), head
        assert b"\r\n\t(Authenticated sender: henry@example.test)\r\n" in head
        assert b" with ESMTPSA id " in head
        assert re.search(rb"\r\nMessage-ID: <[^>]+@" + HOSTNAME.encode() + rb">\r\nDate: [^\r]+\+0000\r\n", head), head
    m.logout()
    log = server.log()
    assert re.search(r"transaction 250: kind=submission \S+ \S+ user=henry@example\.test sender=sales@example\.test ", log)
    assert re.search(r"rejection mail: kind=submission \S+ subject=irene@example\.test reply=\"553 5\.7\.1 ", log)


def test_no_open_relay_and_unknown_user(server):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.ehlo("relay.test")
        assert not s.has_extn("auth")
        s.mail("spammer@remote.test")
        for rcpt in ("victim@remote.test", "victim%remote.test@example.test", "@example.test:victim@remote.test",
                     '"victim@remote.test"@example.test', "remote.test!victim@example.test"):
            code, _ = s.rcpt(rcpt)
            assert code >= 500, rcpt
        code, msg = s.rcpt("nobody@example.test")
        assert code == 550 and msg.startswith(b"5.1.1")
        code, _ = s.rcpt("postmaster@other.test")
        assert code == 250


def test_concurrent_imap_sessions_see_each_others_changes(server):
    for i in range(3):
        send(server, ["grace@example.test"], message(f"shared {i}"))
    a, b = imap(server, "grace"), imap(server, "grace")
    a.select("INBOX")
    b.select("INBOX")
    a.store("2", "+FLAGS", "(\\Deleted)")
    a.expunge()
    typ, _ = b.noop()
    assert b.untagged_responses.get("EXPUNGE") == [b"2"]
    assert b.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1].strip() == b"Subject: shared 2"
    a.logout()
    b.logout()


def test_idle_sees_smtp_delivery_within_a_second(server):
    m = imap(server, "alice")
    m.select("INBOX")
    exists = int(m.untagged_responses["EXISTS"][-1])
    tag = m._new_tag().decode()
    m.send(f"{tag} IDLE\r\n".encode())
    assert m.readline().startswith(b"+ ")
    sender = threading.Thread(target=send, args=(server, ["alice@example.test"], message("idle")))
    sender.start()
    sender.join()
    m.sock.settimeout(1.0)
    started = time.monotonic()
    line = m.readline()
    assert line == f"* {exists + 1} EXISTS\r\n".encode()
    assert time.monotonic() - started < 1.0
    m.sock.settimeout(30)
    m.send(b"DONE\r\n")
    line = m.readline()
    while line.startswith(b"* "):
        line = m.readline()
    assert line.startswith(tag.encode() + b" OK")
    m.logout()


def test_notify_hears_smtp_delivery_and_pop3_deletes_in_a_mailbox_not_selected(server):
    """RFC 5465 over the wire: no command runs, yet STATUS comes for INBOX while Drafts is selected."""
    m = imap(server, "erin")
    m.select("Drafts")
    typ, data = m.xatom("NOTIFY", "SET (personal (MessageNew MessageExpunge))")
    assert typ == "OK", data
    m.sock.settimeout(5.0)

    def status() -> bytes:
        line = m.readline()
        assert line.startswith(b'* STATUS "INBOX" '), line
        return line

    send(server, ["erin@example.test"], message("notify"))
    assert status() == b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2 UNSEEN 1)\r\n'
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=server.tls(), timeout=30)
    pop.user("erin@example.test")
    pop.pass_(PASSWORD)
    pop.dele(1)
    pop.quit()
    assert status() == b'* STATUS "INBOX" (MESSAGES 0 UIDNEXT 2 UNSEEN 0)\r\n'
    m.sock.settimeout(30)
    m.logout()


#: (listener, lines sent and answered first, hostile payload).  Every payload
#: must be answered, or the connection closed, within HOSTILE_BOUND seconds.
HOSTILE_INPUTS = [
    ("smtp", [b"EHLO x\r\n"], b"A" * 200_000 + b"\r\n"),
    ("smtp", [], b"\x00\xff\xfe\r\nMAIL FROM:<\x00>\r\n"),
    ("smtp", [b"EHLO x\r\n"], b"X" * 300_000),  # no CRLF ever comes: an error at once, not silence
    ("pop3", [], b"USER " + b"a" * 100_000 + b"\r\n"),
    ("pop3", [], b"\x00\x00\r\nRETR 0\r\n"),
    ("imap", [], b"a1 LOGIN " + b"x" * 100_000 + b"\r\n"),
    ("imap", [], b"\xff\xfe\r\n"),
    # After login, so that the literal limit is what answers, not the login check.
    ("imaps", [f'a0 LOGIN alice@example.test "{PASSWORD}"\r\n'.encode()], b"a2 APPEND INBOX {999999999999}\r\n"),
]
HOSTILE_BOUND = 10.0


@pytest.mark.parametrize("kind, setup, payload", HOSTILE_INPUTS,
                         ids=[f"{kind}-{i}" for i, (kind, _, _) in enumerate(HOSTILE_INPUTS)])
def test_hostile_input_is_answered_or_closed_in_time(server, kind, setup, payload):
    """A reply or a close within the bound; a timeout fails (it is a hang), a traceback fails.

    The oversized APPEND literal must be refused before the ``+``
    continuation, so the client never starts sending 1 TB.
    """
    sock = socket.create_connection(("127.0.0.1", server.ports[kind]), timeout=HOSTILE_BOUND)
    if server.is_implicit(kind):
        sock = server.tls().wrap_socket(sock, server_hostname="127.0.0.1")
    with attack.Conn(sock, HOSTILE_BOUND) as conn:
        conn.readline()
        for line in setup:
            conn.send(line)
            assert conn.answer_or_close(), f"{line[:30]!r} was not answered"
            conn.drain(0.2)
        conn.send(payload)
        try:
            reply = conn.answer_or_close(HOSTILE_BOUND)
        except attack.Silent:
            pytest.fail(f"{kind}: {payload[:30]!r}... ({len(payload)} octets) got no reply and no close "
                        f"within {HOSTILE_BOUND:.0f} s")
    assert b"Traceback" not in reply and b"Server error" not in reply, reply
    if payload.startswith(b"a2 APPEND"):
        assert reply.startswith((b"a2 NO", b"a2 BAD")), reply
    assert server.alive()
    assert not attack.log_problems(server.log())


def test_new_user_works_without_restart_and_uids_survive_restart(server):
    server.add_user("late@example.test", PASSWORD)
    send(server, ["late@example.test"], message("one"))
    send(server, ["late@example.test"], message("two"))
    m = imap(server, "late")
    m.select("INBOX")
    before = m.fetch("1:*", "(UID)")[1]
    validity = m.untagged_responses["UIDVALIDITY"]
    m.store("1", "+FLAGS", "(\\Deleted)")
    m.expunge()
    m.logout()
    server.restart()
    m = imap(server, "late")
    m.select("INBOX")
    assert m.untagged_responses["UIDVALIDITY"] == validity
    assert m.fetch("1:*", "(UID)")[1] == [before[1].replace(b"2 (", b"1 (")]
    m.logout()


def test_bad_config_stops_startup_with_one_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('hostname = "x"\n[limits]\nmax_recipients = "many"\n')
    done = subprocess.run(
        [*twistd(), "-n", "--pidfile=", "mailsrv", "--config", str(config)],
        capture_output=True, text=True, env=env(), timeout=60, cwd=tmp_path,
    )
    assert done.returncode != 0
    output = (done.stdout + done.stderr).strip()
    assert "Traceback" not in output
    assert f"{config}: limits.max_recipients: expected a non-negative integer" in output
    assert not os.path.exists(tmp_path / "mailsrv-data" / "mail")


def tls11_client() -> ssl.SSLContext:
    """A client that offers nothing newer than TLS 1.1."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version, ctx.maximum_version = ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def test_tls_below_1_2_is_refused(server):
    # Control: the same client does complete TLS 1.1 with a server that allows it,
    # so the refusal below is the server's doing, not the client's.
    control = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    control.load_cert_chain(server.cafile, os.path.join(server.data_dir, "tls", "selfsigned-key.pem"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        control.minimum_version = ssl.TLSVersion.TLSv1
    control.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted = threading.Thread(target=lambda: _handshake(control, listener))
        accepted.start()
        with tls11_client().wrap_socket(socket.create_connection(listener.getsockname(), timeout=10)) as s:
            assert s.version() == "TLSv1.1"
        accepted.join()
    for kind in ("imaps", "pop3s", "submissions"):
        with pytest.raises(ssl.SSLError):
            tls11_client().wrap_socket(socket.create_connection(("127.0.0.1", server.ports[kind]), timeout=10))


def _handshake(context: ssl.SSLContext, listener: socket.socket) -> None:
    conn, _ = listener.accept()
    with context.wrap_socket(conn, server_side=True):
        pass


def test_port_in_use_stops_startup_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "taken.toml"
        config.write_text(f'data_dir = "{tmp_path}/data"\n[listen]\nimap = ["tcp:{port}:interface=127.0.0.1"]\n'
                          + "".join(f"{k} = []\n" for k in ("smtp", "submission", "submissions", "pop3", "pop3s", "imaps")))
        done = subprocess.run([*twistd(), "-n", "--pidfile=", "mailsrv", "--config", str(config)],
                              capture_output=True, text=True, env=env(), timeout=60, cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    assert f"mailsrv: cannot listen for imap tcp:{port}:interface=127.0.0.1: Address already in use" in output

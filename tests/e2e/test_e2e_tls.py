"""TLS as a scanner and a reconnecting client see it (issue 6, items 9 and 10).

Every listener, implicit or STARTTLS: only AEAD suites in TLS 1.2, the
session resumed by ticket on a second connection, and STARTTLS offered on
the plain listeners even where plaintext logins are allowed (loopback).
"""

from __future__ import annotations

import imaplib
import poplib
import re
import smtplib
import socket
import ssl

import pytest

from twistd_server import Server

#: Every CBC suite of TLS 1.2 with ECDHE or RSA key exchange, what Twisted offered by default.
CBC_ONLY = (
    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
    "ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA:ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:"
    "AES128-SHA:AES256-SHA:AES128-SHA256:AES256-SHA256:AES128-GCM-SHA256:AES256-GCM-SHA384"
)
#: Mozilla "intermediate" for TLS 1.2, which the server must speak.
AEAD = {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"}
TLS13 = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
KINDS = ["smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("tls")), extra_config="[auth]\nallow_plaintext_auth_on_loopback = true\n")
    srv.start()
    yield srv
    srv.stop()


def client(server: Server, version: ssl.TLSVersion, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = server.tls()
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers)
    return ctx


def read_until(sock: socket.socket | ssl.SSLSocket, end: bytes) -> bytes:
    """Read until the data ends with the regex *end* (a whole reply)."""
    data, pattern = b"", re.compile(end + rb"\Z")
    while not pattern.search(data):
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    return data


#: kind's protocol -> (command that starts TLS, the reply's end) for the plain listeners.
EHLO = (b"EHLO client.test\r\n", rb"(?:\A|\r\n)250 [^\r]*\r\n")
STARTTLS = {
    "smtp": [(None, rb"\r\n"), EHLO, (b"STARTTLS\r\n", rb"220 [^\r]*\r\n")],
    "pop3": [(None, rb"\r\n"), (b"STLS\r\n", rb"\+OK[^\r]*\r\n")],
    "imap": [(None, rb"\r\n"), (b"a STARTTLS\r\n", rb"a OK [^\r]*\r\n")],
}
#: What a client sends once in TLS, so that it reads the server's TLS 1.3 tickets; the reply's end.
INSIDE = {"smtp": EHLO, "pop3": (b"CAPA\r\n", rb"\r\n\.\r\n"), "imap": (b"b NOOP\r\n", rb"b OK [^\r]*\r\n")}


def handshake(server: Server, kind: str, ctx: ssl.SSLContext, session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
    """A TLS connection to *kind*, implicit or after the protocol's STARTTLS, with one exchange inside."""
    protocol = {"submission": "smtp", "submissions": "smtp", "pop3s": "pop3", "imaps": "imap"}.get(kind, kind)
    sock = socket.create_connection(("127.0.0.1", server.ports[kind]), timeout=10)
    try:
        if not server.is_implicit(kind):
            for command, end in STARTTLS[protocol]:
                if command:
                    sock.sendall(command)
                read_until(sock, end)
        tls = ctx.wrap_socket(sock, server_hostname="localhost", session=session)
    except BaseException:
        sock.close()
        raise
    if server.is_implicit(kind):
        read_until(tls, rb"\r\n")  # the greeting
    command, end = INSIDE[protocol]
    tls.sendall(command)
    read_until(tls, end)
    return tls


@pytest.mark.parametrize("kind", KINDS)
def test_tls12_offers_only_aead_suites(server, kind):
    with pytest.raises(ssl.SSLError, match="HANDSHAKE_FAILURE|NO_SHARED_CIPHER|no shared cipher"):
        handshake(server, kind, client(server, ssl.TLSVersion.TLSv1_2, CBC_ONLY)).close()
    with handshake(server, kind, client(server, ssl.TLSVersion.TLSv1_2)) as tls:
        assert tls.version() == "TLSv1.2" and tls.cipher()[0] in AEAD
    for suite in sorted(AEAD):  # each of the profile's suites is taken on its own
        with handshake(server, kind, client(server, ssl.TLSVersion.TLSv1_2, suite)) as tls:
            assert tls.cipher()[0] == suite


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_second_connection_resumes_the_session(server, kind, version):
    ctx = client(server, version)
    with handshake(server, kind, ctx) as first:
        assert not first.session_reused
        session = first.session
        assert first.cipher()[0] in AEAD | TLS13
    with handshake(server, kind, ctx, session) as second:
        assert second.session_reused


def test_starttls_is_offered_where_plaintext_logins_are_allowed(server):
    """Issue 6: with ``allow_plaintext_auth_on_loopback`` IMAP stopped offering STARTTLS; clients that
    insist on TLS (``openssl s_client -starttls imap``, imaplib, testssl) then gave up."""
    with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=10) as m:
        assert "STARTTLS" in m.capabilities and "AUTH=PLAIN" in m.capabilities
        m.starttls(ssl_context=server.tls())
        assert "STARTTLS" not in m.capabilities
    p = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=10)
    assert "STLS" in p.capa() and "USER" in p.capa()
    p.stls(context=server.tls())
    assert "STLS" not in p.capa()
    p.quit()
    for kind in ("smtp", "submission"):
        with smtplib.SMTP("127.0.0.1", server.ports[kind], timeout=10) as s:
            s.ehlo()
            assert s.has_extn("starttls")
            s.starttls(context=server.tls())
            assert not s.ehlo() or not s.has_extn("starttls")

"""``[tls] acme`` on the real twistd against Debian's pebble: issued, served on every TLS port, renewed live.

The server starts on its self-signed certificate, orders one from pebble
(HTTP-01 fetched from its ``http`` listener) and swaps it in; with a renewal
window longer than pebble's certificates live, every check orders again,
so the test sees a renewal too: a new TLS client gets the new certificate
while an IMAP session opened before it keeps working.
"""

from __future__ import annotations

import contextlib
import imaplib
import os
import signal
import socket
import ssl
from collections.abc import Iterator

import pytest

from dns_harness import ThreadedDNS, Zone
from outbound import wait_for
from pebble import PEBBLE, Pebble
from mailsrv.listeners import Kind
from twistd_server import HOSTNAME, Server, free_ports, mailsrv_cli

pytestmark = pytest.mark.skipif(PEBBLE is None, reason="pebble (Debian package 'pebble', ACME test server) is not installed")

PASSWORD = "acme test password"
NAMES = (HOSTNAME, *(f"{prefix}.{domain}" for domain in ("example.test", "other.test")
                     for prefix in ("autoconfig", "autodiscover", "mta-sts")))


@contextlib.contextmanager
def acme_server(root: str, resolvable: tuple[str, ...], renew_days: int = 36500) -> Iterator[tuple[Server, Pebble]]:
    """A pebble and a server ordering from it, whose test DNS resolves the *resolvable* names only.

    The default renewal window is longer than pebble's certificates are
    valid: every check orders anew.
    """
    zone = Zone()
    for name in resolvable:
        zone.add(name, "A", "127.0.0.1")
    with ThreadedDNS(zone) as dns:
        ports = {kind.label: port for kind, port in zip(Kind, free_ports(len(Kind)))}
        pebble = Pebble(os.path.join(root, "pebble"), http_port=ports["http"], dns_port=dns.port)
        pebble.start()
        server = Server(os.path.join(root, "mailsrv"), ports=ports, extra_config=(
            f'[tls]\nacme = true\nacme_directory = "{pebble.directory}"\nacme_email = "admin@example.test"\n'
            f'acme_ca_file = "{pebble.ca_file}"\nacme_renew_days = {renew_days}\nacme_check_interval = 2\n'))
        try:
            server.start()
            server.add_user("alice@example.test", PASSWORD)
            yield server, pebble
        finally:
            server.stop()
            pebble.stop()


@pytest.fixture
def acme(tmp_path):
    with acme_server(str(tmp_path), NAMES) as started:
        yield started


def served_certificate(server: Server, kind: str) -> bytes:
    """The DER certificate the *kind* listener serves now, unverified."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", server.ports[kind]), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=HOSTNAME) as tls:
            return tls.getpeercert(binary_form=True)


def verifies(context: ssl.SSLContext, server: Server, kind: str) -> bool:
    """Whether *kind*'s certificate verifies for the hostname (after STARTTLS on submission)."""
    try:
        with socket.create_connection(("127.0.0.1", server.ports[kind]), timeout=10) as raw:
            if kind == "submission":
                starttls(raw)
            with context.wrap_socket(raw, server_hostname=HOSTNAME):
                return True
    except ssl.SSLCertVerificationError:
        return False


def starttls(sock: socket.socket) -> None:
    """EHLO and STARTTLS by hand: smtplib would check the certificate against "127.0.0.1"."""
    replies = sock.makefile("rb")
    assert replies.readline().startswith(b"220 ")
    sock.sendall(b"EHLO client.example\r\n")
    while not replies.readline().startswith(b"250 "):
        pass
    sock.sendall(b"STARTTLS\r\n")
    assert replies.readline().startswith(b"220 ")


class HostnameIMAP4_SSL(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS to 127.0.0.1, checking the certificate for the server's hostname."""

    def _create_socket(self, timeout):
        raw = socket.create_connection((self.host, self.port), timeout)
        return self.ssl_context.wrap_socket(raw, server_hostname=HOSTNAME)


def test_certificate_issued_by_pebble_and_renewed_without_a_restart(acme):
    server, pebble = acme
    pebbles = ssl.create_default_context(cadata=pebble.issuing_root())
    assert wait_for(lambda: verifies(pebbles, server, "imaps"), timeout=120), server.log() + pebble.output()
    for kind in ("submissions", "pop3s", "imaps", "https"):
        assert verifies(pebbles, server, kind), kind
    for name in NAMES[1:]:  # every name of the certificate is checked by the client
        with socket.create_connection(("127.0.0.1", server.ports["https"]), timeout=10) as raw:
            pebbles.wrap_socket(raw, server_hostname=name).close()
    assert verifies(pebbles, server, "submission")  # STARTTLS listeners serve it too
    assert "ACME: issued a certificate for" in server.log()

    session = HostnameIMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=pebbles, timeout=30)
    session.login("alice@example.test", PASSWORD)
    before = session.sock.getpeercert(binary_form=True)
    assert wait_for(lambda: served_certificate(server, "imaps") != before, timeout=120), server.log()
    assert verifies(pebbles, server, "imaps")
    assert session.noop()[0] == "OK" and session.select("INBOX")[0] == "OK"
    assert session.sock.getpeercert(binary_form=True) == before
    session.logout()
    server.process.send_signal(signal.SIGHUP)  # reloads the certificate: the issued one, not the self-signed
    assert wait_for(lambda: "SIGHUP: reloaded" in server.log(), timeout=30)
    assert verifies(pebbles, server, "imaps")
    files = os.path.join(server.data_dir, "acme")
    assert {name: os.stat(os.path.join(files, name)).st_mode & 0o777 for name in ("account.key", "certificate.pem")} \
        == {"account.key": 0o600, "certificate.pem": 0o600}


def test_selftest_trusts_the_issued_certificate(tmp_path):
    """selftest and dns check look at the file the listeners serve: the issued one, not the self-signed one."""
    with acme_server(str(tmp_path), NAMES, renew_days=30) as (server, pebble):
        pebbles = ssl.create_default_context(cadata=pebble.issuing_root())
        assert wait_for(lambda: verifies(pebbles, server, "imaps"), timeout=120), server.log() + pebble.output()
        done = mailsrv_cli(server.config, "selftest", "--no-dns")
        assert done.returncode == 0, done.stdout + done.stderr
        issued = os.path.join(server.data_dir, "acme", "certificate.pem")
        assert done.stdout.startswith(f"pass  certificate ") and issued in done.stdout.splitlines()[0]
        assert "ACME: issued a certificate for" in server.log()


def test_a_failed_order_is_logged_with_the_cas_error_and_the_server_keeps_serving(tmp_path):
    with acme_server(str(tmp_path), NAMES[:-1]) as (server, pebble):  # the last name does not resolve
        assert wait_for(lambda: "ACME: no certificate from" in server.log(), timeout=120), server.log()
        line = next(line for line in server.log().splitlines() if "ACME: no certificate from" in line)
        assert NAMES[-1] in line and "trying again in 2 s" in line  # backoff capped by acme_check_interval
        assert served_certificate(server, "imaps") == ssl.PEM_cert_to_DER_cert(open(server.cafile).read())
        assert server.alive()

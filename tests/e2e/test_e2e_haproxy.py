"""``haproxy:`` listeners: the PROXY header names the real client, TLS follows it."""

from __future__ import annotations

import imaplib
import socket

import pytest

from twistd_server import Server, free_ports

PROXY = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 25\r\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    smtp, imaps = free_ports(2)
    srv = Server(str(tmp_path_factory.mktemp("haproxy")), ports={"smtp": smtp, "imaps": imaps})
    srv.write_config()
    with open(srv.config) as f:
        text = f.read().replace('["tcp:', '["haproxy:tcp:')
    with open(srv.config, "w") as f:
        f.write(text)
    srv.add_user("alice@example.test", "pw")
    srv.start()
    yield srv
    srv.stop()


class ProxiedIMAP4_SSL(imaplib.IMAP4_SSL):
    """imaplib over implicit TLS, behind a load balancer that sent a PROXY header first."""

    def _create_socket(self, timeout):
        raw = socket.create_connection((self.host, self.port), timeout)
        raw.sendall(PROXY)
        return self.ssl_context.wrap_socket(raw, server_hostname=self.host)


def chat(sock: socket.socket, line: bytes) -> bytes:
    sock.sendall(line)
    return sock.recv(4096)


def test_smtp_behind_proxy_records_the_real_client(server):
    with socket.create_connection(("127.0.0.1", server.ports["smtp"]), timeout=10) as s:
        s.sendall(PROXY)
        assert s.recv(1024).startswith(b"220 ")
        assert chat(s, b"EHLO client.test\r\n").startswith(b"250")
        assert chat(s, b"MAIL FROM:<a@remote.test>\r\n").startswith(b"250")
        assert chat(s, b"RCPT TO:<alice@example.test>\r\n").startswith(b"250")
        assert chat(s, b"DATA\r\n").startswith(b"354")
        assert chat(s, b"Subject: proxied\r\n\r\nhi\r\n.\r\n").startswith(b"250")
    m = ProxiedIMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=10)
    m.login("alice@example.test", "pw")
    m.select("INBOX")
    data = m.fetch("1", "(BODY.PEEK[HEADER])")[1][0][1]
    assert b"Received: from client.test ([203.0.113.7])" in data
    m.logout()
    assert "203.0.113.7" in server.log()

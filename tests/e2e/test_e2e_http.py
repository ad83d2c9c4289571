"""The HTTP listeners of the real twistd, fetched with urllib as clients and scrapers fetch them."""

from __future__ import annotations

import imaplib
import plistlib
import smtplib
import socket
import urllib.error
import urllib.request
from xml.etree import ElementTree

import pytest
from prometheus_client.parser import text_string_to_metric_families

from twistd_server import HOSTNAME, Server

PASSWORD = "http test password"
TOKEN = "e2e-metrics-token"
OUTLOOK = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(str(tmp_path_factory.mktemp("mailsrv")), extra_config=f'[http]\nmetrics_token = "{TOKEN}"\n')
    srv.start()
    srv.add_user("alice@example.test", PASSWORD)
    yield srv
    srv.stop()


def fetch(server: Server, kind: str, path: str, *, host: str | None = None, data: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """Status, content type and body; https verified against the server's generated certificate."""
    scheme = "https" if kind == "https" else "http"
    request = urllib.request.Request(f"{scheme}://127.0.0.1:{server.ports[kind]}{path}", data=data,
                                     headers=dict(headers or {}))
    if host:
        request.add_header("Host", host)
    context = server.tls() if scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()


@pytest.mark.parametrize("kind", ["http", "https"])
def test_thunderbird_autoconfig(server, kind):
    status, ctype, body = fetch(server, kind, "/mail/config-v1.1.xml?emailaddress=alice%40example.test")
    assert (status, ctype) == (200, "application/xml; charset=utf-8")
    provider = ElementTree.fromstring(body).find("emailProvider")
    assert provider.get("id") == "example.test"
    assert {d.text for d in provider.findall("domain")} == {"example.test", "other.test"}
    incoming = {(s.get("type"), int(s.findtext("port")), s.findtext("socketType"))
                for s in provider.findall("incomingServer")}
    assert incoming == {("imap", server.ports["imaps"], "SSL"), ("imap", server.ports["imap"], "STARTTLS"),
                        ("pop3", server.ports["pop3s"], "SSL"), ("pop3", server.ports["pop3"], "STARTTLS")}
    for element in provider.findall("incomingServer") + provider.findall("outgoingServer"):
        assert (element.findtext("hostname"), element.findtext("username")) == (HOSTNAME, "%EMAILADDRESS%")
    outgoing = {(s.get("type"), int(s.findtext("port")), s.findtext("socketType"))
                for s in provider.findall("outgoingServer")}
    assert outgoing == {("smtp", server.ports["submissions"], "SSL"),
                        ("smtp", server.ports["submission"], "STARTTLS")}
    well_known = fetch(server, kind, "/.well-known/autoconfig/mail/config-v1.1.xml", host="autoconfig.other.test")
    assert ElementTree.fromstring(well_known[2]).find("emailProvider").get("id") == "other.test"


def test_outlook_autodiscover(server):
    request = (b'<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">'
               b"<Request><EMailAddress>alice@example.test</EMailAddress></Request></Autodiscover>")
    status, ctype, body = fetch(server, "https", "/autodiscover/autodiscover.xml", data=request,
                                headers={"Content-Type": "text/xml"})
    assert status == 200
    protocols = ElementTree.fromstring(body).findall(f"{{{OUTLOOK}}}Response/{{{OUTLOOK}}}Account/{{{OUTLOOK}}}Protocol")
    found = {(p.findtext(f"{{{OUTLOOK}}}Type"), int(p.findtext(f"{{{OUTLOOK}}}Port"))) for p in protocols}
    assert ("IMAP", server.ports["imaps"]) in found and ("SMTP", server.ports["submissions"]) in found


def test_apple_mobileconfig(server):
    status, ctype, body = fetch(server, "https", "/apple/mailsrv.mobileconfig?emailaddress=alice%40example.test")
    assert (status, ctype) == (200, "application/x-apple-aspen-config")
    (mail,) = plistlib.loads(body)["PayloadContent"]
    assert (mail["EmailAddress"], mail["IncomingMailServerHostName"], mail["IncomingMailServerPortNumber"]) == (
        "alice@example.test", HOSTNAME, server.ports["imaps"])


def test_mta_sts_policy_for_each_local_domain(server):
    for domain in ("example.test", "other.test"):
        status, ctype, body = fetch(server, "https", "/.well-known/mta-sts.txt", host=f"mta-sts.{domain}")
        assert (status, ctype) == (200, "text/plain; charset=utf-8")
        assert body.decode().splitlines() == ["version: STSv1", "mode: testing", f"mx: {HOSTNAME}", "max_age: 604800"]
    assert fetch(server, "https", "/.well-known/mta-sts.txt", host="mta-sts.elsewhere.test")[0] == 404


def test_bad_requests(server):
    assert fetch(server, "http", "/nothing/here")[0] == 404
    assert fetch(server, "http", "/mail/config-v1.1.xml?emailaddress=x")[0] == 400
    assert fetch(server, "http", "/metrics")[0] == 401
    with socket.create_connection(("127.0.0.1", server.ports["http"]), timeout=30) as sock:
        sock.sendall(b"POST /autodiscover/autodiscover.xml HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 413 ")
    assert server.alive()


def samples(body: bytes) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def test_metrics_count_a_login_and_a_delivery(server):
    before = samples(fetch(server, "metrics", "/metrics")[2])
    conn = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=server.tls(), timeout=30)
    conn.login("alice@example.test", PASSWORD)
    during = samples(fetch(server, "metrics", "/metrics")[2])  # the session is open and logged in
    conn.logout()
    handshakes = ("mailsrv_tls_handshakes_total", frozenset({"protocol": "imap", "version": "TLSv1.3"}.items()))
    assert during[handshakes] - before.get(handshakes, 0) == 1  # counted when it happened, not at the end
    assert during[("mailsrv_sessions_logged_in", frozenset({"protocol": "imap", "kind": "imaps"}.items()))] == 1
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], local_hostname="client.remote.test", timeout=30) as s:
        s.starttls(context=server.tls())
        s.sendmail("sender@remote.test", ["alice@example.test"],
                   b"From: sender@remote.test\r\nSubject: counted\r\n\r\nHello.\r\n")
    status, ctype, body = fetch(server, "metrics", "/metrics")
    assert status == 200 and ctype.startswith("text/plain; version=")
    after = samples(body)

    def grew(name: str, **labels: str) -> float:
        key = (name, frozenset(labels.items()))
        return after[key] - before.get(key, 0)

    assert grew("mailsrv_logins_total", protocol="imap", result="ok") == 1
    assert grew("mailsrv_messages_received_total", kind="smtp") == 1
    assert grew("mailsrv_messages_delivered_total", via="local") == 1
    assert grew("mailsrv_connections_total", protocol="imap", kind="imaps") == 1
    assert grew("mailsrv_tls_handshakes_total", protocol="smtp", version="TLSv1.3") == 1  # STARTTLS on port 25
    assert after[("mailsrv_queue_messages", frozenset())] == 0
    # The same text over https with the token.
    assert fetch(server, "https", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

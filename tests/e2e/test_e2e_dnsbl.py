"""The real twistd asks a DNS blocklist about its port 25 clients (``[policy] dnsbl``), over smtplib.

The server trusts no network (``[policy] trusted_networks = []``), so
127.0.0.1 is a client from the internet; the name server on loopback
lists it on bl.test (RFC 5782 2.1: ``1.0.0.127.bl.test`` has an A record).
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess

import pytest

from dns_harness import ThreadedDNS, Zone
from twistd_server import Server

REPO = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir)
FILTER = os.path.join(REPO, "etc", "fail2ban", "filter.d", "mailsrv-dnsbl.conf")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    zone = Zone()
    zone.add("1.0.0.127.bl.test", "A", "127.0.0.2")
    with ThreadedDNS(zone) as dns:
        srv = Server(str(tmp_path_factory.mktemp("dnsbl")), extra_config=(
            '[policy]\ntrusted_networks = []\ndnsbl = ["bl.test=127.0.0.[2..11]", "clean.test"]\n'
            f'[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
        ))
        srv.add_user("alice@example.test", "secret")
        srv.start()
        yield srv
        srv.stop()


def test_a_listed_client_gets_554_at_rcpt_but_reaches_postmaster(server):
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as s:
        s.ehlo("client.example.net")
        assert s.mail("bob@example.net")[0] == 250
        code, text = s.rcpt("alice@example.test")
        assert (code, text) == (554, b"5.7.1 Service unavailable; client [127.0.0.1] blocked using bl.test")
        assert s.rcpt("postmaster@example.test")[0] == 250
    lines = [line for line in server.log().splitlines() if "] dnsbl refused: " in line]
    assert len(lines) == 1 and "client_ip=127.0.0.1 lists=bl.test:127.0.0.2 score=1" in lines[0], lines
    if shutil.which("fail2ban-regex") is None:
        pytest.skip("fail2ban (Debian: fail2ban) is not installed: the filter was not run")
    done = subprocess.run(["fail2ban-regex", server.logfile, FILTER], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^Failregex: 1 total$", done.stdout, re.M), done.stdout

"""``mailsrv dns check`` against the test's DNS on loopback: good, missing and wrong records, each reported so."""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socketserver
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dns_harness import ThreadedDNS, Zone
from mailsrv.cli import main as cli
from mailsrv.config import Config, DeliveryConfig, DNSConfig, PolicyConfig, TLSConfig
from mailsrv.dkim.keys import Algorithm
from mailsrv.ops import dkim as dkim_ops
from mailsrv.ops import dnsrecords
from mailsrv.ops.dnscheck import Status, check

HOST = "mail.example.test"
ADDRESS = "127.0.0.1"


class Greeter(socketserver.ThreadingTCPServer):
    """Says *greeting* to every connection on 127.0.0.1 and hangs up."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, greeting: bytes) -> None:
        self.greeting = greeting
        super().__init__((ADDRESS, 0), _Greet)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _Greet(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(self.server.greeting)


def certificate(tmp_path, *, names: list[str], days: int, signed: bool = True) -> tuple[str, str]:
    """A certificate for *names*, signed by a CA of its own (or self-signed), valid *days* more."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False))
    if signed:
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailsrv test CA")])
        cert = builder.issuer_name(ca_name).sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    else:
        cert = builder.issuer_name(subject).sign(key, hashes.SHA256())
    cert_path, key_path = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


def good_zone(config: Config, leave_out: set[tuple[str, str]] = frozenset()) -> Zone:
    """Every record ``dns records`` asks for, as printed, and the PTR of the address; but *leave_out*'s (name, type)."""
    zone = Zone()
    for record in dnsrecords.records(config, "example.test", [ADDRESS]):
        if (record.name, record.rtype) not in leave_out:
            zone.add(record.name, record.rtype, record.value)
    return zone


@pytest.fixture
def setup(tmp_path):
    """A configuration with an Ed25519 DKIM key (short enough for UDP), a CA certificate, an MX greeter."""
    (tmp_path / "data").mkdir()
    greeter = Greeter(f"220 {HOST} ESMTP mailsrv\r\n".encode())
    cert, key = certificate(tmp_path, names=[HOST], days=60)
    config = Config(hostname=HOST, data_dir=str(tmp_path / "data"), domains=("example.test",),
                    public_addresses=(ADDRESS,), tls=TLSConfig(cert=cert, key=key),
                    delivery=DeliveryConfig(mx_port=greeter.server_address[1]))
    dkim_ops.make_key(config, "example.test", "s1", Algorithm.ED25519)
    yield config, tmp_path
    greeter.shutdown()
    greeter.server_close()


def run_check(config: Config, zone: Zone):
    with ThreadedDNS(zone) as dns:
        config = dataclasses.replace(config, dns=DNSConfig(nameservers=(f"127.0.0.1:{dns.port}",), timeout=2))
        return {f.what: f for f in check(config, "example.test")}


def test_a_domain_set_up_as_printed_passes_every_check(setup):
    config, _ = setup
    findings = run_check(config, good_zone(config))
    assert {what: f.status for what, f in findings.items() if f.status is not Status.OK} == {}
    assert "PTR 127.0.0.1" in findings and "TLS certificate" in findings
    assert len(findings) == len(dnsrecords.records(config, "example.test", [ADDRESS])) + 2  # PTR once, greeting, cert


def test_missing_records_are_reported_with_the_record_to_publish(setup):
    config, _ = setup
    zone = Zone()
    zone.add("example.test", "MX", f"10 {HOST}.")
    zone.add(HOST, "A", ADDRESS)
    findings = run_check(config, zone)
    assert findings["MX example.test."].status is Status.OK
    dmarc = findings["DMARC _dmarc.example.test."]
    assert dmarc.status is Status.MISSING
    assert dmarc.fix == 'publish _dmarc.example.test. IN TXT "v=DMARC1; p=quarantine; rua=mailto:postmaster@example.test"'
    assert findings["DKIM s1._domainkey.example.test."].status is Status.MISSING
    assert findings["PTR 127.0.0.1"].status is Status.MISSING
    assert findings["SRV _imaps._tcp.example.test."].status is Status.MISSING


def test_wrong_records_are_reported_with_what_was_found(setup):
    config, _ = setup
    wrong = good_zone(config, {("example.test.", "MX"), ("example.test.", "TXT"), ("_mta-sts.example.test.", "TXT"),
                               ("s1._domainkey.example.test.", "TXT")})
    wrong.add("example.test", "MX", "10 mx.elsewhere.test.")
    wrong.add("example.test", "TXT", '"v=spf1 +all"')
    wrong.add("_mta-sts.example.test", "TXT", '"v=STSv1; id=old"')
    wrong.add("s1._domainkey.example.test", "TXT", '"v=DKIM1; k=ed25519; p=c29tZW9uZSBlbHNl"')
    findings = run_check(config, wrong)
    mx = findings["MX example.test."]
    assert (mx.status, mx.found, mx.expected) == (Status.WRONG, "10 mx.elsewhere.test.", f"10 {HOST}.")
    assert findings["SPF example.test."].status is Status.WRONG and "+all" in findings["SPF example.test."].fix
    assert findings["MTA-STS _mta-sts.example.test."].status is Status.WRONG
    assert findings["DKIM s1._domainkey.example.test."].status is Status.WRONG


def test_a_ptr_without_the_forward_record_is_not_forward_confirmed(setup):
    config, _ = setup
    zone = good_zone(config, {(f"{HOST}.", "A")})
    finding = run_check(config, zone)["PTR 127.0.0.1"]
    assert finding.status is Status.WRONG and "forward" in finding.fix


def test_another_servers_greeting_and_a_closed_port_are_wrong(setup):
    config, _ = setup
    other = Greeter(b"220 smtp.other.test ESMTP\r\n")
    try:
        config = dataclasses.replace(config, delivery=DeliveryConfig(mx_port=other.server_address[1]))
        found = run_check(config, good_zone(config))
        assert found[f"SMTP greeting of MX {HOST}. on port {other.server_address[1]}"].status is Status.WRONG
    finally:
        other.shutdown()
        other.server_close()


def test_every_mx_host_is_greeted_not_only_the_public_addresses(setup):
    config, _ = setup
    zone = good_zone(config)
    zone.add("example.test", "MX", "20 mx2.example.test.")
    zone.add("mx2.example.test", "A", "127.0.0.2")  # nothing listens there
    zone.add("example.test", "MX", "30 mx3.example.test.")  # no address at all
    findings = run_check(config, zone)
    port = config.delivery.mx_port
    assert findings[f"SMTP greeting of MX {HOST}. on port {port}"].status is Status.OK
    second = findings[f"SMTP greeting of MX mx2.example.test. on port {port}"]
    assert second.status is Status.WRONG and second.found.startswith(f"[127.0.0.2]:{port}: ")
    third = findings[f"SMTP greeting of MX mx3.example.test. on port {port}"]
    assert (third.status, third.found) == (Status.WRONG, "mx3.example.test. has no address")


def test_before_the_mx_is_published_the_public_addresses_are_greeted(setup):
    config, _ = setup
    findings = run_check(config, good_zone(config, {("example.test.", "MX")}))
    assert findings["MX example.test."].status is Status.MISSING
    assert findings[f"SMTP greeting on port {config.delivery.mx_port}"].status is Status.OK


@pytest.mark.parametrize("spf", ['"v=spf1 a -all"', '"v=spf1 ip4:192.0.2.9 -all"', '"v=spf1 include:nowhere.test -all"'])
def test_an_spf_record_that_does_not_pass_our_address_is_wrong(setup, spf):
    config, _ = setup
    zone = good_zone(config, {("example.test.", "TXT")})
    zone.add("example.test", "TXT", spf)
    finding = run_check(config, zone)["SPF example.test."]
    assert finding.status is Status.WRONG, finding
    assert f"for {ADDRESS})" in finding.found and "v=spf1 mx -all" in finding.fix


def test_spf_naming_our_address_passes(setup):
    config, _ = setup
    zone = good_zone(config, {("example.test.", "TXT")})
    zone.add("example.test", "TXT", f'"v=spf1 ip4:{ADDRESS} -all"')
    assert run_check(config, zone)["SPF example.test."].status is Status.OK


HTTPS_NAMES = [f"{prefix}.example.test" for prefix in ("mta-sts", "autoconfig", "autodiscover")]


@pytest.mark.parametrize("names, status", [
    ([HOST], Status.WRONG),
    ([HOST, *HTTPS_NAMES], Status.OK),
    ([HOST, "*.example.test"], Status.OK),
])
def test_with_our_https_listener_the_certificate_names_the_https_hosts(setup, names, status):
    config, tmp_path = setup
    cert, key = certificate(tmp_path, names=names, days=60)
    config = dataclasses.replace(config, tls=TLSConfig(cert=cert, key=key),
                                 listen=dataclasses.replace(config.listen, https=("tcp:443",)))
    finding = run_check(config, good_zone(config))["TLS certificate"]
    assert finding.status is status, finding
    if status is Status.WRONG:
        assert finding.fix.startswith("get a certificate naming mta-sts.example.test, autoconfig.example.test, "
                                      "autodiscover.example.test ")


def test_the_acme_certificate_once_issued_is_the_one_checked(setup):
    config, tmp_path = setup
    cert, key = certificate(tmp_path, names=["self.example.test"], days=60, signed=False)
    config = dataclasses.replace(config, tls=TLSConfig(cert=cert, key=key, acme=True,
                                                       acme_directory="https://ca.example.test/dir"))
    assert run_check(config, good_zone(config))["TLS certificate"].status is Status.WRONG
    issued_cert, issued_key = certificate(tmp_path, names=[HOST], days=60)
    os.makedirs(config.acme_dir)
    with open(os.path.join(config.acme_dir, "certificate.pem"), "w") as f:  # key then chain, as ACME writes it
        f.write(open(issued_key).read() + open(issued_cert).read())
    finding = run_check(config, good_zone(config))["TLS certificate"]
    assert finding.status is Status.OK and finding.found.startswith(os.path.join(config.acme_dir, "certificate.pem"))


@pytest.mark.parametrize("names, days, signed, problem", [
    (["other.test"], 60, True, "naming"),
    ([HOST], 60, False, "from a CA"),
    ([HOST], 5, True, "renew"),
])
def test_certificate_problems(setup, names, days, signed, problem):
    config, tmp_path = setup
    cert, key = certificate(tmp_path, names=names, days=days, signed=signed)
    config = dataclasses.replace(config, tls=TLSConfig(cert=cert, key=key))
    finding = run_check(config, good_zone(config))["TLS certificate"]
    assert finding.status is Status.WRONG and problem in finding.fix


def test_the_cli_exits_non_zero_and_prints_json(setup, capsys):
    config, tmp_path = setup
    with ThreadedDNS(Zone()) as dns:
        path = tmp_path / "mailsrv.toml"
        path.write_text(f'hostname = "{HOST}"\ndata_dir = "{config.data_dir}"\ndomains = ["example.test"]\n'
                        f'public_addresses = ["{ADDRESS}"]\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
                        f'[delivery]\nmx_port = {config.delivery.mx_port}\n')
        code = cli.main(["--config", str(path), "dns", "check", "example.test", "--json"])
    out, err = capsys.readouterr()
    assert code == 1 and "checks of example.test failed" in err
    findings = json.loads(out)
    assert {f["what"]: f["status"] for f in findings}["MX example.test."] == "missing"


def with_lists(config: Config, *dnsbl: str, dnswl: tuple[str, ...] = ()) -> Config:
    return dataclasses.replace(config, policy=PolicyConfig(dnsbl=dnsbl, dnswl=dnswl))


def test_a_public_address_on_a_blocklist_is_listed(setup):
    config, _ = setup
    config = with_lists(config, "bl.example", "clean.example", "zen.example=127.0.0.[2..11]", dnswl=("wl.example",))
    zone = good_zone(config)
    zone.add("1.0.0.127.bl.example", "A", "127.0.0.4")
    zone.add("1.0.0.127.zen.example", "A", "127.255.255.254")  # "you may not ask": the filter leaves it out
    zone.add("1.0.0.127.wl.example", "A", "127.0.0.2")
    findings = run_check(config, zone)
    listed = findings["DNSBL bl.example 127.0.0.1"]
    assert (listed.status, listed.found) == (Status.LISTED, "1.0.0.127.bl.example. IN A 127.0.0.4")
    assert "delisting" in listed.fix
    assert findings["DNSBL clean.example 127.0.0.1"].status is Status.OK
    assert findings["DNSBL zen.example 127.0.0.1"].status is Status.OK
    assert not any(what.startswith("DNSBL wl.example") for what in findings)


def test_the_domain_on_a_domain_blocklist_is_listed(setup):
    config, _ = setup
    config = with_lists(config, "dbl.example=127.0.1.[2..99]")
    zone = good_zone(config)
    zone.add("example.test.dbl.example", "A", "127.0.1.2")  # RFC 5782 2.3: a domain list names the domain
    findings = run_check(config, zone)
    assert findings["DNSBL dbl.example example.test"].status is Status.LISTED
    assert findings["DNSBL dbl.example 127.0.0.1"].status is Status.OK


def test_a_blocklist_that_does_not_answer_is_an_error(setup):
    config, _ = setup
    config = with_lists(config, "bl.example")
    zone = good_zone(config)
    zone.fail("1.0.0.127.bl.example")
    assert run_check(config, zone)["DNSBL bl.example 127.0.0.1"].status is Status.ERROR


def test_the_cli_exits_non_zero_when_listed(setup, capsys):
    config, tmp_path = setup
    zone = good_zone(config)
    zone.add("1.0.0.127.bl.example", "A", "127.0.0.2")
    with ThreadedDNS(zone) as dns:
        path = tmp_path / "mailsrv.toml"
        path.write_text(f'hostname = "{HOST}"\ndata_dir = "{config.data_dir}"\ndomains = ["example.test"]\n'
                        f'public_addresses = ["{ADDRESS}"]\n[dns]\nnameservers = ["127.0.0.1:{dns.port}"]\ntimeout = 2\n'
                        f'[delivery]\nmx_port = {config.delivery.mx_port}\n'
                        f'[tls]\ncert = "{config.tls.cert}"\nkey = "{config.tls.key}"\n'
                        '[policy]\ndnsbl = ["bl.example"]\n')
        code = cli.main(["--config", str(path), "dns", "check", "example.test"])
    out, err = capsys.readouterr()
    assert code == 1 and "1 of " in err
    assert "listed   DNSBL bl.example 127.0.0.1\n" in out

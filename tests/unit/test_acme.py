"""ACME without a CA: the renewal decision on a fake clock, the stored files and their lock, the service's
schedule (retries, another process ordering, the swap), the challenge tokens, the config keys."""

from __future__ import annotations

import datetime
import os
import dataclasses
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet import defer, task
from twisted.logger import LogLevel, globalLogPublisher

from mailsrv import config as configuration, tls
from mailsrv.acme.challenge import ChallengeTokens, HandOver
from mailsrv.acme.files import AcmeFiles
from mailsrv.acme.order import Stopped, describe
from mailsrv.acme.renewal import renewal_reason, retry_delay
from mailsrv.acme.service import AcmeService, Certificates, Outcome
from mailsrv.workers import InlineExecutor

NOW = datetime.datetime(2026, 12, 1, 12, 0, tzinfo=datetime.timezone.utc)
DAY = datetime.timedelta(days=1)
NAMES = ("mail.example.test", "autoconfig.example.test", "autodiscover.example.test", "mta-sts.example.test")


def issue(*names: str, not_after: datetime.datetime = NOW + 90 * DAY) -> tuple[bytes, bytes]:
    """A key and a self-signed certificate for *names*, both PEM, valid until *not_after*."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(not_after - 90 * DAY).not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def stored(*names: str, **kw) -> bytes:
    key, chain = issue(*names, **kw)
    return key + chain


def acme_config(data_dir: str, **tls_keys) -> configuration.Config:
    return configuration.Config(
        hostname="mail.example.test", data_dir=data_dir, domains=("example.test",),
        listen=configuration.ListenConfig(http=("tcp:80",)),
        tls=configuration.TLSConfig(acme=True, acme_directory="https://ca.example/dir", acme_renew_days=30, **tls_keys),
    )


# -- the renewal decision ------------------------------------------------------------------------------

def test_no_certificate_is_ordered():
    assert renewal_reason(None, NAMES, NOW, 30 * DAY) == "there is no certificate yet"


def test_a_certificate_for_the_names_far_from_expiry_will_do():
    assert renewal_reason(stored(*NAMES), NAMES, NOW, 30 * DAY) is None


def test_renewed_within_the_window_before_expiry():
    pem = stored(*NAMES, not_after=NOW + 30 * DAY + datetime.timedelta(minutes=1))
    assert renewal_reason(pem, NAMES, NOW, 30 * DAY) is None
    later = NOW + datetime.timedelta(minutes=1)
    assert renewal_reason(pem, NAMES, later, 30 * DAY) == "the certificate expires 2026-12-31 12:01 UTC"


def test_a_name_added_to_the_config_is_ordered():
    pem = stored(*NAMES[:3])
    assert renewal_reason(pem, NAMES, NOW, 30 * DAY) == "the certificate lacks mta-sts.example.test"


def test_an_unreadable_file_is_ordered_anew():
    assert renewal_reason(b"-----BEGIN PRIVATE KEY-----\n...", NAMES, NOW, 30 * DAY) \
        == "the stored certificate cannot be read"
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert renewal_reason(broken, NAMES, NOW, 30 * DAY) == "the stored certificate cannot be read"


def test_retries_double_up_to_the_check_interval():
    assert [retry_delay(n, 600) for n in range(1, 6)] == [60, 120, 240, 480, 600]


# -- the files -----------------------------------------------------------------------------------------

def test_account_key_made_once_0600(tmp_path):
    files = AcmeFiles(str(tmp_path / "acme"))
    with files.ordering():
        first = files.account_key()
        assert files.account_key() == first
    assert first.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert os.stat(files.account_key_path).st_mode & 0o777 == 0o600


def test_certificate_and_key_replaced_in_one_file_0600(tmp_path):
    files = AcmeFiles(str(tmp_path / "acme"))
    assert files.certificate() is None
    with files.ordering():
        files.store_certificate(*issue(*NAMES))
        key, chain = issue(*NAMES)
        files.store_certificate(key, chain)
    assert files.certificate() == key + chain
    assert os.stat(files.certificate_path).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(files.directory)) == ["certificate.pem", "certificate.pem.lock"]  # no temp file left


def test_one_process_orders_at_a_time(tmp_path):
    mine, theirs = AcmeFiles(str(tmp_path / "acme")), AcmeFiles(str(tmp_path / "acme"))
    with theirs.ordering():
        with pytest.raises(BlockingIOError):
            with mine.ordering():
                pass
    with mine.ordering():
        pass


def test_the_issued_certificate_serves_once_there_and_acme_on(tmp_path):
    config = acme_config(str(tmp_path))
    assert tls.certificate_files(config)[0].endswith("selfsigned-cert.pem")
    files = AcmeFiles(config.acme_dir)
    with files.ordering():
        files.store_certificate(*issue(*NAMES))
    assert tls.certificate_files(config) == (files.certificate_path, files.certificate_path)
    options = tls.server_options(config)  # the key and the chain come from the one file
    assert options.certificate.to_cryptography().subject.rfc4514_string() == f"CN={NAMES[0]}"
    off = configuration.Config(data_dir=str(tmp_path), hostname="mail.example.test")
    assert tls.certificate_files(off)[0].endswith("selfsigned-cert.pem")


# -- one check (the thread side) -----------------------------------------------------------------------

class FakeNow:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime.datetime:
        return self.now


class FakeCA:
    """Issues at once, for the names asked, valid 90 days from the fake *clock*; counts the orders."""

    def __init__(self, clock: FakeNow) -> None:
        self.clock = clock
        self.orders: list[tuple[str, ...]] = []

    def __call__(self, ca, account_key, names, tokens, stop):
        assert ca.directory == "https://ca.example/dir" and account_key.startswith(b"-----BEGIN")
        self.orders.append(tuple(names))
        return issue(*names, not_after=self.clock.now + 90 * DAY)


@pytest.fixture
def certificates(tmp_path):
    clock = FakeNow()
    ca = FakeCA(clock)
    return Certificates(acme_config(str(tmp_path)), tokens=None, stop=threading.Event(), now=clock, order=ca), ca


def test_first_check_orders_and_loads(certificates):
    certs, ca = certificates
    outcome = certs.check()
    assert ca.orders == [("mail.example.test", "autoconfig.example.test", "autodiscover.example.test",
                          "mta-sts.example.test")]
    assert outcome.ordered == "there is no certificate yet" and not outcome.busy
    assert outcome.options is not None and outcome.validity == "valid until 2027-03-01 12:00 UTC"


def test_a_current_certificate_is_neither_ordered_nor_loaded_again(certificates):
    certs, ca = certificates
    certs.check()
    certs.now.now += 59 * DAY
    assert certs.check() == Outcome()
    assert len(ca.orders) == 1
    certs.now.now += DAY + datetime.timedelta(seconds=1)  # 30 days before expiry
    outcome = certs.check()
    assert outcome.ordered == "the certificate expires 2027-03-01 12:00 UTC" and outcome.options is not None
    assert len(ca.orders) == 2


def test_the_file_another_process_wrote_is_loaded_without_an_order(certificates):
    certs, ca = certificates
    certs.check()
    with certs.files.ordering():
        certs.files.store_certificate(*issue(*NAMES, not_after=NOW + 80 * DAY))
    outcome = certs.check()
    assert outcome.ordered is None and outcome.validity == "valid until 2027-02-19 12:00 UTC"
    assert len(ca.orders) == 1


def test_a_certificate_loaded_after_a_sighup_takes_the_new_tls_settings(tmp_path):
    clock = FakeNow()
    config = acme_config(str(tmp_path))
    acme = AcmeService(config, RecordingTLS(), ChallengeTokens(), task.Clock(), InlineExecutor(),
                       Certificates(config, tokens=None, stop=threading.Event(), now=clock, order=FakeCA(clock)))
    acme.configure(dataclasses.replace(config, tls=dataclasses.replace(config.tls, min_version="1.3")))
    outcome = acme.certificates.check()
    assert outcome.options is not None and outcome.options._options & SSL.OP_NO_TLSv1_2


def test_while_another_process_orders_none_is_ordered_here(certificates):
    certs, ca = certificates
    with AcmeFiles(certs.files.directory).ordering():
        outcome = certs.check()
    assert outcome.busy and outcome.options is None and ca.orders == []


# -- the schedule (the reactor side) -------------------------------------------------------------------

class ScriptedCertificates:
    """Answers each check from a script: an :class:`Outcome` or an exception to raise."""

    def __init__(self, *script) -> None:
        self.script = list(script)
        self.checks = 0

    def check(self) -> Outcome:
        self.checks += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


class RecordingTLS:
    def __init__(self) -> None:
        self.replaced: list[object] = []

    def replace(self, options: object) -> None:
        self.replaced.append(options)


@pytest.fixture
def logged():
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)


def service(script: ScriptedCertificates, interval: int = 43200) -> tuple[AcmeService, task.Clock, RecordingTLS]:
    reactor = task.Clock()
    server_tls = RecordingTLS()
    config = acme_config("unused", acme_check_interval=interval)
    acme = AcmeService(config, server_tls, ChallengeTokens(), reactor, InlineExecutor(), script)
    acme.startService()
    reactor.advance(0)
    return acme, reactor, server_tls


def test_checked_at_start_and_every_interval_and_swapped(logged):
    options = object()
    script = ScriptedCertificates(Outcome("there is no certificate yet", options=options, validity="valid until X"),
                                  Outcome())
    acme, reactor, server_tls = service(script)
    assert script.checks == 1 and server_tls.replaced == [options]
    reactor.advance(43199)
    assert script.checks == 1
    reactor.advance(1)
    assert script.checks == 2 and server_tls.replaced == [options]
    assert any("now serves the certificate" in str(e.get("log_format")) for e in logged)


def test_failures_logged_with_the_error_and_retried_with_backoff(logged):
    script = ScriptedCertificates(RuntimeError("urn:ietf:params:acme:error:rateLimited :: too many"),
                                  RuntimeError("again"), Outcome(), Outcome())
    acme, reactor, server_tls = service(script)
    errors = [e for e in logged if e.get("log_level") == LogLevel.error]
    assert errors[0]["error"] == "RuntimeError: urn:ietf:params:acme:error:rateLimited :: too many"
    assert errors[0]["delay"] == 60
    reactor.advance(60)
    assert script.checks == 2 and [e["delay"] for e in logged if e.get("log_level") == LogLevel.error] == [60, 120]
    reactor.advance(120)
    assert script.checks == 3 and acme.failures == 0
    reactor.advance(43200)
    assert script.checks == 4


def test_while_another_process_orders_the_check_comes_back_soon():
    script = ScriptedCertificates(Outcome(busy=True), Outcome())
    acme, reactor, _ = service(script)
    reactor.advance(60)
    assert script.checks == 2


def test_stopped_service_checks_no_more_and_a_stopped_order_is_no_error(logged):
    gate: defer.Deferred = defer.Deferred()

    class Slow(InlineExecutor):
        def run(self, fn, *args, **kwargs):
            return gate.addCallback(lambda _: fn(*args, **kwargs))

    script = ScriptedCertificates(Stopped("the server is stopping"))
    reactor = task.Clock()
    acme = AcmeService(acme_config("unused"), RecordingTLS(), ChallengeTokens(), reactor, Slow(), script)
    acme.startService()
    reactor.advance(0)
    acme.stopService()
    assert acme.stopping.is_set()
    gate.callback(None)
    assert reactor.getDelayedCalls() == []
    assert not [e for e in logged if e.get("log_level") == LogLevel.error]


def test_describe_puts_the_error_on_one_line():
    assert describe(ValueError("Authorization for a.example failed:\n  Challenge http-01 failed")) \
        == "ValueError: Authorization for a.example failed: Challenge http-01 failed"


# -- the challenge tokens ------------------------------------------------------------------------------

class ThreadReactor:
    """callFromThread run at once, or never (a reactor that is stuck)."""

    def __init__(self, runs: bool = True) -> None:
        self.runs = runs

    def callFromThread(self, fn, *args) -> None:
        if self.runs:
            fn(*args)


def test_tokens_published_and_withdrawn_through_the_reactor():
    tokens = ChallengeTokens()
    hand_over = HandOver(tokens, ThreadReactor())
    hand_over.publish("tok_EN-1", "tok_EN-1.thumbprint")
    assert tokens.answer("tok_EN-1") == "tok_EN-1.thumbprint"
    hand_over.withdraw("tok_EN-1")
    assert tokens.answer("tok_EN-1") is None


def test_a_token_that_is_not_base64url_is_refused_in_the_thread():
    with pytest.raises(ValueError):
        HandOver(ChallengeTokens(), ThreadReactor()).publish("../etc/passwd", "x")


def test_a_reactor_that_does_not_take_the_token_times_the_order_out():
    with pytest.raises(TimeoutError):
        HandOver(ChallengeTokens(), ThreadReactor(runs=False), timeout=0).publish("tok", "tok.x")


# -- configuration -------------------------------------------------------------------------------------

def write(tmp_path, text: str) -> str:
    path = tmp_path / "mailsrv.toml"
    path.write_text(text)
    return str(path)


def test_acme_names_default_to_the_hostname_and_the_http_names_of_each_domain():
    config = configuration.Config(hostname="mx.example.org", domains=("example.org", "example.net"))
    assert config.acme_names == ("mx.example.org", "autoconfig.example.org", "autodiscover.example.org",
                                 "mta-sts.example.org", "autoconfig.example.net", "autodiscover.example.net",
                                 "mta-sts.example.net")


def test_acme_names_given_are_canonical(tmp_path):
    config = configuration.load(write(tmp_path, 'hostname = "mx.example.org"\n[tls]\nacme_names = ["MX.Bücher.example"]\n'))
    assert config.acme_names == ("mx.xn--bcher-kva.example",)


def test_acme_needs_a_directory(tmp_path):
    path = write(tmp_path, '[listen]\nhttp = ["tcp:80"]\n[tls]\nacme = true\n')
    with pytest.raises(configuration.ConfigError, match=r"mailsrv.toml: tls.acme_directory: acme = true needs"):
        configuration.load(path)


def test_acme_needs_an_http_listener(tmp_path):
    path = write(tmp_path, '[tls]\nacme = true\nacme_directory = "https://ca.example/dir"\n')
    with pytest.raises(configuration.ConfigError, match=r"mailsrv.toml: tls.acme: .*\[listen\] http"):
        configuration.load(path)


def test_acme_directory_is_a_url(tmp_path):
    with pytest.raises(configuration.ConfigError, match="tls.acme_directory: must be an https:// URL"):
        configuration.load(write(tmp_path, '[tls]\nacme_directory = "ca.example"\n'))

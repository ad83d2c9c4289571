"""Configuration loading: defaults, the shipped example, and clear errors."""

from __future__ import annotations

import dataclasses
import os

import pytest

from mailsrv import config as configuration
from mailsrv.config import locate
from mailsrv.config.delivery import DomainRule
from mailsrv.config.dns import parse_nameserver
from mailsrv.listeners import Kind

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "etc", "mailsrv.toml")


def write(tmp_path, text: str) -> str:
    path = tmp_path / "mailsrv.toml"
    path.write_text(text)
    return str(path)


def test_defaults_listen_on_the_contract_ports():
    listen = configuration.load(None).listen
    mail = [kind for kind in Kind if kind.protocol != "http"]
    ports = {kind.label: listen.endpoints(kind)[0].split(":")[1] for kind in mail}
    assert ports == {
        "smtp": "2525", "submission": "2587", "submissions": "2465",
        "pop3": "2110", "pop3s": "2995", "imap": "2143", "imaps": "2993",
    }
    assert all("interface=127.0.0.1" in listen.endpoints(kind)[0] for kind in mail)


def test_http_listeners_are_off_by_default():
    listen = configuration.load(None).listen
    assert (listen.http, listen.https, listen.metrics) == ((), (), ())


def test_listen_has_one_key_per_listener_kind_and_the_backlog():
    names = [f.name for f in dataclasses.fields(configuration.ListenConfig)]
    assert names == [kind.label for kind in Kind] + ["backlog"]


def test_values_and_overrides(tmp_path):
    path = write(tmp_path, 'hostname = "mx.example.test"\ndomains = ["Example.TEST."]\n[listen]\nimap = []\n')
    cfg = configuration.load(path, data_dir="/srv/mail")
    assert (cfg.hostname, cfg.domains, cfg.listen.imap, cfg.data_dir) == (
        "mx.example.test", ("example.test",), (), "/srv/mail")
    assert cfg.users_file == "/srv/mail/users"
    assert cfg.spool_dir == "/srv/mail/spool"


def test_domains_are_canonical(tmp_path):
    path = write(tmp_path, 'domains = ["Bücher.Example.", "xn--bcher-kva.example", "Other.TEST"]\n')
    assert configuration.load(path).domains == ("xn--bcher-kva.example", "other.test")


def test_new_limits_threads_and_queue_bound(tmp_path):
    path = write(
        tmp_path,
        "[limits]\nspool_threshold = 0\nmax_connections = 10\nmax_connections_per_ip = 2\n"
        "[auth]\nmax_queued_checks = 8\n[threads]\ndisk = 4\nhashing = 1\nsearch = 3\n"
        "[submission]\nreceived_login = false\n",
    )
    cfg = configuration.load(path)
    assert cfg.submission.received_login is False
    assert configuration.load(None).submission.received_login is True
    assert (cfg.limits.spool_threshold, cfg.limits.max_connections, cfg.limits.max_connections_per_ip) == (0, 10, 2)
    assert cfg.auth.max_queued_checks == 8
    assert (cfg.threads.disk, cfg.threads.hashing, cfg.threads.search) == (4, 1, 3)


@pytest.mark.parametrize(
    "text, key",
    [
        ("hostnme = 'x'\n", "hostnme: unknown key"),
        ("[limits]\nmax_message_size = '10M'\n", "limits.max_message_size: expected a non-negative integer"),
        ("[listen]\nsmtp = 'tcp:25'\n", "listen.smtp: expected a list of strings"),
        ("[auth]\nallow_plaintext_auth_on_loopback = 1\n", "auth.allow_plaintext_auth_on_loopback: expected true or false"),
        ("[tls]\ncert = '/nonexistent/cert.pem'\nkey = '/nonexistent/key.pem'\n", "tls.cert: file not found"),
        ("[tls]\ncert = '/etc/hostname'\n", "tls.key: tls.cert and tls.key are set together"),
        ("listen = 3\n", "listen: expected a table"),
        ("[limits]\nmax_line_length = 200\n", "limits.max_line_length: must be at least 1000 (RFC 5321 4.5.3.1.6)"),
        ("hostname = \n", "not valid TOML"),
        ("hostname = ''\n", "hostname: must not be empty"),
        ("domains = []\n", "domains: at least one local domain is needed"),
        ("domains = ['example.test', 'exa_mple.test']\n", "domains: 'exa_mple.test' is not a domain name"),
        ("[tls]\nmin_version = '1.1'\n", 'tls.min_version: must be "1.2" or "1.3"'),
        ("[mta_sts_policy]\nmode = 'strict'\n", "mta_sts_policy.mode: 'strict' is not one of enforce, testing, none"),
        ("[mta_sts_policy]\nmax_age = 'a week'\n", "mta_sts_policy.max_age: 'a week' is not a duration"),
        ("[mta_sts_policy]\nmax_age = '400d'\n", "mta_sts_policy.max_age: 400d is longer than RFC 8461's limit"),
        ("[delivery]\ntls = 'maybe'\n", "delivery.tls: 'maybe' is not one of none, may, encrypt, verify"),
        ("public_addresses = ['mail.example.test']\n", "public_addresses: 'mail.example.test' is not an IPv4 or IPv6"),
        ("[limits]\nmax_message_size = 1023\n", "limits.max_message_size: must be at least 1024"),
        ("[limits]\nmax_connections = 0\n", "limits.max_connections: must be at least 1"),
        ("[limits]\nmax_recipients = 0\n", "limits.max_recipients: must be at least 1"),
        ("[limits]\nsmtp_timeout = 0\n", "limits.smtp_timeout: must be at least 1"),
        ("[limits]\npop3_timeout = 0\n", "limits.pop3_timeout: must be at least 1"),
        ("[limits]\nmax_connections_per_ip = -1\n", "limits.max_connections_per_ip: expected a non-negative integer"),
        ("[limits]\nspool_threshold = -1\n", "limits.spool_threshold: expected a non-negative integer"),
        ("[auth]\nmax_queued_checks = 0\n", "auth.max_queued_checks: must be at least 1"),
        ("[threads]\ndisk = 0\n", "threads.disk: must be at least 1"),
        ("[threads]\nhashing = 0\n", "threads.hashing: must be at least 1"),
        ("[threads]\nsearch = 0\n", "threads.search: must be at least 1"),
        ("[threads]\npool = 3\n", "threads.pool: unknown key"),
        ("threads = 3\n", "threads: expected a table"),
        ("[submission]\nreceived_login = 'yes'\n", "submission.received_login: expected true or false"),
        ("[quota]\nstorage_kib = -1\n", "quota.storage_kib: expected a non-negative integer"),
        ("[quota]\nmessages = '10'\n", "quota.messages: expected a non-negative integer"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path, text, key):
    path = write(tmp_path, text)
    with pytest.raises(configuration.ConfigError) as e:
        configuration.load(path)
    assert str(e.value).startswith(path + ": ")
    assert key in str(e.value)
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(configuration.ConfigError, match="file not found"):
        configuration.load(str(tmp_path / "nope.toml"))


def test_command_line_overrides_are_checked_like_the_file(tmp_path):
    path = write(tmp_path, 'data_dir = "/from/file"\n')
    assert configuration.load(path, data_dir=None).data_dir == "/from/file"
    with pytest.raises(configuration.ConfigError, match=r"data_dir: expected a string"):
        configuration.load(path, data_dir=3)



def test_name_servers_are_ip_or_ip_and_port():
    assert parse_nameserver("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("[::1]:5353") == ("::1", 5353)


def test_a_bad_name_server_names_the_key(tmp_path):
    path = tmp_path / "mailsrv.toml"
    path.write_text('[dns]\nnameservers = ["dns.example:53"]\n')
    with pytest.raises(configuration.ConfigError, match="dns.nameservers"):
        configuration.load(str(path))


def test_locate_takes_the_option_then_the_environment_then_the_system_file(tmp_path, monkeypatch):
    system = tmp_path / "mailsrv.toml"
    monkeypatch.setattr(configuration.loader, "SYSTEM_CONFIG", str(system))
    assert locate(None, {}) is None  # the embedded defaults
    system.write_text("")
    assert locate(None, {}) == str(system)
    assert locate(None, {"MAILSRV_CONFIG": "/etc/other.toml"}) == "/etc/other.toml"
    assert locate(None, {"MAILSRV_CONFIG": ""}) == str(system)
    assert locate("given.toml", {"MAILSRV_CONFIG": "/etc/other.toml"}) == "given.toml"


def test_delivery_keys_of_the_contract(tmp_path):
    default = configuration.load().delivery
    assert (default.mx_port, default.tls, default.relay, default.lifetime_seconds) == (25, "may", "", 5 * 86400)
    assert default.retry_seconds == (300, 600, 1200, 2400, 3600)
    loaded = configuration.load(write(tmp_path, '[delivery]\nmx_port = 2526\ntls = "verify"\nretry = ["30s", "2h"]\n'
                                                'lifetime = "1d"\nrelay = "smtp.example.net:587"\n')).delivery
    assert (loaded.mx_port, loaded.tls, loaded.retry_seconds, loaded.lifetime_seconds, loaded.relay) == (
        2526, "verify", (30, 7200), 86400, "smtp.example.net:587"
    )


def test_per_domain_rules_are_read_by_canonical_domain(tmp_path):
    assert configuration.load().delivery.domains == {}
    assert configuration.load().delivery.mta_sts is True
    loaded = configuration.load(write(tmp_path, '[delivery.domains]\n"Bank.Example" = { tls = "verify" }\n'
                                                '"bücher.example" = { route = "mx" }\n'
                                                '[delivery.domains."partner.example"]\nroute = "[2001:db8::1]:2525"\n'))
    assert loaded.delivery.domains == {
        "bank.example": DomainRule(tls="verify"),
        "xn--bcher-kva.example": DomainRule(route="mx"),
        "partner.example": DomainRule(route="[2001:db8::1]:2525"),
    }


@pytest.mark.parametrize("line, complaint", [
    ('tls = "sometimes"', "delivery.tls"),
    ('retry = ["5 minutes"]', "delivery.retry"),
    ("retry = []", "delivery.retry"),
    ('lifetime = "0d"', "delivery.lifetime"),
    ("mx_port = 0", "delivery.mx_port"),
    ("max_connections = 0", "delivery.max_connections"),
    ("mta_sts_port = 0", "delivery.mta_sts_port"),
    ('domains = { "bank.example" = { tls = "sometimes" } }', 'delivery.domains."bank.example".tls'),
    ('domains = { "partner.example" = { route = "smtp.partner.example" } }', 'delivery.domains."partner.example".route'),
    ('domains = { "partner.example" = { relay = "mx" } }', 'delivery.domains."partner.example".relay: unknown key'),
    ('domains = { "bank.example" = "verify" }', 'delivery.domains."bank.example": expected a table'),
    ('domains = { "not a domain" = { tls = "may" } }', 'delivery.domains."not a domain": is not a domain name'),
    ('domains = { "Bank.example" = { tls = "may" }, "bank.example" = { tls = "none" } }', "bank.example is named twice"),
    ('domains = ["bank.example"]', "delivery.domains: expected a table"),
])
def test_bad_delivery_values_name_the_key_and_the_file(tmp_path, line, complaint):
    path = write(tmp_path, f"[delivery]\n{line}\n")
    with pytest.raises(configuration.ConfigError) as e:
        configuration.load(path)
    assert complaint in str(e.value) and path in str(e.value)


def test_metrics_token_must_be_a_bearer_token(tmp_path):
    assert configuration.load(write(tmp_path, '[http]\nmetrics_token = "abc-DEF_1.2~3+4/5=="\n')).http.metrics_token
    with pytest.raises(configuration.ConfigError, match=r"mailsrv.toml: http.metrics_token: must be letters"):
        configuration.load(write(tmp_path, '[http]\nmetrics_token = "two words"\n'))


@pytest.mark.parametrize("line, complaint", [
    ("metadata_max_value_size = 1023", "imap.metadata_max_value_size: must be at least 1024 (RFC 5464 4.1)"),
    ("metadata_max_entries = 9", "imap.metadata_max_entries: must be at least 10 (RFC 5464 4.1)"),
    ("metadata_max_value_size = 4096\nmetadata_max_total_size = 2048",
     "imap.metadata_max_total_size: must be at least metadata_max_value_size"),
])
def test_metadata_limits_keep_rfc_5464s_minimums(tmp_path, line, complaint):
    path = write(tmp_path, f"[imap]\n{line}\n")
    with pytest.raises(configuration.ConfigError) as e:
        configuration.load(path)
    assert complaint in str(e.value) and path in str(e.value)

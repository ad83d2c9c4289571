"""Configuration loading: defaults, the shipped example, and clear errors."""

from __future__ import annotations

import os

import pytest

from mailsrv import config as configuration

EXAMPLE = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "etc", "mailsrv.toml")


def write(tmp_path, text: str) -> str:
    path = tmp_path / "mailsrv.toml"
    path.write_text(text)
    return str(path)


def test_shipped_example_equals_the_embedded_defaults():
    loaded = configuration.load(EXAMPLE)
    defaults = configuration.load(None)
    assert loaded.source != defaults.source
    for name in ("hostname", "data_dir", "domains", "listen", "tls", "limits", "auth"):
        assert getattr(loaded, name) == getattr(defaults, name), name


def test_defaults_listen_on_the_contract_ports():
    listen = configuration.load(None).listen
    ports = {kind: getattr(listen, kind)[0].split(":")[1] for kind in configuration.LISTENER_KINDS}
    assert ports == {
        "smtp": "2525", "submission": "2587", "submissions": "2465",
        "pop3": "2110", "pop3s": "2995", "imap": "2143", "imaps": "2993",
    }
    assert all("interface=127.0.0.1" in getattr(listen, k)[0] for k in configuration.LISTENER_KINDS)


def test_values_and_overrides(tmp_path):
    path = write(tmp_path, 'hostname = "mx.example.test"\ndomains = ["Example.TEST."]\n[listen]\nimap = []\n')
    cfg = configuration.load(path, data_dir="/srv/mail")
    assert (cfg.hostname, cfg.domains, cfg.listen.imap, cfg.data_dir) == (
        "mx.example.test", ("example.test",), (), "/srv/mail")
    assert cfg.users_file == "/srv/mail/users"


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
        ("[limits]\nmax_line_length = 200\n", "limits.max_line_length: must be at least 1000"),
        ("hostname = \n", "not valid TOML"),
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

"""``mailsrv init``: a first configuration and data dir, written from flags or answers, never over an old one."""

from __future__ import annotations

import io
import os
import stat

import pytest

from mailsrv.cli.main import main
from mailsrv.config import load


def init(tmp_path, *flags: str) -> tuple[int, str]:
    return main(["-c", str(tmp_path / "etc" / "mailsrv.toml"), "init", *flags]), str(tmp_path / "etc" / "mailsrv.toml")


def test_flags_write_a_configuration_the_server_loads_and_make_the_data_dir(tmp_path, capsys):
    data = tmp_path / "lib" / "mailsrv"
    code, path = init(tmp_path, "--hostname", "mail.example.org", "--domain", "example.org", "--domain",
                      "Bücher.example", "--data-dir", str(data), "--yes")
    assert code == 0, capsys.readouterr().err
    config = load(path)
    assert (config.hostname, config.domains, config.data_dir) == (
        "mail.example.org", ("example.org", "xn--bcher-kva.example"), str(data))
    assert config.listen.smtp == ("tcp:25",) and config.listen.imaps == ("tcp:993",)
    assert config.listen.https == ()  # turned on once a certificate names its names
    assert data.is_dir() and stat.S_IMODE(data.stat().st_mode) == 0o750
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert capsys.readouterr().out.startswith(f"wrote {path} (hostname mail.example.org, domains example.org, ")
    assert not [name for name in os.listdir(tmp_path / "etc") if name != "mailsrv.toml"]  # no draft left


def test_an_existing_configuration_is_never_overwritten(tmp_path, capsys):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "mailsrv.toml").write_text('hostname = "old.example.org"\n')
    code, path = init(tmp_path, "--hostname", "mail.example.org", "--data-dir", str(tmp_path / "d"), "--yes")
    assert code == 1
    assert capsys.readouterr().err == f"mailsrv: {path} exists already; it is not overwritten\n"
    assert (tmp_path / "etc" / "mailsrv.toml").read_text() == 'hostname = "old.example.org"\n'
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("flags, error", [
    (("--hostname", "mail", "--domain", "example.org"), "hostname: 'mail' is not a fully qualified host name"),
    (("--hostname", "mail.example.org", "--domain", "exa mple.org"), "domains: 'exa mple.org' is not a domain name"),
    (("--hostname", "mail.example.org", "--data-dir", "relative/dir"), "data_dir must be an absolute path"),
])
def test_bad_answers_are_refused_and_nothing_is_written(tmp_path, capsys, flags, error):
    flags = flags if "--data-dir" in flags else (*flags, "--data-dir", str(tmp_path / "d"))
    code, path = init(tmp_path, *flags, "--yes")
    assert code == 1
    assert error in capsys.readouterr().err
    assert not os.path.exists(path) and not (tmp_path / "d").exists()


def test_without_yes_it_asks_with_defaults_from_the_hostname(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(f"mail.example.net\n\n{tmp_path / 'data'}\n\ny\n"))
    code, path = init(tmp_path)
    assert code == 0, capsys.readouterr().err
    config = load(path)
    assert (config.hostname, config.domains) == ("mail.example.net", ("example.net",))
    out = capsys.readouterr().out
    assert "Local domain (mail for it is delivered here) [example.net]: " in out
    assert "Let's Encrypt certificate" in out and "[postmaster@example.net]: " in out
    assert config.tls.acme and config.tls.acme_email == "postmaster@example.net"


def test_a_dash_for_the_acme_address_asks_for_no_certificate(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("-\ny\n"))
    code, path = init(tmp_path, "--hostname", "mail.example.org", "--domain", "example.org",
                      "--data-dir", str(tmp_path / "d"))
    assert code == 0, capsys.readouterr().err
    assert not load(path).tls.acme


def test_with_an_acme_address_the_certificate_comes_from_lets_encrypt_over_port_80(tmp_path, capsys):
    code, path = init(tmp_path, "--hostname", "mail.example.org", "--domain", "example.org", "--data-dir",
                      str(tmp_path / "d"), "--acme-email", "admin@example.org", "--yes")
    assert code == 0, capsys.readouterr().err
    config = load(path)
    assert (config.tls.acme, config.tls.acme_directory, config.tls.acme_email) == (
        True, "https://acme-v02.api.letsencrypt.org/directory", "admin@example.org")
    assert (config.listen.http, config.listen.https) == (("tcp:80",), ("tcp:443",))
    assert "2. the certificate is ordered from https://acme-v02.api.letsencrypt.org/directory" \
        in capsys.readouterr().out


def test_what_to_do_next_is_printed_in_order(tmp_path, capsys):
    code, path = init(tmp_path, "--hostname", "mail.example.org", "--domain", "example.org", "--data-dir",
                      str(tmp_path / "d"), "--yes")
    assert code == 0
    steps = capsys.readouterr().out.splitlines()[1:]
    assert steps[0] == "next:"
    assert steps[1] == f"  1. publish what `mailsrv -c {path} dns records example.org` prints in the DNS of example.org"
    assert "[tls] cert and key" in steps[2] and "--acme-email" in steps[2]
    assert "etc/systemd/mailsrv.service" in steps[3]
    assert f"mailsrv -c {path} dkim keygen example.org" in steps[4] and "user add" in steps[4]
    assert steps[5].startswith(f"  5. `mailsrv -c {path} selftest`, then `mailsrv -c {path} dns check example.org`")


def test_answering_no_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n\nn\n"))  # the domain, the ACME address, then no
    code, path = init(tmp_path, "--hostname", "mail.example.org", "--data-dir", str(tmp_path / "d"))
    assert code == 1 and "nothing written" in capsys.readouterr().err
    assert not os.path.exists(path)


def test_input_that_ends_before_the_answers_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, path = init(tmp_path, "--data-dir", str(tmp_path / "d"))
    assert code == 1 and "no answer (input ended)" in capsys.readouterr().err
    assert not os.path.exists(path)

"""``[policy]``: trusted networks are CIDR networks; a mistake names the file and the key."""

from __future__ import annotations

import ipaddress

import pytest

from mailsrv import config as configuration


def load(tmp_path, text: str) -> configuration.Config:
    path = tmp_path / "mailsrv.toml"
    path.write_text(f'data_dir = "{tmp_path}"\n' + text)
    return configuration.load(str(path))


def test_defaults_trust_the_loopback_networks_and_honour_reject(tmp_path):
    policy = load(tmp_path, "").policy
    assert policy.networks() == (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert policy.dmarc_reject is True


def test_networks_and_single_addresses(tmp_path):
    policy = load(tmp_path, '[policy]\ntrusted_networks = ["192.0.2.0/24", "2001:db8::1"]\ndmarc_reject = false\n').policy
    assert policy.networks() == (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::1/128"))
    assert policy.dmarc_reject is False


@pytest.mark.parametrize("entry", ["192.0.2.1/24", "example.org", "10.0.0.0/33"])
def test_a_bad_network_names_the_file_and_the_key(tmp_path, entry):
    with pytest.raises(configuration.ConfigError) as raised:
        load(tmp_path, f'[policy]\ntrusted_networks = ["{entry}"]\n')
    message = str(raised.value)
    assert str(tmp_path / "mailsrv.toml") in message and "policy.trusted_networks" in message and entry in message

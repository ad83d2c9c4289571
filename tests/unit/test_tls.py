"""TLS certificates (the plaintext-password gate is the session's: test_net_session.py)."""

from __future__ import annotations

import os

from cryptography import x509
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv import tls


def make_config(tmp: str, **auth: bool) -> configuration.Config:
    return configuration.Config(
        data_dir=tmp, hostname="mail.example.test", auth=configuration.AuthConfig(**auth)
    )


class CertificateTests(unittest.TestCase):
    def test_self_signed_generated_once_with_sans(self):
        config = make_config(self.mktemp())
        cert, key = tls.certificate_files(config)
        with open(cert, "rb") as f:
            parsed = x509.load_pem_x509_certificate(f.read())
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(san.get_values_for_type(x509.DNSName), ["mail.example.test", "localhost"])
        self.assertEqual([str(ip) for ip in san.get_values_for_type(x509.IPAddress)], ["127.0.0.1", "::1"])
        self.assertEqual(os.stat(key).st_mode & 0o777, 0o600)
        mtime = os.stat(cert).st_mtime_ns
        tls.server_options(config)
        self.assertEqual(os.stat(cert).st_mtime_ns, mtime)

    def test_mismatched_key_names_the_key(self):
        tmp = self.mktemp()
        tls.generate_self_signed(os.path.join(tmp, "a.pem"), os.path.join(tmp, "a.key"), "a")
        tls.generate_self_signed(os.path.join(tmp, "b.pem"), os.path.join(tmp, "b.key"), "b")
        config = configuration.Config(
            data_dir=tmp, tls=configuration.TLSConfig(cert=os.path.join(tmp, "a.pem"), key=os.path.join(tmp, "b.key"))
        )
        e = self.assertRaises(configuration.ConfigError, tls.server_options, config)
        self.assertIn("tls.key", str(e))

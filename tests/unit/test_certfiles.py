"""The certificate files looked at on a timer (:mod:`mailsrv.certfiles`): a renewal that replaced
them is served without a SIGHUP; a pair that does not match yet keeps the old one until it does."""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet import task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv import tls
from mailsrv.certfiles import CertificateFiles
from mailsrv.config.live import LiveConfig
from mailsrv.workers import InlineExecutor

INTERVAL = 60


class CertificateFilesTests(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = os.path.abspath(self.mktemp())
        os.makedirs(self.tmp)
        self.cert, self.key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        tls.generate_self_signed(self.cert, self.key, "old.example.test")
        config = configuration.Config(
            data_dir=self.tmp, tls=configuration.TLSConfig(cert=self.cert, key=self.key, check_interval=INTERVAL))
        self.server_tls = tls.ServerTLS(tls.server_options(config))
        self.clock = task.Clock()
        self.files = CertificateFiles(LiveConfig(config), self.server_tls, InlineExecutor(), self.clock)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        self.files.startService()  # the first look, at once, takes the stamps of what start-up loaded
        self.addCleanup(self.files.stopService)

    def lines(self) -> list[tuple[LogLevel, str]]:
        return [(e["log_level"], formatEvent(e)) for e in self.log if e["log_namespace"] == "mailsrv.certfiles"]

    def served_name(self) -> str:
        cert = SSL.Connection(self.server_tls.getContext(), None).get_certificate(as_cryptography=True)
        return cert.subject.rfc4514_string()

    def renew(self, name: str) -> None:
        """Write a new pair beside the served one and rename it over it, as a renewal client does."""
        tls.generate_self_signed(self.cert + ".new", self.key + ".new", name)
        os.rename(self.key + ".new", self.key)
        os.rename(self.cert + ".new", self.cert)

    def test_unchanged_files_are_not_loaded_again(self):
        served = self.server_tls.options
        self.clock.advance(INTERVAL)
        self.assertIs(self.server_tls.options, served)
        self.assertEqual(self.lines(), [])

    def test_a_pair_replaced_by_rename_is_served_at_the_next_look_with_a_line(self):
        self.renew("new.example.test")
        self.assertEqual(self.served_name(), "CN=old.example.test")
        self.clock.advance(INTERVAL)
        self.assertEqual(self.served_name(), "CN=new.example.test")
        [(level, line)] = self.lines()
        self.assertEqual(level, LogLevel.info)
        self.assertRegex(line, rf"^TLS: {self.cert} changed: every TLS listener now serves CN=new\.example\.test, ")

    def test_a_certificate_whose_key_is_not_written_yet_keeps_the_old_one_until_it_is(self):
        tls.generate_self_signed(self.cert + ".new", self.key + ".new", "new.example.test")
        os.rename(self.cert + ".new", self.cert)  # the key follows later
        self.clock.advance(INTERVAL)
        self.clock.advance(INTERVAL)  # the same files again: tried, not logged again
        self.assertEqual(self.served_name(), "CN=old.example.test")
        [(level, line)] = self.lines()
        self.assertEqual(level, LogLevel.error)
        self.assertIn(f"TLS: {self.cert} changed but cannot be served, the current certificate stays", line)
        self.assertIn("tls.key: the key does not match the certificate", line)
        os.rename(self.key + ".new", self.key)
        self.clock.advance(INTERVAL)
        self.assertEqual(self.served_name(), "CN=new.example.test")

    def test_a_removed_file_is_an_error_line_and_the_old_certificate_stays(self):
        os.remove(self.key)
        self.clock.advance(INTERVAL)
        self.assertEqual(self.served_name(), "CN=old.example.test")
        [(level, line)] = self.lines()
        self.assertEqual(level, LogLevel.error)
        self.assertIn("cannot read", line)

    def test_no_look_when_the_interval_is_zero(self):
        self.files.stopService()
        config = configuration.Config(
            data_dir=self.tmp, tls=configuration.TLSConfig(cert=self.cert, key=self.key, check_interval=0))
        files = CertificateFiles(LiveConfig(config), self.server_tls, InlineExecutor(), self.clock)
        files.startService()
        self.addCleanup(files.stopService)
        self.renew("new.example.test")
        self.clock.advance(INTERVAL)
        self.assertEqual(self.served_name(), "CN=old.example.test")
        self.assertEqual(self.clock.getDelayedCalls(), [])

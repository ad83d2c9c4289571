"""SIGHUP's reload: log file, users and aliases, certificate; a broken certificate keeps the old one."""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet import defer
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv import tls
from mailsrv.accounts import Directory
from mailsrv.logfile import LogFile
from mailsrv.reload import Reloader
from mailsrv.workers import InlineExecutor


class ReloadTests(unittest.TestCase):
    def setUp(self) -> None:
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        self.cert, self.key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        tls.generate_self_signed(self.cert, self.key, "old.example.test")
        self.config = configuration.Config(
            data_dir=tmp, tls=configuration.TLSConfig(cert=self.cert, key=self.key)
        )
        self.server_tls = tls.ServerTLS(tls.server_options(self.config))
        self.log_path = os.path.join(tmp, "mailsrv.log")
        self.log_file = LogFile(self.log_path, configuration.LogConfig())
        self.addCleanup(self.log_file.close)
        self.reloader = Reloader(
            self.config, Directory(self.config), self.server_tls, InlineExecutor(), self.log_file
        )
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def reload(self) -> list[tuple[LogLevel, str]]:
        self.successResultOf(defer.Deferred.fromCoroutine(self.reloader.reload()))
        return [(e["log_level"], formatEvent(e)) for e in self.log if e["log_namespace"] == "mailsrv.reload"]

    def served_name(self) -> str:
        """The certificate a connection starting TLS now is given."""
        cert = SSL.Connection(self.server_tls.getContext(), None).get_certificate(as_cryptography=True)
        return cert.subject.rfc4514_string()

    def test_a_new_certificate_serves_new_connections_and_one_line_says_what_was_reloaded(self):
        with open(self.config.users_file, "w") as f:
            f.write("alice@example.test:{PLAIN}x\n")  # unusable hash: skipped, with a warning
        with open(self.config.aliases_file, "w") as f:
            f.write("info@example.test: bob@example.test\n")
        tls.generate_self_signed(self.cert, self.key, "new.example.test")
        [(level, line)] = self.reload()
        self.assertEqual(level, LogLevel.info)
        self.assertRegex(
            line,
            rf"^SIGHUP: reloaded log file {self.log_path}; 0 users, 1 aliases; "
            r"TLS certificate CN=new\.example\.test, valid until \d{4}-\d\d-\d\d$",
        )
        self.assertEqual(self.served_name(), "CN=new.example.test")

    def test_a_broken_certificate_keeps_the_old_one_with_an_error_line(self):
        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        [(level, error), (_, line)] = self.reload()
        self.assertEqual(level, LogLevel.error)
        self.assertIn("SIGHUP: TLS certificate not reloaded, the current one stays: ", error)
        self.assertIn("tls.key/tls.cert: unreadable PEM", error)
        self.assertNotIn("TLS certificate CN=", line)
        self.assertEqual(self.served_name(), "CN=old.example.test")

    def test_a_key_that_does_not_match_keeps_the_old_one(self):
        tls.generate_self_signed(self.cert, os.path.join(self.config.data_dir, "other.pem"), "new.example.test")
        [(level, error), _] = self.reload()
        self.assertEqual(level, LogLevel.error)
        self.assertIn("tls.key: the key does not match the certificate", error)
        self.assertEqual(self.served_name(), "CN=old.example.test")

    def test_the_log_file_is_reopened_after_logrotate_moved_it(self):
        os.rename(self.log_path, self.log_path + ".1")
        self.reload()
        self.log_file.write("after\n")
        with open(self.log_path) as f:
            self.assertEqual(f.read(), "after\n")

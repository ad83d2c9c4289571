"""SIGHUP's reload: log file, configuration, users and aliases, DKIM keys, certificate.

A configuration that does not load keeps everything as it was; a key that
takes a restart keeps its running value with one line; a broken
certificate keeps the old one.
"""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet import defer, task
from twisted.internet.testing import EventLoggingObserver
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial import unittest

from mailsrv import config as configuration
from mailsrv import tls
from mailsrv.accounts import Directory
from mailsrv.certfiles import CertificateFiles
from mailsrv.config.live import LiveConfig
from mailsrv.dkim import keys
from mailsrv.logfile import LogFile
from mailsrv.reload import Reloader, Source
from mailsrv.workers import InlineExecutor

LISTEN = 'smtp = ["tcp:2525:interface=127.0.0.1"]'


class ReloadTests(unittest.TestCase):
    def setUp(self) -> None:
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        self.tmp = tmp
        self.cert, self.key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        tls.generate_self_signed(self.cert, self.key, "old.example.test")
        self.path = os.path.join(tmp, "mailsrv.toml")
        self.write()
        self.config = configuration.load(self.path)
        self.live = LiveConfig(self.config)
        self.server_tls = tls.ServerTLS(tls.server_options(self.config))
        self.log_path = os.path.join(tmp, "mailsrv.log")
        self.log_file = LogFile(self.log_path, configuration.LogConfig())
        self.addCleanup(self.log_file.close)
        self.keyring = keys.KeyRing(keys.dkim_dir(tmp))
        certificates = CertificateFiles(self.live, self.server_tls, InlineExecutor(), task.Clock())
        self.reloader = Reloader(self.live, Source.of(self.config), Directory(self.config), self.keyring,
                                 certificates, InlineExecutor(), self.log_file)
        self.log = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)

    def write(self, limits: str = "", listen: str = LISTEN) -> None:
        with open(self.path, "w") as f:
            f.write(f'data_dir = "{self.tmp}"\n[tls]\ncert = "{self.cert}"\nkey = "{self.key}"\n'
                    f"[listen]\n{listen}\n[limits]\n{limits}\n")

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
            rf"^SIGHUP: reloaded log file {self.log_path}; configuration {self.path} unchanged; 0 users, 1 aliases; "
            r"DKIM keys; TLS certificate CN=new\.example\.test, valid until \d{4}-\d\d-\d\d$",
        )
        self.assertEqual(self.served_name(), "CN=new.example.test")

    def test_a_changed_key_replaces_the_running_configuration(self):
        self.write(limits="max_recipients = 7")
        [(level, line)] = self.reload()
        self.assertEqual(level, LogLevel.info)
        self.assertIn(f"; configuration {self.path} (changed: limits.max_recipients);", line)
        self.assertEqual(self.live.current.limits.max_recipients, 7)

    def test_a_key_that_takes_a_restart_keeps_its_running_value_with_one_line(self):
        self.write(limits="max_recipients = 7", listen='smtp = ["tcp:2526:interface=127.0.0.1"]')
        [(warning_level, warning), (_, line)] = self.reload()
        self.assertEqual(warning_level, LogLevel.warn)
        self.assertEqual(warning, f"SIGHUP: listen.smtp in {self.path} changed: takes effect after a restart")
        self.assertIn("(changed: limits.max_recipients; after a restart: listen.smtp)", line)
        self.assertEqual(self.live.current.listen.smtp, ("tcp:2525:interface=127.0.0.1",))
        self.assertEqual(self.live.current.limits.max_recipients, 7)

    def test_a_configuration_that_does_not_load_is_one_line_and_nothing_else_changes(self):
        self.write(limits="max_recipients = 7\nmax_line_length = 10")
        tls.generate_self_signed(self.cert, self.key, "new.example.test")
        os.rename(self.log_path, self.log_path + ".1")
        [(level, line)] = self.reload()
        self.assertEqual(level, LogLevel.error)
        self.assertEqual(line, f"SIGHUP: configuration refused, the running one stays: {self.path}: "
                               "limits.max_line_length: must be at least 1000 (RFC 5321 4.5.3.1.6)")
        self.assertIs(self.live.current, self.config)
        self.assertEqual(self.served_name(), "CN=old.example.test")
        self.assertTrue(os.path.exists(self.log_path), "the log file is reopened all the same")

    def test_dkim_keys_rewritten_in_place_are_read_again(self):
        domain_dir = os.path.join(keys.dkim_dir(self.tmp), "example.test")
        path = keys.write_new(domain_dir, "s1", keys.generate(keys.Algorithm.ED25519))
        [before] = self.keyring.keys("example.test")
        with open(path, "wb") as f:  # in place: the directory's stamp does not move
            f.write(keys.generate(keys.Algorithm.ED25519))
        self.assertEqual(self.keyring.keys("example.test"), [before])
        self.reload()
        [after] = self.keyring.keys("example.test")
        self.assertNotEqual(after.record, before.record)

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

"""SMTP over real TLS on 127.0.0.1 into a real store: smtplib as the client.

Covers what the in-memory transport can only pretend: STARTTLS negotiation,
the TLS details in the Received header, implicit TLS (465), plaintext
pipelined behind STARTTLS, and the message landing byte-exact in Maildirs.
"""

from __future__ import annotations

import os
import smtplib
import socket

from twisted.internet import threads

from mailsrv import config as configuration, tls
from mailsrv.listeners import Kind
from mailsrv.smtp.server import make_factory
from support import ALICE, PASSWORD, client_context, listen_loopback, make_context
from test_smtp_session import FakeDirectory, SMTPTestCase

MESSAGE = b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\n.dot first\r\nHello.\r\n"


class RealTLSTests(SMTPTestCase):
    def setUp(self) -> None:
        super().setUp()
        tmp = os.path.abspath(self.mktemp())
        self.config = configuration.Config(hostname="localhost", data_dir=tmp, domains=("example.test",))
        self.ctx = make_context(
            self.config, directory=FakeDirectory(), checker=self.checker, tls_options=tls.server_options(self.config)
        )

    def listen(self, kind: str) -> int:
        """Serve *kind* on a free loopback port; returns the port."""
        return listen_loopback(self, make_factory(self.ctx, Kind.named(kind)), self.ctx.tls if kind == "submissions" else None)

    def stored(self, address: str) -> list[str]:
        """Paths of the messages in the INBOX (new/) of *address*."""
        new = os.path.join(self.config.mail_dir, "example.test", address.split("@")[0], "new")
        return [os.path.join(new, name) for name in sorted(os.listdir(new))]

    def read(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    async def test_starttls_auth_and_delivery_to_three_users(self):
        port = self.listen("submission")

        def client() -> dict:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.ehlo("client.example.net")
                plain_features = dict(smtp.esmtp_features)
                smtp.starttls(context=client_context(self.config))
                smtp.ehlo("client.example.net")
                smtp.login(ALICE, PASSWORD.decode())
                return smtp.sendmail(
                    ALICE, ["alice@example.test", "bob@example.test", "carol@example.test"], MESSAGE
                ) or plain_features

        plain_features = await threads.deferToThread(client)
        self.assertNotIn("auth", plain_features)
        self.assertIn("starttls", plain_features)
        paths = [self.stored(f"{user}@example.test")[0] for user in ("alice", "bob", "carol")]
        for path in paths:
            data = self.read(path)
            self.assertTrue(data.endswith(MESSAGE.replace(b"\r\n", b"\n")), data)
            self.assertRegex(
                data.decode(),
                r"\AReturn-Path: <alice@example\.test>\n"
                r"Received: from client\.example\.net \(\[127\.0\.0\.1\]\)\n"
                r"\t\(using TLSv1\.[23] with cipher [A-Z0-9_-]+\)\n"
                r"\t\(Authenticated sender: alice@example\.test\)\n"
                r"\tby localhost \(mailsrv\) with ESMTPSA id [0-9A-Z]{12};\n",
            )
        # One write, hard-linked into every INBOX.
        self.assertEqual(len({os.stat(path).st_ino for path in paths}), 1)

    async def test_implicit_tls_submission(self):
        port = self.listen("submissions")

        def client() -> dict:
            with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=client_context(self.config)) as smtp:
                smtp.ehlo("client.example.net")
                features = dict(smtp.esmtp_features)
                smtp.login(ALICE, PASSWORD.decode())
                smtp.sendmail(ALICE, ["bob@example.test"], MESSAGE)
                return features

        features = await threads.deferToThread(client)
        self.assertNotIn("starttls", features)
        self.assertEqual(features["auth"].split(), ["PLAIN", "LOGIN"])
        [path] = self.stored("bob@example.test")
        data = self.read(path)
        self.assertIn(b"with ESMTPSA id ", data)
        self.assertIn(b"\tfor <bob@example.test>; ", data)

    async def test_plaintext_pipelined_behind_starttls_is_not_run_inside_tls(self):
        port = self.listen("smtp")

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                reader = sock.makefile("rb")
                reader.readline()  # greeting
                sock.sendall(b"EHLO client.example.net\r\n")
                while reader.readline()[3:4] == b"-":
                    pass
                sock.sendall(b"STARTTLS\r\nRSET\r\n")
                assert reader.readline() == b"220 2.0.0 Ready to start TLS\r\n"
                with client_context(self.config).wrap_socket(sock, server_hostname="localhost") as tls_sock:
                    tls_sock.sendall(b"NOOP\r\n")
                    return tls_sock.recv(1000)

        self.assertEqual(await threads.deferToThread(client), b"250 2.0.0 Ok\r\n")

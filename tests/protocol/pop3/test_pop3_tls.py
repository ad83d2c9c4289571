"""POP3 over real TLS on 127.0.0.1: STLS and pop3s, driven by poplib."""

from __future__ import annotations

import poplib
import socket

from twisted.internet import threads

from mailsrv import tls
from mailsrv.pop3 import make_factory
from support import ALICE, PASSWORD, client_context, listen_loopback
from test_pop3 import MESSAGE, POP3TestCase

# A first line starting with "." and a "." line: the stuffing a client must undo.
DOTTED = b".first\r\n" + MESSAGE + b".\r\n"


class RealTLSTests(POP3TestCase):
    async def listen(self, kind: str) -> int:
        """Serve *kind* on a free loopback port, with DOTTED in alice's INBOX; returns the port."""
        self.ctx.tls = tls.server_options(self.config)
        port = listen_loopback(self, make_factory(self.ctx, kind), self.ctx.tls if kind == "pop3s" else None)
        await self.deliver(DOTTED)
        return port

    async def test_stls_login_and_retr(self):
        port = await self.listen("pop3")

        def client() -> tuple[bytes, list[bytes]]:
            pop = poplib.POP3("127.0.0.1", port, timeout=10)
            try:
                pop.stls(client_context(self.config))
                pop.user(ALICE)
                pop.pass_(PASSWORD.decode())
                _, lines, _ = pop.retr(1)
                caps = pop.capa()
                pop.quit()
            finally:
                pop.close()
            return b"\r\n".join(lines) + b"\r\n", sorted(caps)

        message, caps = await threads.deferToThread(client)
        self.assertEqual(message, DOTTED)
        self.assertEqual(caps, ["IMPLEMENTATION", "PIPELINING", "RESP-CODES", "SASL", "TOP", "UIDL", "USER"])

    async def test_plaintext_pipelined_behind_stls_is_not_run_inside_tls(self):
        port = await self.listen("pop3")

        def client() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(b"STLS\r\nUSER " + ALICE.encode() + b"\r\n")
                reply = b""
                while reply.count(b"\r\n") < 2:
                    reply += raw.recv(1024)
                assert reply.endswith(b"+OK Begin TLS negotiation\r\n"), reply
                with client_context(self.config).wrap_socket(raw, server_hostname="127.0.0.1") as sock:
                    sock.sendall(b"PASS " + PASSWORD + b"\r\nQUIT\r\n")
                    answer = b""
                    while not answer.endswith(b"Bye.\r\n"):
                        answer += sock.recv(1024)
                    return answer

        self.assertEqual(await threads.deferToThread(client), b"-ERR USER first\r\n+OK Bye.\r\n")

    async def test_pop3s(self):
        port = await self.listen("pop3s")

        def client() -> tuple[list[str], bytes]:
            pop = poplib.POP3_SSL("127.0.0.1", port, context=client_context(self.config), timeout=10)
            try:
                caps = sorted(pop.capa())
                pop.user(ALICE)
                pop.pass_(PASSWORD.decode())
                _, lines, _ = pop.retr(1)
                pop.quit()
            finally:
                pop.close()
            return caps, b"\r\n".join(lines) + b"\r\n"

        caps, message = await threads.deferToThread(client)
        self.assertNotIn("STLS", caps)
        self.assertIn("USER", caps)
        self.assertEqual(message, DOTTED)

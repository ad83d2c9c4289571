"""POP3 over real TLS on 127.0.0.1: STLS and pop3s, driven by poplib."""

from __future__ import annotations

import poplib
import socket
import threading

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor, task, threads
from twisted.protocols.tls import TLSMemoryBIOFactory

from mailsrv import tls
from mailsrv.listeners import Kind
from mailsrv.message.body import Body
from mailsrv.pop3.server import make_factory
from mailsrv.store import Target
from support import ALICE, PASSWORD, client_context, listen_loopback
from test_pop3 import MESSAGE, POP3TestCase

# A first line starting with "." and a "." line: the stuffing a client must undo.
DOTTED = b".first\r\n" + MESSAGE + b".\r\n"


class RealTLSTests(POP3TestCase):
    async def listen(self, kind: str) -> int:
        """Serve *kind* on a free loopback port, with DOTTED in alice's INBOX; returns the port."""
        self.ctx.tls = tls.server_options(self.config)
        port = listen_loopback(self, make_factory(self.ctx, Kind.named(kind)), self.ctx.tls if kind == "pop3s" else None)
        await self.store.deliver([Target(ALICE)], Body.from_wire(DOTTED))
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


class HandshakeMetricsTests(POP3TestCase):
    """``mailsrv_tls_handshakes_total``: each handshake counted by version as it finishes, a failed one as failed."""

    def handshakes(self) -> dict[str, float]:
        text = self.ctx.metrics.render().decode()
        return {s.labels["version"]: s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "mailsrv_tls_handshakes_total" and s.labels["protocol"] == "pop3"}

    def listen_pop3s(self) -> int:
        """pop3s as :func:`mailsrv.listeners.listener` builds it: TLS right around our protocol."""
        self.ctx.tls = tls.server_options(self.config)
        port = reactor.listenTCP(0, TLSMemoryBIOFactory(self.ctx.tls, False, make_factory(self.ctx, Kind.POP3S)),
                                 interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        return port.getHost().port

    async def until(self, done) -> None:
        for _ in range(500):
            if done():
                return
            await task.deferLater(reactor, 0.01, lambda: None)
        self.fail(f"not reached: {self.handshakes()}")

    async def test_a_handshake_is_counted_while_the_session_is_open(self):
        port = self.listen_pop3s()
        opened = threading.Event()
        leave = threading.Event()

        def client() -> None:
            pop = poplib.POP3_SSL("127.0.0.1", port, context=client_context(self.config), timeout=10)
            opened.set()
            leave.wait(10)
            pop.quit()

        finished = threads.deferToThread(client)
        await threads.deferToThread(opened.wait, 10)
        await self.until(lambda: self.handshakes().get("TLSv1.3") == 1)
        leave.set()
        await finished
        await self.until(lambda: len(self.ctx.sessions) == 0)
        self.assertEqual(self.handshakes(), {"TLSv1.3": 1})

    async def test_a_client_that_leaves_before_the_handshake_finished_counts_as_failed(self):
        port = self.listen_pop3s()

        def client() -> None:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(b"USER alice\r\n")  # plain text on an implicit-TLS port
                raw.recv(1024)

        await threads.deferToThread(client)
        await self.until(lambda: self.handshakes().get("failed") == 1)
        self.assertEqual(self.handshakes(), {"failed": 1})

    async def test_behind_a_wrapper_the_handshake_is_counted_when_the_connection_ends(self):
        """A wrapping factory (haproxy:) keeps the handshake's news from our protocol: counted at the end."""
        self.ctx.tls = tls.server_options(self.config)
        port = listen_loopback(self, make_factory(self.ctx, Kind.POP3))

        def client() -> None:
            pop = poplib.POP3("127.0.0.1", port, timeout=10)
            pop.stls(client_context(self.config))
            pop.quit()

        await threads.deferToThread(client)
        await self.until(lambda: self.handshakes().get("TLSv1.3") == 1)
        self.assertEqual(self.handshakes(), {"TLSv1.3": 1})

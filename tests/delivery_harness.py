"""What the outbound delivery tests share: a test name server, receivers with certificates, a configured sender.

Every MX host answers on the receiver's port (``mx_port``); 127.0.0.2 is an
address where nothing listens, so a host there refuses the connection.
"""

from __future__ import annotations

import json
import os

from twisted.internet import reactor
from twisted.trial import unittest

from dns_harness import Zone, serve_dns
from mailsrv import config as configuration
from mailsrv.delivery.attempt import Options, RecipientResult
from mailsrv.delivery.remote import make_remote_delivery
from mailsrv.message.body import Body
from mailsrv.workers import InlineExecutor, PoolExecutor, Workers
from smtp_receiver import MailCA, Receiver

MESSAGE = b"From: alice@local.test\r\nTo: bob@example.test\r\nSubject: hi\r\n\r\nHello.\r\n"


def helo_name() -> str:
    """The name the sender greets with: the default ``hostname``."""
    return configuration.load(None).hostname


class DeliveryHarness(unittest.TestCase):
    """A test name server (:attr:`zone`), a CA for receivers (:attr:`ca`), and a sender configured per test."""

    def setUp(self) -> None:
        self.zone = Zone()
        self.dns_port = serve_dns(self, self.zone)
        pool = PoolExecutor(reactor, "dns", 2)
        pool.startService()
        self.addCleanup(pool.stopService)
        inline = InlineExecutor()
        self.workers = Workers(disk=inline, hashing=inline, search=inline, dns=pool, signing=inline)
        self.ca = MailCA()
        self.dir = self.mktemp()
        os.makedirs(self.dir)

    def mx(self, domain: str, *hosts: tuple[int, str, str]) -> None:
        """MX records for *domain*: ``(preference, host, ip)`` each, with the host's A record."""
        self.zone.add(domain, "MX", *(f"{preference} {host}." for preference, host, _ in hosts))
        for _, host, ip in hosts:
            self.zone.add(host, "A", ip)

    def receiver(self, *names: str, **script: object) -> tuple[Receiver, int]:
        receiver = Receiver(tls=self.ca.server_options(*(names or ("mx1.example.test",))), **script)
        return receiver, receiver.listen(self)

    def sender(self, port: int, implicit_tls_port: int = 465, **delivery: object) -> object:
        """A sender for MX hosts on *port*; *delivery* are more ``[delivery]`` keys (a dict is an inline table)."""
        settings = {"mx_port": port, "tls_ca_file": self.ca.write(self.dir), **delivery}
        lines = ["[dns]", f'nameservers = ["127.0.0.1:{self.dns_port}"]', "[delivery]"]
        lines += [f"{key} = {_toml(value)}" for key, value in settings.items()]
        path = os.path.join(self.dir, "mailsrv.toml")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        config = configuration.load(path, data_dir=self.dir)
        delivery = make_remote_delivery(config, reactor, self.workers, implicit_tls_port=implicit_tls_port)
        self.addCleanup(delivery.close)
        return delivery

    async def send(
        self, delivery: object, *recipients: str, body: Body | None = None, options: Options = Options(),
    ) -> list[RecipientResult]:
        return await delivery.deliver("q1", "alice@local.test", list(recipients), body or Body.from_wire(MESSAGE),
                                      options)


def _toml(value: object) -> str:
    """*value* as a TOML value: a dict as an inline table (``domains = {"a.test" = {tls = "none"}}``)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)

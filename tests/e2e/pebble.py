"""Debian's ``pebble`` ACME test server on loopback, for the real twistd's ``[tls] acme``.

:class:`Pebble` writes pebble's config (its API certificate from a
:class:`~smtp_receiver.MailCA`, whose file is the ``[tls] acme_ca_file``;
``httpPort``, the port pebble fetches HTTP-01 tokens from, set to the
server's ``http`` listener), starts it with ``-dnsserver`` pointing at a
test DNS that resolves the certificate's names to 127.0.0.1, and fetches the
root of the certificates it issues (random at every start) from its
management port.  ``PEBBLE_VA_ALWAYS_VALID=0``: every challenge is really
fetched; ``PEBBLE_VA_NOSLEEP=1`` and ``PEBBLE_WFE_NONCEREJECT=0`` take out
its random delays and rejected nonces, which only slow a test down.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field

from smtp_receiver import MailCA
from twistd_server import free_ports

PEBBLE = shutil.which("pebble")


@dataclass
class Pebble:
    """One pebble process; :attr:`directory` is the URL for ``[tls] acme_directory``."""

    root: str
    http_port: int
    dns_port: int
    ports: list[int] = field(default_factory=lambda: free_ports(3))
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        ca = MailCA()
        self.ca_file = ca.write(self.root)
        self._cert, self._key = ca.write_pair(self.root, "127.0.0.1")

    @property
    def directory(self) -> str:
        return f"https://127.0.0.1:{self.ports[0]}/dir"

    def start(self) -> None:
        config = os.path.join(self.root, "pebble-config.json")
        with open(config, "w") as f:
            json.dump({"pebble": {
                "listenAddress": f"127.0.0.1:{self.ports[0]}",
                "managementListenAddress": f"127.0.0.1:{self.ports[1]}",
                "certificate": self._cert, "privateKey": self._key,
                "httpPort": self.http_port, "tlsPort": self.ports[2],
                "ocspResponderURL": "", "externalAccountBindingRequired": False,
            }}, f)
        env = dict(os.environ, PEBBLE_VA_NOSLEEP="1", PEBBLE_VA_ALWAYS_VALID="0", PEBBLE_WFE_NONCEREJECT="0")
        self.log = open(os.path.join(self.root, "pebble.log"), "wb")
        self.process = subprocess.Popen([PEBBLE, "-config", config, "-dnsserver", f"127.0.0.1:{self.dns_port}"],
                                        env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.ports[0]), timeout=1).close()
                return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"pebble did not start:\n{self.output()}") from None
                time.sleep(0.05)

    def issuing_root(self) -> str:
        """The PEM root of the certificates this pebble issues."""
        context = ssl.create_default_context(cafile=self.ca_file)
        url = f"https://127.0.0.1:{self.ports[1]}/roots/0"
        with urllib.request.urlopen(url, timeout=10, context=context) as response:
            return response.read().decode("ascii")

    def output(self) -> str:
        with open(os.path.join(self.root, "pebble.log"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.log.close()

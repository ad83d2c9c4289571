"""Start the real ``twistd mailsrv`` on free loopback ports, for end-to-end tests.

The server runs as a subprocess exactly as an admin starts it (``twistd -n
mailsrv --config FILE``), with the checkout on ``PYTHONPATH`` so the plugin
is found whether or not the package is installed.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from mailsrv.listeners import Kind

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
HOSTNAME = "mail.example.test"


def _ephemeral_low() -> int:
    """The first port the kernel hands out to outgoing connections (Linux: 32768 by default)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(count: int) -> list[int]:
    """Ports free now, below the kernel's ephemeral range.

    A server restarted on its ports (after a SIGKILL, say) must find them
    free again: a port the kernel handed out as ephemeral could meanwhile
    be the source port of one of the tests' own outgoing connections.
    Ports below the range are handed out to no one; they are tried at
    random and kept when they bind.
    """
    high = _ephemeral_low()
    chosen: list[int] = []
    while len(chosen) < count:
        port = random.randrange(10000, high)
        if port not in chosen and bindable(port):
            chosen.append(port)
    return chosen


def bindable(port: int) -> bool:
    """Whether a TCP socket can bind 127.0.0.1:*port* now (nothing else holds it)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def twistd() -> list[str]:
    """The twistd command of the Python running the tests (it has no ``-m`` form)."""
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def env(checkout: str = REPO) -> dict[str, str]:
    """The test's environment, with *checkout* importable and no ``$MAILSRV_CONFIG`` of the caller's."""
    e = dict(os.environ)
    e["PYTHONPATH"] = checkout + os.pathsep + e.get("PYTHONPATH", "")
    e.pop("MAILSRV_CONFIG", None)
    return e


def mailsrv_cli(config: str | None, *args: str, stdin: str | None = None, cwd: str | None = None,
                checkout: str = REPO) -> subprocess.CompletedProcess:
    """Run the ``mailsrv`` admin command of *checkout* as a user would (``config`` None: no ``--config``)."""
    options = [] if config is None else ["--config", config]
    return subprocess.run(
        [sys.executable, "-m", "mailsrv.cli", *options, *args],
        input=stdin, capture_output=True, text=True, env=env(checkout), timeout=60, cwd=cwd,
    )


@dataclass
class Server:
    """A running mailsrv and the facts a client needs to talk to it."""

    root: str
    extra_config: str = ""
    #: Listener ports by kind; kinds left out are turned off. Empty: all kinds on free ports.
    ports: dict[str, int] = field(default_factory=dict)
    twistd_args: list[str] = field(default_factory=list)
    #: A command that runs twistd (``setpriv ...``), as a service manager would.
    wrapper: list[str] = field(default_factory=list)
    domains: tuple[str, ...] = ("example.test", "other.test")
    #: The mailsrv source tree that runs (a benchmark compares another checkout's with this one's).
    checkout: str = REPO
    process: subprocess.Popen | None = None

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def config(self) -> str:
        return os.path.join(self.root, "mailsrv.toml")

    @property
    def logfile(self) -> str:
        return os.path.join(self.root, "twistd.log")

    @property
    def cafile(self) -> str:
        return os.path.join(self.data_dir, "tls", "selfsigned-cert.pem")

    def write_config(self) -> None:
        if not self.ports:
            self.ports = {kind.label: port for kind, port in zip(Kind, free_ports(len(Kind)))}
        listen = "\n".join(
            f'{k} = ["tcp:{self.ports[k]}:interface=127.0.0.1"]' if k in self.ports else f"{k} = []"
            for k in (kind.label for kind in Kind)
        )
        # No test server asks the internet: without a [dns] of the test's own, lookups (the outbound
        # queue's MX lookups) go to a loopback port where nothing answers, and fail after a second.
        dns = "" if "[dns]" in self.extra_config else f'[dns]\nnameservers = ["127.0.0.1:{free_ports(1)[0]}"]\ntimeout = 1\n'
        domains = ", ".join(f'"{d}"' for d in self.domains)
        with open(self.config, "w") as f:
            f.write(
                f'hostname = "{HOSTNAME}"\ndata_dir = "{self.data_dir}"\n'
                f'domains = [{domains}]\n{self.extra_config}\n{dns}[listen]\n{listen}\n'
            )

    def start(self) -> None:
        os.makedirs(self.root, exist_ok=True)
        if not os.path.exists(self.config):
            self.write_config()
        self.process = subprocess.Popen(
            [*self.wrapper, *twistd(), "-n", "--pidfile=", f"--logfile={self.logfile}", *self.twistd_args,
             "mailsrv", "--config", self.config],
            env=env(self.checkout), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=self.root,
        )
        deadline = time.monotonic() + 30
        pending = set(self.ports.values())
        while pending:
            if self.process.poll() is not None:
                raise RuntimeError(f"mailsrv exited: {self.process.stdout.read().decode()}\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"mailsrv did not listen in time\n{self.log()}")
            for port in list(pending):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    pending.discard(port)
                except OSError:
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stdout:
            self.process.stdout.close()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def add_user(self, address: str, password: str) -> None:
        """``mailsrv --config FILE user add ADDRESS --password-stdin``, the documented form.

        Before the server's first start its data dir does not exist yet and
        the command must be told to make it (``--create``).
        """
        if not os.path.exists(self.config):
            self.write_config()
        create = [] if os.path.isdir(self.data_dir) else ["--create"]
        done = mailsrv_cli(self.config, "user", "add", address, "--password-stdin", *create, stdin=password + "\n",
                           checkout=self.checkout)
        assert done.returncode == 0, done.stderr

    def tls(self) -> ssl.SSLContext:
        """A client context that verifies the server's generated certificate."""
        return ssl.create_default_context(cafile=self.cafile)

    def is_implicit(self, kind: str) -> bool:
        return Kind.named(kind).implicit_tls

    def alive(self) -> bool:
        """The server still answers a fresh SMTP connection with a 220 greeting."""
        with socket.create_connection(("127.0.0.1", self.ports["smtp"]), timeout=10) as s:
            return s.recv(1024).startswith(b"220 ")


def one_user_server(root: str, address: str, password: str) -> "Iterator[Server]":
    """A started server with one user, stopped when the generator is closed (the body of a fixture)."""
    srv = Server(root)
    srv.start()
    srv.add_user(address, password)
    yield srv
    srv.stop()

"""SMTP delivery benchmark: accepted-and-stored messages per second, next to the disk.

An absolute msg/s figure on a shared machine drifts by 2x within an hour, so
every figure printed here is paired with the disk's own durable-write ceiling
measured in the same run, on the same file system, and shown as a ratio; with
``--server-port`` an already running server (e.g. a Postfix peer) is
measured in the same run too, and with ``--baseline PATH`` a second mailsrv
checkout (an older commit), all interleaved cell by cell with our own server,
so "before/after" is one command.

Every server is measured in up to three modes, reported as separate rows:

``empty``
    nobody has the recipient's INBOX open, the best case;
``idle``
    an IMAP session IDLEs on the recipient's INBOX during the cell, as a
    mail client does all day.  A server that updates its per-folder state
    (UIDs, notifications) for open folders pays for it here; figures
    measured without it were too good (issue 5: 1.34x Postfix without,
    0.85x with).  Each mailsrv mode runs in its own process, so the
    ``empty`` one has never had the folder opened.
``checks``
    mailsrv only: the port 25 sender checks run on every message (SPF on
    MAIL FROM and HELO, DKIM, ARC, DMARC; ``[policy] trusted_networks =
    []``), answered by a name server on loopback that this script starts
    with the sender domain's SPF, DKIM and DMARC records.  The Python client
    sends a DKIM-signed message; smtp-source cannot, so with it DKIM finds
    no signature.  The summary gives ``checks/empty`` per server: what the
    checks cost in intake rate (issue 9 allows at most 30 %).

For each (size, concurrency) cell and each target server:

1. measure the disk ceiling: a loop of open+write+fsync+rename+fsync(dir) of
   a message-sized file (the Maildir delivery pattern the store follows),
   with one thread and with as many threads as the server can write with;
2. empty the recipient's Maildir (``new/`` and ``cur/``); in ``idle`` mode,
   log in over IMAP, SELECT INBOX and IDLE;
3. start the clock, send N messages to alice@example.test over C concurrent
   SMTP connections, and stop the clock once every accepted message is in
   ``new/`` or ``cur/`` (a server may answer 250 before delivering, as
   Postfix does; ours answers after the fsync).

No timing is asserted: this prints figures for a human to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from typing import Callable, Iterator, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]
from dns_harness import ThreadedDNS, Zone  # noqa: E402  (needs the tests on sys.path)
from senderauth_harness import key, publish_key, sign  # noqa: E402
SMTP_SOURCE = "/usr/sbin/smtp-source"
RECIPIENT = "alice@example.test"
#: The sender of mode ``checks``: a domain of the bench's name server, with SPF, DKIM and DMARC records.
CHECKED_SENDER = "bench@example.net"
#: The client's HELO name (both clients), which has an SPF record of its own in mode ``checks``.
HELO = "bench.example.test"
#: mailsrv's reactor thread pool size (``tap.makeService``): at most this many
#: durable writes run at once, so more disk threads would not model the server.
SERVER_WRITE_THREADS = 32
#: twistd for this interpreter; ``python -m twisted`` is ``twist``, which has no ``-n``.
TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


# --------------------------------------------------------------------------
# Disk ceiling


@dataclass
class DiskCeiling:
    """Durable Maildir-style writes per second of one loop configuration."""

    size: int
    threads: int
    writes: int
    seconds: float

    @property
    def per_second(self) -> float:
        """Durable writes per second over the whole loop."""
        return self.writes / self.seconds if self.seconds else 0.0


def disk_ceiling(base: str, size: int, threads: int, seconds: float) -> DiskCeiling:
    """Run write+fsync+rename+fsync(dir) from *threads* threads for *seconds*.

    All threads share one ``tmp/`` and one ``new/``, as every SMTP connection
    to one recipient shares that recipient's Maildir, so directory-inode
    contention and journal-commit batching are the server's, not an ideal.
    """
    work = tempfile.mkdtemp(prefix=f"ceiling-{size}-{threads}-", dir=base)
    tmp_dir, new_dir = os.path.join(work, "tmp"), os.path.join(work, "new")
    os.mkdir(tmp_dir)
    os.mkdir(new_dir)
    payload = (b"0123456789abcdef" * (size // 16 + 1))[:size]
    names = itertools.count()  # next() on a count is atomic under the GIL
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    deadline = [0.0]

    def loop(slot: int) -> None:
        dir_fd = os.open(new_dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            start.wait()
            while time.monotonic() < deadline[0]:
                name = f"{next(names)}.ceiling"
                tmp_path = os.path.join(tmp_dir, name)
                fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    view = memoryview(payload)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.rename(tmp_path, os.path.join(new_dir, name))
                os.fsync(dir_fd)
                counts[slot] += 1
        finally:
            os.close(dir_fd)

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    began = time.monotonic()
    deadline[0] = began + seconds
    start.wait()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - began
    shutil.rmtree(work)
    return DiskCeiling(size=size, threads=threads, writes=sum(counts), seconds=elapsed)


# --------------------------------------------------------------------------
# Maildir and process accounting


def count_stored(maildir: str) -> int:
    """Messages delivered to *maildir*'s INBOX (``new/`` plus ``cur/``)."""
    total = 0
    for sub in ("new", "cur"):
        try:
            with os.scandir(os.path.join(maildir, sub)) as entries:
                total += sum(1 for _ in entries)
        except FileNotFoundError:
            pass
    return total


def empty_maildir(maildir: str) -> None:
    """Start a cell with small, empty ``new/`` and ``cur/`` directories.

    ext4 directories never shrink, so deleting the files alone would leave
    each later cell scanning a directory sized by all earlier ones; the
    directories are recreated with their owner and mode (Postfix delivers as
    ``mail``, not as us).
    """
    for sub in ("new", "cur"):
        path = os.path.join(maildir, sub)
        if not os.path.isdir(path):
            continue
        st = os.stat(path)
        old = f"{path}.bench-old"
        os.rename(path, old)
        os.mkdir(path, st.st_mode & 0o7777)
        os.chown(path, st.st_uid, st.st_gid)
        os.chmod(path, st.st_mode & 0o7777)
        shutil.rmtree(old)


_TICKS = os.sysconf("SC_CLK_TCK")


def process_tree_cpu(root: int) -> float:
    """CPU seconds of *root* and its live descendants, with their reaped children.

    ``cutime``/``cstime`` carry the CPU of workers that already exited, so a
    forking server (Postfix's smtpd, cleanup, virtual) is fully counted.
    """
    parents: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
        except OSError:
            continue
        fields_after_name = text[text.rfind(")") + 2 :].split()
        stats[int(entry)] = fields_after_name
        parents.setdefault(int(fields_after_name[1]), []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += sum(int(x) for x in stats[pid][11:15])  # utime stime cutime cstime
        todo.extend(parents.get(pid, []))
    return total / _TICKS


def machine_cpu() -> tuple[int, int]:
    """(total, idle) jiffies of all cores, to tell a CPU-bound run from a disk-bound one."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]


def children_cpu() -> float:
    """CPU seconds of our reaped child processes (smtp-source after it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------
# Load generators


@dataclass
class ClientResult:
    """What the load generator saw: replies and its own CPU cost."""

    accepted: int
    rejected: int
    errors: list[str]
    cpu_seconds: float


def message_body(size: int) -> bytes:
    """*size* octets of plain text in 78-octet CRLF lines, none starting with a dot."""
    line = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen jugs"[:76] + b"\r\n"
    body = line * (size // len(line) + 1)
    return body[: max(size - 2, 0)] + b"\r\n" if size >= 2 else b"\r\n"


def message_headers(number: int, size: int, sender: str, recipient: str) -> bytes:
    """The header block a mail client would write for message *number*."""
    return (
        f"From: Bench Sender <{sender}>\r\n"
        f"To: Alice <{recipient}>\r\n"
        f"Subject: delivery benchmark message {number} ({size} octets)\r\n"
        f"Date: {formatdate(localtime=True)}\r\n"
        f"Message-ID: <{number}.{os.getpid()}.{time.time_ns()}@bench.example.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
    ).encode("ascii")


async def _reply(reader: asyncio.StreamReader) -> int:
    """The code of one (possibly multi-line) SMTP reply."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return int(line[:3])


async def _ehlo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Greet; return whether the server offers PIPELINING (RFC 2920)."""
    if await _reply(reader) != 220:
        raise ConnectionError("no 220 greeting")
    writer.write(f"EHLO {HELO}\r\n".encode())
    pipelining = False
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection after EHLO")
        if line[4:].strip().upper() == b"PIPELINING":
            pipelining = True
        if line[3:4] != b"-":
            if line[:3] != b"250":
                raise ConnectionError(f"EHLO refused: {line!r}")
            return pipelining


async def _session(
    port: int, take: Callable[[], int | None], compose: Callable[[int], bytes], sender: str, result: ClientResult
) -> None:
    """One connection: EHLO once, then transactions until no message is left."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
    try:
        pipelining = await _ehlo(reader, writer)
        envelope = f"MAIL FROM:<{sender}>\r\n".encode(), f"RCPT TO:<{RECIPIENT}>\r\n".encode(), b"DATA\r\n"
        while (number := take()) is not None:
            if pipelining:
                writer.write(b"".join(envelope))
                codes = [await _reply(reader) for _ in envelope]
            else:
                codes = []
                for command in envelope:
                    writer.write(command)
                    codes.append(await _reply(reader))
                    if codes[-1] >= 400:
                        break
            if codes[-1] == 354:
                writer.write(compose(number) + b".\r\n")
                codes.append(await _reply(reader))
            if codes[:2] == [250, 250] and codes[2:] == [354, 250]:
                result.accepted += 1
            else:
                result.rejected += 1
                writer.write(b"RSET\r\n")
                await _reply(reader)
        writer.write(b"QUIT\r\n")
        await writer.drain()
    finally:
        writer.close()


def run_python_client(
    port: int, messages: int, concurrency: int, size: int, sender: str, signed: bool = False
) -> ClientResult:
    """Send with an in-process asyncio client; its CPU competes with the server's.

    *signed*: every message is one message DKIM-signed by the sender's
    domain (signing each would cost the client more than the server's check).
    """
    result = ClientResult(accepted=0, rejected=0, errors=[], cpu_seconds=0.0)
    body = message_body(size)
    numbers = iter(range(messages))

    def take() -> int | None:
        return next(numbers, None)

    def unsigned(number: int) -> bytes:
        return message_headers(number, len(body), sender, RECIPIENT) + body

    one = sign(unsigned(0), domain=sender.rpartition("@")[2]) if signed else b""
    compose: Callable[[int], bytes] = (lambda number: one) if signed else unsigned

    async def all_sessions() -> None:
        sessions = [_session(port, take, compose, sender, result) for _ in range(min(concurrency, messages))]
        for outcome in await asyncio.gather(*sessions, return_exceptions=True):
            if isinstance(outcome, BaseException):
                result.errors.append(f"{type(outcome).__name__}: {outcome}")

    cpu_before = time.process_time()
    asyncio.run(all_sessions())
    result.cpu_seconds = time.process_time() - cpu_before
    return result


def run_smtp_source(
    port: int, messages: int, concurrency: int, size: int, sender: str, timeout: float
) -> ClientResult:
    """Send with Postfix's smtp-source: C code, so the server keeps the CPU.

    ``-d`` keeps each session's connection for many messages, as the Python
    client does.  smtp-source stops at the first reply that is not the
    expected one, so exit status 0 means every message was answered 250.
    """
    command = [
        SMTP_SOURCE, "-d", "-s", str(concurrency), "-m", str(messages), "-l", str(size),
        "-M", HELO, "-f", sender, "-t", RECIPIENT, f"127.0.0.1:{port}",
    ]
    cpu_before = children_cpu()
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ClientResult(0, 0, [f"smtp-source timed out after {timeout:.0f}s"], children_cpu() - cpu_before)
    cpu = children_cpu() - cpu_before
    if done.returncode == 0:
        return ClientResult(messages, 0, [], cpu)
    tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
    return ClientResult(0, messages, [f"smtp-source exit {done.returncode}: {' | '.join(tail)}"], cpu)


# --------------------------------------------------------------------------
# Target servers


@dataclass(frozen=True)
class ImapLogin:
    """Where and as whom an IDLE session logs in."""

    port: int
    user: str
    password: str
    tls: bool


@dataclass
class Target:
    """A server to measure: where to send, where mail lands, whose CPU to count."""

    server: str  # which server, e.g. "mailsrv", "baseline", "postfix"
    port: int
    maildir: str
    pid: int | None
    idle: ImapLogin | None = None  # set: measured with an IMAP session IDLEing on the INBOX
    checks: bool = False  # the sender checks run on every message (mode ``checks``)

    @property
    def label(self) -> str:
        """The server and its mode, as the table shows it."""
        return self.server + ("+idle" if self.idle else "+checks" if self.checks else "")


class IdleSession:
    """An IMAP client IDLEing on INBOX (RFC 2177) for the length of one cell.

    A thread reads what the server pushes (``* n EXISTS`` for every
    delivery), so the server never waits for this client to read.
    """

    def __init__(self, login: ImapLogin) -> None:
        sock = socket.create_connection(("127.0.0.1", login.port), timeout=30)
        if login.tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # loopback, generated certificate
            sock = context.wrap_socket(sock)
        self.sock = sock
        self.file = sock.makefile("rb")
        self.updates = 0
        self._expect(None, b"* OK")
        self._command(b"a", f'LOGIN "{login.user}" "{login.password}"'.encode())
        self._command(b"b", b"SELECT INBOX")
        self.sock.sendall(b"c IDLE\r\n")
        self._expect(None, b"+")
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, name="idle-reader", daemon=True)
        self._reader.start()

    def _expect(self, tag: bytes | None, prefix: bytes) -> None:
        """Read lines until the one tagged *tag* (or the first, untagged); it must start with *prefix*."""
        while True:
            line = self.file.readline()
            if not line:
                raise RuntimeError("the IMAP server closed the IDLE session")
            if tag is None or line.startswith(tag + b" "):
                if not line.startswith(prefix):
                    raise RuntimeError(f"IMAP answered {line!r}")
                return

    def _command(self, tag: bytes, command: bytes) -> None:
        self.sock.sendall(tag + b" " + command + b"\r\n")
        self._expect(tag, tag + b" OK")

    def _read(self) -> None:
        for line in self.file:
            if line.endswith(b" EXISTS\r\n"):
                self.updates += 1
            elif line.startswith(b"c "):
                return

    def close(self) -> int:
        """End IDLE and log out; return how many EXISTS updates arrived."""
        try:
            self.sock.sendall(b"DONE\r\n")
            self._reader.join(30)
            self.sock.sendall(b"d LOGOUT\r\n")
        except OSError:
            pass
        finally:
            self.file.close()
            self.sock.close()
        return self.updates


def free_port() -> int:
    """A currently unused loopback port (the peer Postfix holds mailsrv's 2525)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once *port* accepts, or fail early if *process* has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mailsrv exited with status {process.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"mailsrv did not listen on port {port} within {timeout:.0f}s")


def checks_dns() -> ThreadedDNS:
    """A name server (not started) with the records the sender checks of mode ``checks`` ask for.

    The sender's domain lets 127.0.0.1 send (SPF), publishes the key the
    client signs with (DKIM) and ``p=reject`` (DMARC); the HELO name has
    an SPF record too.  The server's resolver caches the answers, as one
    in front of a real MX would for a busy sender.
    """
    zone = Zone()
    domain = CHECKED_SENDER.rpartition("@")[2]
    for name in (domain, HELO):
        zone.add(name, "TXT", '"v=spf1 ip4:127.0.0.1 -all"')
    zone.add(f"_dmarc.{domain}", "TXT", '"v=DMARC1; p=reject"')
    publish_key(zone, domain, "s1", key(domain))
    return ThreadedDNS(zone)


def admin_module(checkout: str) -> str:
    """The module that runs the ``mailsrv`` admin command in *checkout*.

    It moved during the project's life (``mailsrv.admin``, then the
    ``mailsrv.cli`` package); a baseline checkout may be from either side.
    """
    for path, module in (("mailsrv/cli/__main__.py", "mailsrv.cli"), ("mailsrv/admin.py", "mailsrv.admin")):
        if os.path.exists(os.path.join(checkout, path)):
            return module
    raise RuntimeError(f"{checkout} is not a mailsrv checkout (no admin command found)")


class OwnServer:
    """A throw-away mailsrv from one checkout: temp data dir, generated config, one user.

    SMTP listens on a free port; with *imap*, IMAP over implicit TLS too (for
    the IDLE session; TLS needs no config key, so old checkouts take it).
    """

    def __init__(self, base: str, name: str, checkout: str = REPO, imap: bool = False,
                 password: str = "bench-password", dns_port: int | None = None) -> None:
        self.name = name
        self.checkout = os.path.abspath(checkout)
        self.dns_port = dns_port
        base = os.path.join(base, f"{name}{'-idle' if imap else '-checks' if dns_port else ''}")
        os.makedirs(base)
        self.data_dir = os.path.join(base, "data")
        self.config = os.path.join(base, "mailsrv.toml")
        self.log = os.path.join(base, "mailsrv.log")
        self.port = free_port()
        self.imap_port = free_port() if imap else None
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def maildir(self) -> str:
        """alice's Maildir: ``<data_dir>/mail/<domain>/<local>``."""
        local, _, domain = RECIPIENT.partition("@")
        return os.path.join(self.data_dir, "mail", domain, local)

    def _env(self) -> dict[str, str]:
        """PYTHONPATH to the checkout: twistd finds plugins there, not in editable installs."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [self.checkout, env.get("PYTHONPATH")]))
        return env

    def start(self) -> Target:
        """Configure, add the user, start twistd and return once SMTP accepts connections.

        Only SMTP (and IMAPS when asked) listens, on free ports, so the run
        neither collides with a peer on mailsrv's default ports nor pays for
        listeners it does not use.
        """
        listen = {"smtp": self.port, "imaps": self.imap_port}
        kinds = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")
        with open(self.config, "w") as f:
            f.write(
                'hostname = "mail.example.test"\n'
                f"data_dir = {json.dumps(self.data_dir)}\n"
                'domains = ["example.test"]\n'
                "[listen]\n"
                + "".join(f'{kind} = ["tcp:{listen[kind]}:interface=127.0.0.1"]\n' if listen.get(kind)
                          else f"{kind} = []\n" for kind in kinds)
                + (f'[policy]\ntrusted_networks = []\n[dns]\nnameservers = ["127.0.0.1:{self.dns_port}"]\n'
                   if self.dns_port else "")
            )
        added = subprocess.run(
            [sys.executable, "-m", admin_module(self.checkout), "--config", self.config,
             "user", "add", RECIPIENT, "--password-stdin"],
            input=f"{self.password}\n".encode(), env=self._env(), cwd=self.checkout, capture_output=True,
        )
        if added.returncode != 0:
            raise RuntimeError(f"mailsrv user add failed: {added.stderr.decode(errors='replace').strip()}")
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", TWISTD, "-n", "--pidfile=", "mailsrv", "--config", self.config],
                stdout=log, stderr=subprocess.STDOUT, env=self._env(), cwd=self.checkout,
            )
        try:
            for port in filter(None, (self.port, self.imap_port)):
                wait_for_port(port, self.process, timeout=60)
        except RuntimeError as e:
            self.stop()
            with open(self.log, errors="replace") as log_text:
                raise RuntimeError(f"{e}; end of {self.log}:\n{log_text.read()[-3000:]}") from None
        idle = ImapLogin(self.imap_port, RECIPIENT, self.password, tls=True) if self.imap_port else None
        return Target(self.name, self.port, self.maildir, self.process.pid, idle, checks=self.dns_port is not None)

    def stop(self) -> None:
        """SIGTERM, as an init system would, so shutdown is exercised too; kill if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --------------------------------------------------------------------------
# One measurement


@dataclass
class Row:
    """One (target, size, concurrency) measurement with its same-run disk ceiling."""

    target: str
    client: str
    size: int
    concurrency: int
    messages: int
    accepted: int
    stored: int
    accept_seconds: float
    stored_seconds: float | None
    disk_1_thread: float
    disk_threads: int
    disk_n_threads: float
    server_cpu_seconds: float | None
    client_cpu_seconds: float
    machine_busy: float
    errors: list[str] = field(default_factory=list)
    server: str = ""  # the server without its mode
    idle: bool = False  # an IMAP session IDLEd on the INBOX meanwhile
    checks: bool = False  # the sender checks ran on every message
    idle_updates: int | None = None  # EXISTS updates that session received

    @property
    def per_second(self) -> float | None:
        """Accepted-and-stored messages per second; None when not all were stored."""
        if self.stored_seconds is None or self.accepted < self.messages:
            return None
        return self.messages / self.stored_seconds

    @property
    def ratio(self) -> float | None:
        """Share of the disk's ceiling reached, against the multi-threaded loop."""
        rate = self.per_second
        return rate / self.disk_n_threads if rate is not None and self.disk_n_threads else None


def measure(
    target: Target, client: str, size: int, concurrency: int, messages: int,
    sender: str, timeout: float, ceiling: tuple[DiskCeiling, DiskCeiling],
) -> Row:
    """Send *messages* to *target* and time them until all are in its Maildir.

    In ``idle`` mode the IDLE session starts after the Maildir is emptied
    (so it SELECTs an empty INBOX) and ends once every message is stored.
    """
    empty_maildir(target.maildir)
    sender = CHECKED_SENDER if target.checks else sender
    idle = IdleSession(target.idle) if target.idle else None
    try:
        base = count_stored(target.maildir)
        server_cpu = process_tree_cpu(target.pid) if target.pid else None
        busy_before = machine_cpu()
        began = time.monotonic()
        if client == "smtp-source":
            sent = run_smtp_source(target.port, messages, concurrency, size, sender, timeout)
        else:
            sent = run_python_client(target.port, messages, concurrency, size, sender, signed=target.checks)
        accept_seconds = time.monotonic() - began
        stored, stored_seconds = wait_stored(target.maildir, base, sent, began, timeout)
        busy_after = machine_cpu()
    finally:
        idle_updates = idle.close() if idle else None
    total, idle_jiffies = busy_after[0] - busy_before[0], busy_after[1] - busy_before[1]
    if sent.rejected:
        sent.errors.append(f"{sent.rejected} messages not answered 250")
    return Row(
        target=target.label, client=client, size=size, concurrency=concurrency, messages=messages,
        accepted=sent.accepted, stored=stored, accept_seconds=accept_seconds, stored_seconds=stored_seconds,
        disk_1_thread=ceiling[0].per_second, disk_threads=ceiling[1].threads, disk_n_threads=ceiling[1].per_second,
        server_cpu_seconds=None if server_cpu is None else process_tree_cpu(target.pid) - server_cpu,
        client_cpu_seconds=sent.cpu_seconds, machine_busy=1 - idle_jiffies / total if total else 0.0,
        errors=sent.errors, server=target.server, idle=target.idle is not None, idle_updates=idle_updates,
        checks=target.checks,
    )


def wait_stored(maildir: str, base: int, sent: ClientResult, began: float, timeout: float) -> tuple[int, float | None]:
    """Wait until every accepted message is in *maildir*: (stored, seconds since *began*), None if not in time."""
    while True:
        stored = count_stored(maildir) - base
        if stored >= sent.accepted:
            return stored, time.monotonic() - began
        if time.monotonic() > began + timeout:
            sent.errors.append(f"only {stored} of {sent.accepted} accepted messages stored after {timeout:.0f}s")
            return stored, None
        time.sleep(0.01)


# --------------------------------------------------------------------------
# Output


HEADER = (
    f"{'target':<16} {'size':>6} {'conc':>4} {'msgs':>5} {'accept s':>8} {'stored s':>8} {'msg/s':>7} "
    f"{'disk 1t/s':>9} {'disk Nt/s':>12} {'ratio':>5} {'srv cpu':>7} {'gen cpu':>7} {'busy':>4} {'idle upd':>8}"
)


def _number(value: float | None, width: int, digits: int) -> str:
    """*value* right-aligned, or ``-`` when the run could not produce it."""
    return f"{value:>{width}.{digits}f}" if value is not None else f"{'-':>{width}}"


def format_row(row: Row) -> str:
    """One table line; ``-`` marks a figure the run could not produce."""
    return (
        f"{row.target:<16} {row.size:>6} {row.concurrency:>4} {row.messages:>5} "
        f"{row.accept_seconds:>8.2f} {_number(row.stored_seconds, 8, 2)} {_number(row.per_second, 7, 1)} "
        f"{row.disk_1_thread:>9.0f} {row.disk_n_threads:>7.0f} ({row.disk_threads:>2}) {_number(row.ratio, 5, 2)} "
        f"{_number(row.server_cpu_seconds, 7, 2)} {row.client_cpu_seconds:>7.2f} {100 * row.machine_busy:>3.0f}% "
        f"{_number(row.idle_updates, 8, 0)}"
    )


def compare(cell: Sequence[Row]) -> Iterator[str]:
    """Within one cell and one mode, the first server's msg/s against each other server's.

    Then, per server measured with and without the checks, ``checks/empty``.
    """
    for mode in ((False, False), (True, False), (False, True)):
        rows = [row for row in cell if (row.idle, row.checks) == mode]
        for other in rows[1:]:
            yield _ratio(rows[0], other)
    for checked in (row for row in cell if row.checks):
        for plain in (row for row in cell if row.server == checked.server and not row.idle and not row.checks):
            yield _ratio(checked, plain)


def _ratio(ours: Row, other: Row) -> str:
    """One summary line: both rates and their ratio (``-`` when a run lost mail)."""
    ratio = f"{ours.per_second / other.per_second:.2f}" if ours.per_second and other.per_second else "-"
    return (
        f"size {ours.size:>6} conc {ours.concurrency:>3}: {ours.target} {_number(ours.per_second, 1, 1)} msg/s, "
        f"{other.target} {_number(other.per_second, 1, 1)} msg/s, {ours.target}/{other.target} = {ratio}"
    )


# --------------------------------------------------------------------------
# Command line


def _int_list(text: str) -> list[int]:
    """``"1,20,100"`` -> ``[1, 20, 100]``."""
    return [int(part) for part in text.split(",") if part]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Options, checked together so a run never starts only to fail halfway."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=_int_list, default=[2048, 102400], help="message body sizes in octets")
    parser.add_argument("--concurrency", type=_int_list, default=[20], help="connections, e.g. 1,20,100")
    parser.add_argument("--messages", type=int, help="messages per cell (default 2000 below 64 KiB, else 500)")
    parser.add_argument("--repeats", type=int, default=1, help="run every cell this many times")
    parser.add_argument(
        "--client", choices=("python", "smtp-source"),
        default="smtp-source" if os.access(SMTP_SOURCE, os.X_OK) else "python",
        help="load generator (default: smtp-source if installed; package postfix)",
    )
    parser.add_argument("--server-port", type=int, help="also measure the server already listening here")
    parser.add_argument("--maildir", help="alice's Maildir of that server (to count stored messages)")
    parser.add_argument("--server-label", default="peer", help="name of that server in the table")
    parser.add_argument("--server-pidfile", help="pid file of that server, to count its CPU (e.g. Postfix master.pid)")
    parser.add_argument("--server-imap-port", type=int, help="IMAP port of that server (e.g. Dovecot), for idle mode")
    parser.add_argument("--server-imap-tls", action="store_true", help="that IMAP port speaks implicit TLS")
    parser.add_argument("--server-user", default=RECIPIENT, help="IMAP login of alice on that server")
    parser.add_argument("--server-password", help="IMAP password of alice on that server")
    parser.add_argument("--no-mailsrv", action="store_true", help="measure only --server-port")
    parser.add_argument("--baseline", metavar="PATH",
                        help="also measure the mailsrv checkout at PATH (e.g. an older commit)")
    parser.add_argument("--baseline-label", default="baseline", help="name of that checkout in the table")
    parser.add_argument(
        "--modes", type=lambda text: [m for m in text.split(",") if m], default=["empty", "idle"],
        help="empty (no IMAP session), idle (one IDLEs on the INBOX), checks (port 25 sender checks on), "
             "comma-separated",
    )
    parser.add_argument("--sender", default="sender@example.test")
    parser.add_argument("--disk-seconds", type=float, default=3.0, help="length of each disk-ceiling loop")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on a cell after this long")
    parser.add_argument("--tmpdir", help="where the data dir goes; put it on the disk the store would use")
    parser.add_argument("--keep", action="store_true", help="keep the temp data dir and server log")
    parser.add_argument("--json", help="also write every row (and the settings) to this file")
    parser.add_argument("--quick", action="store_true", help="tiny run: few messages, short disk loops")
    args = parser.parse_args(argv)
    if (args.server_port is None) != (args.maildir is None):
        parser.error("--server-port and --maildir go together")
    if args.no_mailsrv and args.server_port is None:
        parser.error("--no-mailsrv needs --server-port")
    if not args.modes or set(args.modes) - {"empty", "idle", "checks"}:
        parser.error("--modes takes empty, idle and checks, comma-separated")
    if args.server_imap_port is not None and args.server_password is None:
        parser.error("--server-imap-port needs --server-password")
    if args.baseline is not None and not os.path.isdir(os.path.join(args.baseline, "mailsrv")):
        parser.error(f"--baseline {args.baseline}: not a mailsrv checkout")
    if args.client == "smtp-source" and not os.access(SMTP_SOURCE, os.X_OK):
        parser.error(f"{SMTP_SOURCE} not found (apt-get install postfix), use --client python")
    if args.quick:
        args.disk_seconds = min(args.disk_seconds, 0.5)
    return args


def messages_for(args: argparse.Namespace, size: int) -> int:
    """Messages per cell: enough for a few seconds of sending at the expected rate."""
    if args.messages is not None:
        return args.messages
    if args.quick:
        return 100 if size < 65536 else 20
    return 2000 if size < 65536 else 500


def warm_up(target: Target, sender: str) -> None:
    """A few messages first, so lazy imports and Maildir creation are not timed."""
    empty_maildir(target.maildir)
    sent = run_python_client(target.port, 3, 1, 512, CHECKED_SENDER if target.checks else sender)
    if sent.accepted != 3:
        raise RuntimeError(f"{target.label} on port {target.port} did not accept mail: {sent.errors or 'rejected'}")
    deadline = time.monotonic() + 30
    while count_stored(target.maildir) < 3:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.label} accepted mail but nothing reached {target.maildir}")
        time.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every cell; exit 0 if all went through, 1 if some mail was lost or refused, 2 if no run."""
    args = parse_args(argv)
    base = tempfile.mkdtemp(prefix="mailsrv-bench-", dir=args.tmpdir)
    checkouts = [] if args.no_mailsrv else [("mailsrv", REPO)]
    if args.baseline:
        checkouts.append((args.baseline_label, args.baseline))
    dns = checks_dns() if "checks" in args.modes else None
    servers = [
        OwnServer(base, name, path, imap=mode == "idle", dns_port=dns.port if mode == "checks" and dns else None)
        for name, path in checkouts for mode in args.modes
    ]
    targets: list[Target] = []
    rows: list[Row] = []
    summary: list[str] = []
    if dns is not None:
        dns.__enter__()
        if args.client == "smtp-source":
            print("mode checks with smtp-source: its messages carry no DKIM signature", file=sys.stderr)
    try:
        for server in servers:
            targets.append(server.start())
        if args.server_port is not None:
            pid = None
            if args.server_pidfile:
                with open(args.server_pidfile) as f:
                    pid = int(f.read().split()[0])
            login = None
            if args.server_imap_port is not None:
                login = ImapLogin(args.server_imap_port, args.server_user, args.server_password, args.server_imap_tls)
            for mode in args.modes:
                if mode == "checks":
                    print(f"mode checks is mailsrv's: {args.server_label} is not measured in it", file=sys.stderr)
                    continue
                if mode == "idle" and login is None:
                    print(f"no --server-imap-port: {args.server_label} is measured without IDLE only", file=sys.stderr)
                    continue
                targets.append(Target(args.server_label, args.server_port, args.maildir, pid,
                                      login if mode == "idle" else None))
        for target in targets:
            warm_up(target, args.sender)
        print(f"client {args.client}, {os.cpu_count()} CPUs, data in {base}; disk Nt/s shows (threads)")
        print(HEADER, flush=True)
        for repeat in range(args.repeats):
            for size in args.sizes:
                for concurrency in args.concurrency:
                    ceiling = (
                        disk_ceiling(base, size, 1, args.disk_seconds),
                        disk_ceiling(base, size, min(concurrency, SERVER_WRITE_THREADS), args.disk_seconds),
                    )
                    # Alternate who goes first, so that a server measured right
                    # after the disk loop (or after the other) is not always the same one.
                    order = range(len(targets)) if repeat % 2 == 0 else reversed(range(len(targets)))
                    by_index: dict[int, Row] = {}
                    for index in order:
                        row = by_index[index] = measure(
                            targets[index], args.client, size, concurrency, messages_for(args, size),
                            args.sender, args.timeout, ceiling,
                        )
                        print(format_row(row), flush=True)
                        for error in row.errors:
                            print(f"    ! {error}", flush=True)
                    cell = [by_index[index] for index in range(len(targets))]
                    rows.extend(cell)
                    summary.extend(compare(cell))
    except (RuntimeError, OSError) as e:
        print(f"delivery.py: {e}", file=sys.stderr)
        return 2
    finally:
        for server in servers:
            server.stop()
        if dns is not None:
            dns.__exit__(None, None, None)
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    if summary:
        print()
        print("\n".join(summary))
    if args.json:
        settings = {k: v for k, v in vars(args).items() if k != "json"}
        with open(args.json, "w") as f:
            json.dump(
                {
                    "settings": settings, "machine": platform.node(), "cpus": os.cpu_count(),
                    "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "rows": [asdict(r) | {"per_second": r.per_second, "ratio": r.ratio} for r in rows],
                },
                f, indent=2,
            )
    return 0 if all(not r.errors for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

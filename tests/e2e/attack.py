"""Support for the attack tests: a probe, RSS sampling, a big INBOX, raw clients.

The attack tests (``test_attack_*.py``) each repeat one attack of issue 5
against the real ``twistd mailsrv`` and assert what the issue asks: other
users keep being served and memory stays bounded.  What they share lives
here, so that every test measures the same way:

* :class:`Probe` opens a fresh SMTP, POP3 and IMAP session every 0.5 s from
  127.0.0.1 while an attack runs and records how long every answer took;
* :class:`RSSMonitor` samples the server's resident memory and stops an
  attack that is about to take the machine down with it;
* :func:`fill_maildir` writes a realistic Maildir of tens of thousands of
  messages once per test session, and :class:`FilledInbox` links it into
  each server's store before the server starts;
* :class:`Conn` is a small blocking client with deadlines, bindable to any
  loopback source address (attackers use 127.0.0.2 and up, so that a
  per-IP connection limit meant for them does not catch the probe).

Latency bounds are asserted on the probe only (a fresh session's greeting
and one command), never on how fast the attack itself goes.
"""

from __future__ import annotations

import base64
import hashlib
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import shutil
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, Self

from twistd_server import Server

#: The probe's source address; attackers never use it.
PROBE_SOURCE = "127.0.0.1"
#: Issue 5: "the probe is answered within 250 ms throughout every attack".
PROBE_BOUND = 0.25
#: How often the probe opens a fresh session of each protocol.
PROBE_INTERVAL = 0.5
#: The password of every user the attack tests create.
PASSWORD = "attack-test password"
#: Lines that must never appear in the server log: a Python traceback, or an
#: event logged at critical level (twistd writes ``[namespace#level]``).
_LOG_PROBLEM = re.compile(r"Traceback \(most recent call last\)|#critical\]|Unhandled Error")
MiB = 1024 * 1024


# --------------------------------------------------------------------------
# Addresses and the server


def attacker_source(index: int) -> str:
    """The loopback address of attacker *index*: 127.0.0.2, 127.0.0.3, ...

    Linux routes all of 127.0.0.0/8 to the loopback interface, so a client
    socket bound to 127.0.0.N reaches a server listening on 127.0.0.1 and the
    server sees it as a different client IP from the probe's.
    """
    if not 0 <= index < 250:
        raise ValueError("attacker index out of 127.0.0.2-251")
    return f"127.0.0.{index + 2}"


def attack_server(root: str, users: Iterable[str] = ("alice@example.test",), auth: str = "") -> Server:
    """A configured (not yet started) server with *users*, taking plaintext logins on loopback.

    *auth* is more ``[auth]`` lines (the throttle's, say).

    ``auth.allow_plaintext_auth_on_loopback`` lets the attackers log in on
    the plaintext ports (IMAP LOGIN, POP3 USER/PASS, SMTP AUTH on 587)
    without TLS, which is what a local attacker or a webmail would do.
    Every other setting is the default, limits included: the attacks are
    measured against what an admin gets out of the box.
    """
    os.makedirs(root, exist_ok=True)
    server = Server(root, extra_config="[auth]\nallow_plaintext_auth_on_loopback = true\n" + auth)
    for address in users:
        server.add_user(address, PASSWORD)
    return server


def maildir_of(server: Server, address: str) -> str:
    """The Maildir (INBOX) of *address* in *server*'s store."""
    local, _, domain = address.lower().partition("@")
    return os.path.join(server.data_dir, "mail", domain, local)


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start *server*; afterwards stop it and delete its data dir (the log is kept).

    Attack tests leave hundreds of MiB of mail and spool behind, and pytest
    keeps the temp dirs of the last three runs.
    """
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.data_dir, ignore_errors=True)


def verdict(problems: Iterable[str | None], *measured: str) -> None:
    """Fail with every problem found and every figure measured, or print the figures.

    A test that checks its bounds one ``assert`` at a time reports only the
    first broken one; the issue's report needs all of them.
    """
    found = [p for p in problems if p]
    text = "\n".join(measured)
    assert not found, "\n".join(found) + "\n" + text
    print(text)


def log_events(text: str) -> list[str]:
    """A twistd log text as events: a timestamped line with its tab-indented continuation lines."""
    events: list[str] = []
    for line in text.splitlines():
        if events and (line.startswith("\t") or not line):
            events[-1] += "\n" + line
        else:
            events.append(line)
    return events


def log_problems(text: str) -> list[str]:
    """Each distinct traceback or critical-level event in a twistd log text, with its count.

    An event is summed up by its first line without the timestamp, the last
    source line of its traceback and the exception, which is what a
    developer needs to find the cause.
    """
    counts: dict[str, int] = {}
    for event in log_events(text):
        if not _LOG_PROBLEM.search(event):
            continue
        lines = [line.strip() for line in event.splitlines() if line.strip()]
        head = lines[0].split(" ", 1)[-1]
        frames = [line for line in lines if line.startswith("File ")]
        summary = " | ".join([head] + frames[-1:] + (lines[-1:] if len(lines) > 1 else []))
        counts[summary] = counts.get(summary, 0) + 1
    return [f"log ({n}x): {summary}" for summary, n in counts.items()]


class LogWatch:
    """New problems in a server log since the watch was created (or last read)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.offset = self._size()

    def _size(self) -> int:
        try:
            return os.path.getsize(self.server.logfile)
        except FileNotFoundError:
            return 0

    def new_text(self) -> str:
        """Log text written since the last call (whole lines as far as they were flushed)."""
        try:
            with open(self.server.logfile, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return ""
        self.offset += len(data)
        return data.decode("utf-8", "replace")

    def new_problems(self) -> list[str]:
        """:func:`log_problems` of the text written since the last call."""
        return log_problems(self.new_text())


# --------------------------------------------------------------------------
# A blocking client with deadlines


class Silent(AssertionError):
    """The server sent nothing (and did not close) within the bound."""


class Closed(ConnectionError):
    """The server closed the connection."""


class Refused(Exception):
    """The server answered with a refusal (e.g. 421 at the greeting, 452 at MAIL)."""

    def __init__(self, reply: bytes) -> None:
        super().__init__(reply.decode("ascii", "replace").strip())
        self.reply = reply


def connect(port: int, source: str = PROBE_SOURCE, timeout: float = 10.0, rcvbuf: int | None = None) -> socket.socket:
    """A TCP connection to ``127.0.0.1:port`` from the loopback address *source*.

    *rcvbuf* shrinks the receive buffer before the handshake (it fixes the
    advertised window), so a client that stops reading stops the server's
    writes after a few KiB instead of the kernel's autotuned megabytes.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Without it a command sent right after a write (SMTP's final dot) waits
        # for the server's delayed ACK, and 40 ms would be measured as the server's.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


class Conn:
    """Line and literal reading over one socket, each read bounded by a timeout."""

    def __init__(self, sock: socket.socket, timeout: float = 10.0) -> None:
        self.sock = sock
        self.timeout = timeout
        self._buf = bytearray()
        self._pos = 0
        self.closed = False

    @classmethod
    def open(cls, port: int, source: str = PROBE_SOURCE, timeout: float = 10.0, rcvbuf: int | None = None) -> "Conn":
        """Connect (see :func:`connect`)."""
        return cls(connect(port, source, timeout, rcvbuf), timeout)

    def __enter__(self) -> "Conn":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close without a goodbye (what a vanishing client does)."""
        try:
            self.sock.close()
        except OSError:
            pass

    def send(self, data: bytes) -> None:
        """Send everything (blocking up to the socket timeout per chunk)."""
        self.sock.settimeout(self.timeout)
        self.sock.sendall(data)

    @property
    def buffered(self) -> int:
        """Octets received but not consumed yet."""
        return len(self._buf) - self._pos

    def _fill(self, deadline: float) -> None:
        """Receive more octets before *deadline*; :class:`Silent` or :class:`Closed` otherwise."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Silent("no answer in time")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 18)
        except (socket.timeout, TimeoutError):
            raise Silent("no answer in time") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            raise Closed("connection closed by the server")
        if self._pos > (1 << 20):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def readline(self, timeout: float | None = None) -> bytes:
        """One line up to and including its LF."""
        deadline = self._deadline(timeout)
        while True:
            end = self._buf.find(b"\n", self._pos)
            if end >= 0:
                line = bytes(self._buf[self._pos : end + 1])
                self._pos = end + 1
                return line
            self._fill(deadline)

    def read(self, size: int, timeout: float | None = None) -> bytes:
        """Exactly *size* octets."""
        deadline = self._deadline(timeout)
        while self.buffered < size:
            self._fill(deadline)
        data = bytes(self._buf[self._pos : self._pos + size])
        self._pos += size
        return data

    def answer_or_close(self, timeout: float | None = None) -> bytes:
        """Whatever the server sends first, or ``b""`` if it closes: never a silent wait.

        This is the hang check of the hostile-input test and the fuzzers:
        :class:`Silent` when neither happens within *timeout*.
        """
        if self.buffered:
            data = bytes(self._buf[self._pos :])
            self._pos = len(self._buf)
            return data
        try:
            self._fill(self._deadline(timeout))
        except Closed:
            return b""
        return self.answer_or_close()

    def drain(self, quiet: float = 0.2) -> bytes:
        """Everything that arrives until the line has been quiet for *quiet* seconds."""
        got = bytearray()
        while True:
            try:
                got += self.answer_or_close(quiet)
            except Silent:
                return bytes(got)
            if self.closed:
                return bytes(got)

    # -- protocol replies ----------------------------------------------

    def smtp_reply(self, timeout: float | None = None) -> tuple[int, bytes]:
        """One (multi-line) SMTP reply: its code and all its lines."""
        deadline = self._deadline(timeout)
        lines = []
        while True:
            line = self.readline(max(deadline - time.monotonic(), 0.001))
            lines.append(line)
            if line[3:4] != b"-":
                code = int(line[:3]) if line[:3].isdigit() else 0
                return code, b"".join(lines)

    def smtp(self, command: bytes, expect: int | None = None, timeout: float | None = None) -> tuple[int, bytes]:
        """Send one SMTP command; :class:`Refused` if *expect* is given and not answered."""
        self.send(command + b"\r\n")
        code, text = self.smtp_reply(timeout)
        if expect is not None and code != expect:
            raise Refused(text)
        return code, text

    def pop(self, command: bytes, multiline: bool = False, timeout: float | None = None) -> bytes:
        """Send one POP3 command; its status line (and body up to "." if *multiline*)."""
        self.send(command + b"\r\n")
        status = self.readline(timeout)
        if not multiline or not status.startswith(b"+OK"):
            return status
        body = [status]
        while (line := self.readline(timeout)) != b".\r\n":
            body.append(line)
        return b"".join(body)

    def imap_response(self, timeout: float | None = None) -> tuple[bytes, list[bytes]]:
        """One IMAP response: its text (literals replaced by ``{n}``) and the literals."""
        deadline = self._deadline(timeout)
        text, literals = bytearray(), []
        while True:
            line = self.readline(max(deadline - time.monotonic(), 0.001))
            text += line
            match = re.search(rb"\{(\d+)\}\r\n\Z", line)
            if not match:
                return bytes(text), literals
            literals.append(self.read(int(match.group(1)), max(deadline - time.monotonic(), 0.001)))

    def imap(
        self, tag: bytes, command: bytes, timeout: float | None = None,
        untagged: Callable[[bytes, list[bytes]], None] | None = None,
    ) -> bytes:
        """Send ``tag command`` and return the tagged reply; untagged ones go to *untagged*."""
        self.send(tag + b" " + command + b"\r\n")
        return self.imap_tagged(tag, timeout, untagged)

    def imap_tagged(
        self, tag: bytes, timeout: float | None = None,
        untagged: Callable[[bytes, list[bytes]], None] | None = None,
    ) -> bytes:
        """Read responses until the one tagged *tag*; return it."""
        deadline = self._deadline(timeout)
        while True:
            text, literals = self.imap_response(max(deadline - time.monotonic(), 0.001))
            if text.startswith(tag + b" "):
                return text
            if untagged is not None:
                untagged(text, literals)


# --------------------------------------------------------------------------
# Sessions


@contextmanager
def _closed_on_failure(conn: Conn) -> Iterator[Conn]:
    """Yield *conn* for its setup; close it if the setup raises."""
    try:
        yield conn
    except BaseException:
        conn.close()
        raise


def _expect(reply: bytes, prefix: bytes) -> None:
    """:class:`Refused` unless *reply* starts with *prefix*."""
    if not reply.startswith(prefix):
        raise Refused(reply)


def smtp_open(port: int, source: str = PROBE_SOURCE, timeout: float = 30.0) -> Conn:
    """A session past greeting and EHLO; :class:`Refused` if the greeting is not 220."""
    with _closed_on_failure(Conn.open(port, source, timeout)) as conn:
        code, text = conn.smtp_reply()
        if code != 220:
            raise Refused(text)
        conn.smtp(b"EHLO attacker.example.org", 250)
    return conn


def smtp_begin_data(conn: Conn, recipient: str, sender: str = "attacker@remote.test") -> None:
    """MAIL, RCPT, DATA up to the 354; :class:`Refused` with the first other reply."""
    conn.smtp(f"MAIL FROM:<{sender}>".encode(), 250)
    conn.smtp(f"RCPT TO:<{recipient}>".encode(), 250)
    conn.smtp(b"DATA", 354)


def imap_login(server: Server, address: str, source: str = PROBE_SOURCE, timeout: float = 30.0,
               rcvbuf: int | None = None, select: str | None = "INBOX") -> Conn:
    """A plaintext IMAP session logged in as *address* (and with *select* selected)."""
    with _closed_on_failure(Conn.open(server.ports["imap"], source, timeout, rcvbuf)) as conn:
        _expect(conn.readline(), b"* OK")
        _expect(conn.imap(b"l1", f'LOGIN "{address}" "{PASSWORD}"'.encode()), b"l1 OK")
        if select is not None:
            _expect(conn.imap(b"l2", f'SELECT "{select}"'.encode()), b"l2 OK")
    return conn


def pop3_login(server: Server, address: str, source: str = PROBE_SOURCE, timeout: float = 30.0) -> Conn:
    """A plaintext POP3 session in the TRANSACTION state as *address*."""
    with _closed_on_failure(Conn.open(server.ports["pop3"], source, timeout)) as conn:
        _expect(conn.readline(), b"+OK")
        _expect(conn.pop(f"USER {address}".encode()), b"+OK")
        _expect(conn.pop(f"PASS {PASSWORD}".encode()), b"+OK")
    return conn


def open_inbox(server: Server, address: str) -> None:
    """Log in, select INBOX and log out, so the store has indexed it before an attack.

    The first SELECT of a 30,000-message folder gives every message a UID;
    that is setup, not the attack under test.
    """
    with imap_login(server, address, timeout=300) as conn:
        conn.imap(b"w", b"LOGOUT")


def plain_auth(user: str, password: str) -> bytes:
    """The RFC 4616 PLAIN initial response, base64."""
    return base64.b64encode(f"\0{user}\0{password}".encode())


# --------------------------------------------------------------------------
# Child processes


class StartStop:
    """``with`` for a background activity: ``start()`` on entry, ``stop()`` on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


#: Child processes start clean (no fork of a process full of threads).
_SPAWN = multiprocessing.get_context("spawn")


class EventLike(Protocol):
    """What a child needs of its stop event (``threading`` or ``multiprocessing``)."""

    def is_set(self) -> bool: ...

    def wait(self, timeout: float | None = None) -> bool: ...


class ChildRun:
    """``target(stop, *args)`` in a spawned child process; its return value comes back at :meth:`stop`.

    *target* must be a module-level function and its arguments and result
    picklable.  The child's exception, if any, is raised again by :meth:`stop`.
    """

    def __init__(self, target: Callable[..., object], *args: object) -> None:
        self._stop = _SPAWN.Event()
        self._ready = _SPAWN.Event()
        self._results, child_end = _SPAWN.Pipe(duplex=False)
        self._process = _SPAWN.Process(target=_child_main, args=(child_end, self._ready, self._stop, target, args),
                                       daemon=True)

    def start(self, timeout: float = 30.0) -> None:
        """Start the child and wait until it is about to call *target*."""
        self._process.start()
        if not self._ready.wait(timeout):
            self._process.kill()
            raise RuntimeError("the child process did not start")

    def stop(self, timeout: float = 60.0) -> object:
        """Tell the child to stop; wait for its result."""
        self._stop.set()
        if not self._results.poll(timeout):
            self._process.kill()
            raise RuntimeError(f"the child process did not finish within {timeout:.0f}s")
        outcome, value = self._results.recv()
        self._process.join(10)
        if outcome == "error":
            raise RuntimeError(f"the child process failed: {value}")
        return value


def _child_main(results: multiprocessing.connection.Connection, ready: EventLike, stop: EventLike,
                target: Callable[..., object], args: tuple[object, ...]) -> None:
    ready.set()
    try:
        results.send(("ok", target(stop, *args)))
    except BaseException as e:  # reported to the parent, which fails the test
        results.send(("error", f"{type(e).__name__}: {e}"))


def delivery_latencies(stop: EventLike, port: int, recipient: str) -> list[float]:
    """Deliver small messages on one SMTP session until *stop*; the seconds from each final dot to its 250.

    Meant for a :class:`ChildRun`, measuring delivery while an attack runs.
    """
    latencies = []
    with smtp_open(port, PROBE_SOURCE, timeout=60) as conn:
        number = 0
        while not stop.is_set():
            smtp_begin_data(conn, recipient, "sender@remote.test")
            conn.send(f"Subject: delivery {number}\r\nMessage-ID: <d{number}@remote.test>\r\n\r\n".encode()
                      + b"Hello, this is a short message.\r\n" * 30)
            began = time.monotonic()
            conn.smtp(b".", 250)
            latencies.append(time.monotonic() - began)
            number += 1
    return latencies


# --------------------------------------------------------------------------
# The probe


@dataclass(frozen=True)
class Answer:
    """One answer the probe waited for."""

    protocol: str
    step: str  # "greeting", "command" or "quit"
    at: float  # seconds since the probe started
    latency: float


@dataclass(frozen=True)
class ProbeFailure:
    """A probe session that did not complete."""

    protocol: str
    at: float
    error: str
    waited: float  # seconds from connect to the failure


def _probe_smtp(conn: Conn, timed: Callable[[str, Callable[[], object]], None]) -> None:
    timed("greeting", lambda: _expect(conn.smtp_reply()[1], b"220"))
    timed("command", lambda: _expect(conn.smtp(b"EHLO probe.example.test")[1], b"250"))
    timed("quit", lambda: _expect(conn.smtp(b"QUIT")[1], b"221"))


def _probe_pop3(conn: Conn, timed: Callable[[str, Callable[[], object]], None]) -> None:
    timed("greeting", lambda: _expect(conn.readline(), b"+OK"))
    timed("command", lambda: _expect(conn.pop(b"CAPA", multiline=True), b"+OK"))
    timed("quit", lambda: _expect(conn.pop(b"QUIT"), b"+OK"))


def _probe_imap(conn: Conn, timed: Callable[[str, Callable[[], object]], None]) -> None:
    timed("greeting", lambda: _expect(conn.readline(), b"* OK"))
    timed("command", lambda: _expect(conn.imap(b"p1", b"CAPABILITY"), b"p1 OK"))
    timed("quit", lambda: _expect(conn.imap(b"p2", b"LOGOUT"), b"p2 OK"))


_PROBES = {"smtp": ("smtp", _probe_smtp), "pop3": ("pop3", _probe_pop3), "imap": ("imap", _probe_imap)}


@dataclass(frozen=True)
class ProbeSettings:
    """Where and how often to probe (picklable, for the probe's child process)."""

    ports: dict[str, int]
    interval: float
    timeout: float
    source: str


@dataclass
class ProbeRecord:
    """What a probe saw."""

    answers: list[Answer] = field(default_factory=list)
    failures: list[ProbeFailure] = field(default_factory=list)
    rounds: int = 0
    duration: float = 0.0


class ProbeLoop:
    """The probing itself: one thread per protocol, a fresh session every *interval* seconds."""

    def __init__(self, settings: ProbeSettings) -> None:
        self.settings = settings
        self.record = ProbeRecord()
        self.began = time.monotonic()
        self._lock = threading.Lock()

    def run(self, stop: EventLike) -> ProbeRecord:
        """Probe every protocol until *stop* is set."""
        threads = [threading.Thread(target=self._loop, args=(protocol, stop), name=f"probe-{protocol}", daemon=True)
                   for protocol in _PROBES]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return self.finish()

    def finish(self) -> ProbeRecord:
        """The record, with how long the probe ran."""
        self.record.duration = time.monotonic() - self.began
        return self.record

    def _loop(self, protocol: str, stop: EventLike) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.session(protocol)
            stop.wait(max(0.0, started + self.settings.interval - time.monotonic()))

    def session(self, protocol: str) -> None:
        """One probe session of *protocol*; its answers and any failure are recorded."""
        kind, steps = _PROBES[protocol]
        timeout = self.settings.timeout
        began = time.monotonic()
        mark = [began]

        def timed(step: str, action: Callable[[], object]) -> None:
            action()
            now = time.monotonic()
            with self._lock:
                self.record.answers.append(Answer(protocol, step, mark[0] - self.began, now - mark[0]))
            mark[0] = time.monotonic()

        sock = None
        try:
            sock = connect(self.settings.ports[kind], self.settings.source, timeout)
            steps(Conn(sock, timeout), timed)
        except (OSError, Silent, Closed, Refused, ValueError) as e:
            with self._lock:
                self.record.failures.append(ProbeFailure(protocol, began - self.began, f"{type(e).__name__}: {e}",
                                                         time.monotonic() - began))
        finally:
            if sock is not None:
                sock.close()
            with self._lock:
                self.record.rounds += 1


def _probe_child(stop: EventLike, settings: ProbeSettings) -> ProbeRecord:
    """The probe's child process: probe until *stop*, then hand back everything recorded."""
    return ProbeLoop(settings).run(stop)


class Probe(StartStop):
    """Fresh SMTP, POP3 and IMAP sessions every 0.5 s while an attack runs.

    Each protocol has its own thread, so one protocol's stall does not hide
    another's.  A session connects from 127.0.0.1, waits for the greeting
    (timed from before ``connect``, so a full accept queue counts), sends one
    command (EHLO, CAPA, CAPABILITY), then QUIT/LOGOUT; every answer's
    latency is recorded, and so is any session that fails or takes longer
    than *timeout* per answer.  The next session of a protocol starts 0.5 s
    after the previous one started, or at once if that one took longer.

    The threads run in a child process of their own: in the test process
    they would share the GIL with dozens of attacker threads, and against a
    server that does nothing but discard data, the probe's p50 rose from
    1.5 ms to 22 ms from that alone.
    """

    def __init__(self, server: Server, interval: float = PROBE_INTERVAL, timeout: float = 10.0,
                 source: str = PROBE_SOURCE) -> None:
        self.settings = ProbeSettings({kind: server.ports[kind] for kind in _PROBES}, interval, timeout, source)
        self.record = ProbeRecord()
        self._child: ChildRun | None = None

    def start(self) -> None:
        """Start probing in the background (returns once the child process is probing)."""
        self._child = ChildRun(_probe_child, self.settings)
        self._child.start()

    def stop(self) -> None:
        """Stop after the sessions in progress finish (each bounded by *timeout* per answer)."""
        if self._child is not None:
            self.record = self._child.stop(timeout=4 * self.settings.timeout)
            self._child = None

    def once(self) -> None:
        """One session of each protocol, in this process (a check that an idle server still serves)."""
        loop = ProbeLoop(self.settings)
        for protocol in _PROBES:
            loop.session(protocol)
        self.record = loop.finish()

    def slow(self, bound: float = PROBE_BOUND) -> list[Answer]:
        """Answers that took longer than *bound*."""
        return [a for a in self.record.answers if a.latency > bound]

    def worst(self) -> float:
        """The longest any answer took, or any failed session waited (seconds)."""
        return max([a.latency for a in self.record.answers] + [f.waited for f in self.record.failures], default=0.0)

    def longest_gap(self) -> float:
        """The longest stretch (seconds) in which no probe session of any protocol got an answer.

        With three protocols probed every 0.5 s it stays near 0.5 s; a frozen
        reactor shows as a gap as long as the freeze.
        """
        ends = sorted([0.0, self.record.duration] + [a.at + a.latency for a in self.record.answers])
        return max((b - a for a, b in zip(ends, ends[1:])), default=0.0)

    def summary(self) -> str:
        """Counts, latency percentiles, the worst answers and the failures, for a test message."""
        latencies = [a.latency for a in self.record.answers]
        if latencies:
            text = (f"probe: {self.record.rounds} sessions, {len(latencies)} answers, "
                    f"p50 {percentile(latencies, 0.5) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
                    f"max {max(latencies) * 1000:.1f} ms, "
                    f"{len(self.slow())} over {PROBE_BOUND * 1000:.0f} ms, {len(self.record.failures)} failed; "
                    f"longest time without any answer {self.longest_gap():.1f} s")
        else:
            text = f"probe: {self.record.rounds} sessions, no answers, {len(self.record.failures)} failed"
        worst = sorted(self.slow(), key=lambda a: -a.latency)[:5]
        text += "".join(f"\n  slow: {a.protocol} {a.step} at {a.at:.1f}s took {a.latency * 1000:.0f} ms" for a in worst)
        text += "".join(f"\n  failed: {f.protocol} at {f.at:.1f}s: {f.error}" for f in self.record.failures[:5])
        return text

    def problem(self, bound: float = PROBE_BOUND, min_rounds: int = 3) -> str | None:
        """What breaks the issue's bound (every session answered, each answer within *bound*), or None."""
        if self.record.rounds < min_rounds:
            return f"the probe ran only {self.record.rounds} sessions"
        if self.record.failures or self.slow(bound):
            return (f"probe: {len(self.record.failures)} sessions failed, {len(self.slow(bound))} answers over "
                    f"{bound * 1000:.0f} ms (worst {self.worst() * 1000:.0f} ms)")
        return None


# --------------------------------------------------------------------------
# Memory


def _status_kib(pid: int, field_name: str) -> int:
    """A ``VmRSS``/``VmHWM`` figure of ``/proc/<pid>/status``, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise ValueError(f"no {field_name} for pid {pid}")


class RSSMonitor(StartStop):
    """The server's resident memory during an attack: baseline, peak, and a safety stop.

    VmRSS is sampled every *interval* seconds; in addition the kernel's
    high-water mark (VmHWM) is reset at the baseline (``/proc/<pid>/clear_refs``
    "5") and read at the end, so a spike shorter than the sampling interval is
    still counted.  Sampling alone can miss such a spike; VmHWM alone would
    include peaks from before the attack (the first scan of a big folder).

    A broken server can grow by gigabytes; the machine is shared, so past
    *abort_growth* :attr:`aborted` is set (attacks poll it and back off), and
    past *kill_growth* the server is killed.  The test then fails on its bound
    with the growth measured so far.
    """

    def __init__(self, pid: int, interval: float = 0.05, abort_growth: int = 1024 * MiB,
                 kill_growth: int = 4096 * MiB) -> None:
        self.pid = pid
        self.interval = interval
        self.abort_growth = abort_growth
        self.kill_growth = kill_growth
        self.baseline_kib = 0
        self.peak_kib = 0
        self.last_kib = 0
        self.hwm_kib: int | None = None
        self.aborted = threading.Event()
        self.aborted_at: float | None = None
        self.killed = False
        self._began = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> int:
        return _status_kib(self.pid, "VmRSS")

    def start(self) -> None:
        """Take the baseline (the median of a few samples) and start sampling."""
        samples = []
        for _ in range(5):
            samples.append(self._rss())
            time.sleep(0.02)
        self.baseline_kib = int(statistics.median(samples))
        self.peak_kib = self.last_kib = self.baseline_kib
        try:
            with open(f"/proc/{self.pid}/clear_refs", "w") as f:
                f.write("5")
            self.hwm_kib = 0
        except OSError:
            self.hwm_kib = None  # no reset possible: rely on sampling alone
        self._began = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="rss-monitor", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except (OSError, ValueError):
                return  # the server exited

    def _sample(self) -> None:
        rss = self.last_kib = self._rss()
        self.peak_kib = max(self.peak_kib, rss)
        growth = (rss - self.baseline_kib) * 1024
        if growth > self.abort_growth and not self.aborted.is_set():
            self.aborted_at = time.monotonic() - self._began
            self.aborted.set()
        if growth > self.kill_growth and not self.killed:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)

    def stop(self) -> None:
        """Stop sampling; fold in the kernel's high-water mark."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        try:
            self._sample()
            if self.hwm_kib is not None:
                self.hwm_kib = _status_kib(self.pid, "VmHWM")
                self.peak_kib = max(self.peak_kib, self.hwm_kib)
        except (OSError, ValueError):
            pass

    @property
    def peak_growth(self) -> int:
        """Octets of RSS above the baseline at the peak."""
        return (self.peak_kib - self.baseline_kib) * 1024

    @property
    def held_growth(self) -> int:
        """Octets of RSS above the baseline at the last sample."""
        return (self.last_kib - self.baseline_kib) * 1024

    def summary(self) -> str:
        """Baseline, peak and held growth in MiB, and whether the safety stop fired."""
        text = (f"RSS baseline {self.baseline_kib / 1024:.0f} MiB, peak +{self.peak_growth / MiB:.0f} MiB, "
                f"held +{self.held_growth / MiB:.0f} MiB")
        if self.aborted.is_set():
            text += f"; attack stopped at {self.aborted_at:.1f}s, growth past {self.abort_growth // MiB} MiB"
        if self.killed:
            text += f"; server killed past {self.kill_growth // MiB} MiB"
        return text

    def problem(self, bound: int) -> str | None:
        """What breaks "RSS grows by at most *bound* octets", or None."""
        if self.killed or self.aborted.is_set() or self.peak_growth > bound:
            return f"RSS grew by {self.peak_growth / MiB:.0f} MiB, more than {bound // MiB} MiB"
        return None


# --------------------------------------------------------------------------
# A big INBOX


_WORDS = (
    "the of and to in is was for on that with as by at from this have meeting report budget project update "
    "please review attached draft schedule server release notes invoice customer team weekly status question "
    "answer thanks regards lunch travel office network backup deadline contract proposal minutes agenda "
    "quarterly results figures tomorrow morning afternoon colleagues shipment warehouse ticket support"
).split()
_PEOPLE = ["Ada Byron", "Bert Cole", "Cora Diaz", "Dirk Egan", "Edna Ford", "Finn Gray", "Gwen Hart", "Hugo Ives"]
_HOSTS = ["example.org", "mail.example.net", "corp.example.com", "lists.example.net"]
_SUBJECTS = ["Re: weekly status", "Meeting notes {n}", "Invoice {n}", "Fwd: project update", "Budget question",
             "Release {n}", "Lunch on Friday?", "[team] digest {n}", "Re: Re: travel plans", "Draft v{n}"]
#: The word SEARCH TEXT looks for; it occurs in no other message.
NEEDLE = "zeppelin"


@dataclass(frozen=True)
class FilledMessage:
    """What the test knows of a message it wrote into a Maildir."""

    name: str
    wire_size: int
    wire_sha256: bytes
    has_needle: bool


def _text_lines(rnd: random.Random, count: int) -> list[str]:
    """*count* lines of prose, 40-76 characters, to build bodies from."""
    lines = []
    for _ in range(count):
        words: list[str] = []
        while sum(len(w) + 1 for w in words) < rnd.randint(40, 70):
            words.append(rnd.choice(_WORDS))
        lines.append(" ".join(words))
    return lines


def fill_maildir(maildir: str, address: str, count: int, seed: int = 5, needle_share: float = 0.003,
                 flags: str = "S") -> list[FilledMessage]:
    """Write *count* realistic messages for *address* into ``<maildir>/cur/``.

    Names are what the store parses (``<secs>.M<usecs>P<pid>Q<n>.<host>,S=<disk>,W=<wire>:2,<flags>``),
    with strictly increasing times, so sequence number *i* is element
    ``i - 1`` of the result.  Bodies are LF-terminated prose, log-normal in
    size (median about 1.8 kB, 300 B to 24 kB; 15 % multipart/alternative),
    under typical Received/From/Subject headers; a share *needle_share* of
    them contains :data:`NEEDLE` in the body.
    """
    rnd = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), mode=0o700, exist_ok=True)
    pool = _text_lines(rnd, 400)
    with_needle = set(rnd.sample(range(count), max(1, int(count * needle_share))))
    started = int(time.time()) - count * 60 - 86400
    filled = []
    for i in range(count):
        when = started + i * 60
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))
        person = rnd.choice(_PEOPLE)
        size = int(min(24000, max(300, rnd.lognormvariate(math.log(1800), 0.8))))
        body = "\n".join(rnd.choices(pool, k=max(1, size // 58))) + "\n"
        if i in with_needle:
            body += f"We watched the {NEEDLE} drift over the harbour.\n"
        head = (
            f"Return-Path: <bounce-{i}@{_HOSTS[i % 4]}>\n"
            f"Received: from mx.{_HOSTS[i % 4]} (mx.{_HOSTS[i % 4]} [192.0.2.{i % 250 + 1}])\n"
            f"\tby mail.example.test with ESMTPS id F{i:08d}\n\tfor <{address}>; {date}\n"
            f"Date: {date}\nFrom: {person} <{person.split()[0].lower()}@{_HOSTS[i % 4]}>\n"
            f"To: <{address}>\nSubject: {rnd.choice(_SUBJECTS).format(n=rnd.randint(1, 999))}\n"
            f"Message-ID: <{i}.{when}@fill.example.org>\nMIME-Version: 1.0\n"
        )
        if rnd.random() < 0.15:
            boundary = f"=_part{i}"
            text = (head + f'Content-Type: multipart/alternative; boundary="{boundary}"\n\n'
                    f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
                    f"--{boundary}\nContent-Type: text/html; charset=utf-8\n\n<p>{body[:300]}</p>\n--{boundary}--\n")
        else:
            text = head + "Content-Type: text/plain; charset=utf-8\n\n" + body
        disk = text.encode()
        wire = disk.replace(b"\n", b"\r\n")
        name = f"{when}.M{i % 1000000}P4242Q{i}.fill,S={len(disk)},W={len(wire)}:2,{flags}"
        path = os.path.join(maildir, "cur", name)
        with open(path, "wb") as f:
            f.write(disk)
        os.utime(path, (when, when))
        filled.append(FilledMessage(name, len(wire), hashlib.sha256(wire).digest(), i in with_needle))
    return filled


@dataclass(frozen=True)
class FilledInbox:
    """A Maildir written once per test session, to be hard-linked into each server."""

    path: str
    address: str
    messages: list[FilledMessage]

    def link_into(self, server: Server) -> list[FilledMessage]:
        """Hard-link every message into ``cur/`` of the same address in *server*, before it starts.

        Maildir files are never changed in place (flags live in the name, a
        rename gives a new name in the target only), so servers can share
        the template's inodes; a 30,000-message INBOX then costs no disk per
        test and far less time than writing it again.
        """
        target = maildir_of(server, self.address)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(target, sub), mode=0o700, exist_ok=True)
        for message in self.messages:
            os.link(os.path.join(self.path, "cur", message.name), os.path.join(target, "cur", message.name))
        return self.messages


# --------------------------------------------------------------------------
# Big SMTP messages


@dataclass
class BigMessage:
    """A message of *blocks* MiB of text lines, generated as it is sent."""

    number: int
    blocks: int = 48

    #: One MiB of 78-octet CRLF lines (13,443 of them and one of 22 octets).
    BLOCK: ClassVar[bytes] = (
        b"The quick brown fox jumps over the lazy dog; pack my box with five dozen jug\r\n" * 13443
        + b"end of this mebibyte\r\n"
    )

    @property
    def header(self) -> bytes:
        """The header block; it names the message so the test can find it in the Maildir."""
        return (f"From: <attacker@remote.test>\r\nTo: <alice@example.test>\r\n"
                f"Subject: big message {self.number}\r\nMessage-ID: <big{self.number}@remote.test>\r\n\r\n").encode()

    @property
    def wire_size(self) -> int:
        """Octets of the message as sent (before dot-stuffing, which it does not need)."""
        return len(self.header) + self.blocks * len(self.BLOCK)

    def chunks(self) -> Iterator[bytes]:
        """The message in one-MiB writes, without the final dot."""
        yield self.header
        for _ in range(self.blocks):
            yield self.BLOCK

    def disk_sha256(self) -> bytes:
        """SHA-256 of the message's disk form (LF line ends), as the store keeps it."""
        digest = hashlib.sha256(self.header.replace(b"\r\n", b"\n"))
        block = self.BLOCK.replace(b"\r\n", b"\n")
        for _ in range(self.blocks):
            digest.update(block)
        return digest.digest()

    @property
    def disk_size(self) -> int:
        """Octets of the disk form."""
        return self.wire_size - self.header.count(b"\n") - self.blocks * self.BLOCK.count(b"\n")


def stored_tail_sha256(path: str, size: int) -> bytes:
    """SHA-256 of the last *size* octets of a file (a stored message after our trace headers)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        f.seek(os.path.getsize(path) - size)
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.digest()


# --------------------------------------------------------------------------
# Running attackers


@dataclass
class Outcome:
    """What one attacker thread ended with: its result or the exception it raised."""

    result: object = None
    error: BaseException | None = None


class Gate:
    """Counts attackers that have settled; lets the others wait until all have.

    Unlike a barrier it does not break when one party fails: an attacker
    refused at the greeting settles at once, and those holding a body open
    wait for the rest.
    """

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self._cond = threading.Condition()

    def arrive(self) -> None:
        """This attacker has settled (done, refused, or given up)."""
        with self._cond:
            self.arrived += 1
            self._cond.notify_all()

    def wait_all(self, timeout: float) -> bool:
        """Wait until every party has arrived; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self.arrived >= self.parties, timeout)


def run_parallel(target: Callable[[int], object], count: int, join_timeout: float) -> list[Outcome]:
    """Run ``target(i)`` for i in range(*count*) in threads that start together.

    An exception in a thread is recorded in its :class:`Outcome`, never lost;
    a thread still running after *join_timeout* is reported as such (the
    attack functions bound every socket operation, so that means a bug here).
    """
    outcomes = [Outcome() for _ in range(count)]
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            outcomes[i].result = target(i)
        except BaseException as e:  # recorded for the test to judge
            outcomes[i].error = e

    threads = [threading.Thread(target=run, args=(i,), name=f"attacker-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_timeout
    for i, thread in enumerate(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            outcomes[i].error = TimeoutError(f"attacker {i} still running after {join_timeout:.0f}s")
    return outcomes


def percentile(values: Sequence[float], share: float) -> float:
    """The *share* percentile of *values* (nearest rank); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]

"""Outbound benchmark: messages per second from the queue to a loopback receiver.

One question: once users have submitted N messages for other servers, how
soon are they all at the receiving server?  The clock starts at the first
submission and stops when the receiver holds every message (in ``new/`` or
``cur/`` of its Maildirs), so it covers submission, the durable queue, the
MX lookup, the outbound SMTP sessions (STARTTLS where offered) and the
receiver's own intake.

The receiver is a second mailsrv serving 20 destination domains
(``d0.test`` ... ``d19.test``, one user each); a DNS server in this process
makes each domain's MX 127.0.0.1.  Absolute figures on shared machines drift
by 2x within an hour, so each repeat measures, one after the other against
the same receiver:

``direct``
    the same messages submitted straight to the receiver's port 25: its
    intake rate, the ceiling any sender in front of it can reach;
``baseline`` (with ``--baseline CHECKOUT``)
    the same as ``mailsrv``, with the mailsrv of another source tree (say a
    worktree of the commit before a change): a change's effect, measured in
    the same run;
``mailsrv``
    submitted to a sending mailsrv's submission port (STARTTLS + AUTH), which
    queues them and delivers them by MX;
``postfix`` (with ``--postfix-config``)
    submitted to a private Postfix instance (see bench/README.rst) that
    relays every message to the receiver (``relayhost``, set for the run and
    restored afterwards).

No timing is asserted: this prints figures for a human to compare.
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from email.utils import formatdate, make_msgid
from typing import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

from dns_harness import ThreadedDNS, Zone  # noqa: E402 (after the path is set)
from twistd_server import Server  # noqa: E402

PASSWORD = "bench password"
SENDER = "alice@example.test"
#: Settings Postfix gets for the run (and back afterwards): every message to the receiver, STARTTLS when offered.
POSTFIX_KEYS = ("relayhost", "default_transport", "smtp_tls_security_level")


def domains(count: int) -> list[str]:
    return [f"d{n}.test" for n in range(count)]


def message(n: int, recipient: str, size: int) -> bytes:
    """A message of about *size* body octets from alice to *recipient*, numbered *n*."""
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = (line * (size // len(line) + 1))[:size - 2] + b"\r\n"
    header = (f"From: {SENDER}\r\nTo: {recipient}\r\nSubject: outbound bench {n}\r\n"
              f"Date: {formatdate()}\r\nMessage-ID: {make_msgid(domain='example.test')}\r\n\r\n")
    return header.encode() + body


@dataclass
class Submitter:
    """Where and how a row submits: port, TLS context for STARTTLS (None: plaintext), login (None: none).

    *pid* is the sending process whose CPU time the row reports (None: not reported).
    """

    port: int
    tls: ssl.SSLContext | None
    login: str | None = None
    pid: int | None = None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process *pid* so far (``/proc/<pid>/stat`` fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def submit_all(to: Submitter, jobs: Sequence[tuple[str, bytes]], connections: int) -> tuple[float, list[str]]:
    """Send *jobs* over *connections* sessions at once; seconds until the last reply, and every error."""
    errors: list[str] = []
    sessions = []
    for _ in range(connections):
        s = smtplib.SMTP("127.0.0.1", to.port, timeout=120)
        if to.tls is not None:
            s.starttls(context=to.tls)
        if to.login is not None:
            s.login(to.login, PASSWORD)
        sessions.append(s)

    def run(session: smtplib.SMTP, share: Sequence[tuple[str, bytes]]) -> None:
        for recipient, data in share:
            try:
                refused = session.sendmail(SENDER, [recipient], data)
            except smtplib.SMTPException as e:
                errors.append(f"{recipient}: {e}")
                continue
            errors.extend(f"{r}: {reply}" for r, reply in refused.items())
        session.quit()

    threads = [threading.Thread(target=run, args=(s, jobs[i::connections])) for i, s in enumerate(sessions)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - start, errors


class Receiver:
    """The receiving mailsrv and its recipients' Maildirs."""

    def __init__(self, root: str, names: Sequence[str]) -> None:
        # No connection limits: Postfix opens up to 20 connections per destination domain (more than the
        # default 50 per address), and a refusal makes it suspend the destination for minutes.
        self.server = Server(root, domains=tuple(names),
                             extra_config="[limits]\nmax_connections = 100000\nmax_connections_per_ip = 0\n")
        self.recipients = [f"rcpt@{d}" for d in names]
        for address in self.recipients:
            self.server.add_user(address, PASSWORD)
        self.maildirs = [os.path.join(self.server.data_dir, "mail", d, "rcpt") for d in names]

    def held(self) -> int:
        return sum(len(os.listdir(os.path.join(m, sub))) for m in self.maildirs for sub in ("new", "cur")
                   if os.path.isdir(os.path.join(m, sub)))

    def empty(self) -> None:
        for m in self.maildirs:
            for sub in ("new", "cur"):
                folder = os.path.join(m, sub)
                for name in os.listdir(folder) if os.path.isdir(folder) else ():
                    os.unlink(os.path.join(folder, name))


@dataclass
class Row:
    target: str
    messages: int
    submitted: float
    arrived: float | None
    held: int
    errors: list[str]
    #: CPU milliseconds the sending process spent per message (None: not measured).
    cpu_ms: float | None = None

    @property
    def rate(self) -> float | None:
        return self.messages / self.arrived if self.arrived else None


def measure(target: str, receiver: Receiver, to: Submitter, jobs: Sequence[tuple[str, bytes]],
            connections: int, timeout: float) -> Row:
    """Empty the receiver, submit *jobs* through *to*, and time until the receiver holds them all."""
    receiver.empty()
    cpu_before = cpu_seconds(to.pid) if to.pid else 0.0
    start = time.monotonic()
    submitted, errors = submit_all(to, jobs, connections)
    expected = len(jobs) - len(errors)
    deadline = start + timeout
    while (held := receiver.held()) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    arrived = time.monotonic() - start if held >= expected else None
    cpu_ms = 1000 * (cpu_seconds(to.pid) - cpu_before) / len(jobs) if to.pid else None
    return Row(target, len(jobs), submitted, arrived, held, errors, cpu_ms)


def postfix(config_dir: str, settings: dict[str, str]) -> dict[str, str]:
    """Set *settings* in the Postfix instance of *config_dir* and reload it; the values they replaced."""
    before = {}
    for key in settings:
        before[key] = subprocess.run(["postconf", "-c", config_dir, "-h", key], check=True,
                                     capture_output=True, text=True).stdout.strip()
    subprocess.run(["postconf", "-c", config_dir, "-e", *(f"{k}={v}" for k, v in settings.items())], check=True)
    subprocess.run(["postfix", "-c", config_dir, "reload"], check=True, capture_output=True)
    return before


def print_row(row: Row) -> None:
    arrived = f"{row.arrived:9.2f}" if row.arrived else "  timeout"
    rate = f"{row.rate:8.1f}" if row.rate else "       -"
    cpu = f"{row.cpu_ms:7.2f}" if row.cpu_ms is not None else "      -"
    print(f"{row.target:<10} {row.messages:5d} {row.submitted:9.2f} {arrived} {rate} {row.held:6d} {cpu}", flush=True)
    for error in row.errors[:5]:
        print(f"  ! {error}")
    if row.arrived is None:
        print(f"  ! only {row.held} of {row.messages - len(row.errors)} arrived in time")


def summary(rows: list[Row]) -> None:
    def median(target: str) -> float | None:
        rates = sorted(r.rate for r in rows if r.target == target and r.rate)
        return rates[len(rates) // 2] if rates else None

    ours = median("mailsrv")
    print()
    for other in ("direct", "baseline", "postfix"):
        theirs = median(other)
        if ours and theirs:
            print(f"mailsrv/{other}: {ours / theirs:.2f} (median msg/s {ours:.1f} against {theirs:.1f})")


def make_sender(root: str, dns_port: int, receiver: Receiver, checkout: str) -> Server:
    """A started sending mailsrv of *checkout* (user alice) whose MX lookups go to the benchmark's DNS."""
    os.makedirs(root)
    sender = Server(root, domains=("example.test",), checkout=checkout,
                    extra_config=f'[dns]\nnameservers = ["127.0.0.1:{dns_port}"]\ntimeout = 2\n'
                                 f'[delivery]\nmx_port = {receiver.server.ports["smtp"]}\n')
    sender.add_user(SENDER, PASSWORD)
    sender.start()
    return sender


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--size", type=int, default=2048, help="body octets (default 2048)")
    parser.add_argument("--domains", type=int, default=20, help="destination domains (default 20)")
    parser.add_argument("--connections", type=int, default=10, help="submission sessions at once (default 10)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600, help="seconds a row may take")
    parser.add_argument("--postfix-config", help="config_directory of a private Postfix to measure too")
    parser.add_argument("--postfix-port", type=int, default=2525, help="its smtpd port (default 2525)")
    parser.add_argument("--baseline", metavar="CHECKOUT",
                        help="another mailsrv source tree to measure as the row 'baseline' (a worktree of main)")
    parser.add_argument("--quick", action="store_true", help="200 messages: a few seconds, to check it works")
    parser.add_argument("--keep", action="store_true", help="leave the temp dir (configs, logs) behind")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages = 200

    names = domains(args.domains)
    zone = Zone()
    for d in names:
        zone.add(d, "MX", f"10 mx.{d}.")
        zone.add(f"mx.{d}", "A", "127.0.0.1")
    root = tempfile.mkdtemp(prefix="mailsrv-outbound-bench-")
    failed = False
    with ThreadedDNS(zone) as dns:
        os.makedirs(os.path.join(root, "receiver"))
        receiver = Receiver(os.path.join(root, "receiver"), names)
        receiver.server.start()
        senders = {"mailsrv": make_sender(os.path.join(root, "sender"), dns.port, receiver, REPO)}
        if args.baseline:
            senders = {"baseline": make_sender(os.path.join(root, "baseline"), dns.port, receiver,
                                               os.path.abspath(args.baseline)), **senders}
        targets: list[tuple[str, Submitter]] = [
            ("direct", Submitter(receiver.server.ports["smtp"], receiver.server.tls())),
            *((name, Submitter(s.ports["submission"], s.tls(), SENDER, s.process.pid)) for name, s in senders.items()),
        ]
        restore: dict[str, str] = {}
        if args.postfix_config:
            restore = postfix(args.postfix_config, {
                "relayhost": f"[127.0.0.1]:{receiver.server.ports['smtp']}",
                "default_transport": "smtp", "smtp_tls_security_level": "may"})
            insecure = ssl.create_default_context()
            insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
            targets.append(("postfix", Submitter(args.postfix_port, insecure)))
        recipients = [receiver.recipients[n % len(names)] for n in range(args.messages)]
        jobs = [(r, message(n, r, args.size)) for n, r in enumerate(recipients)]
        print(f"{args.messages} messages of {args.size} octets to {len(names)} domains, "
              f"{args.connections} submission sessions; mailsrv [delivery] defaults (max_connections 20, "
              f"3 per domain), STARTTLS to the receiver")
        print(f"{'target':<10} {'msgs':>5} {'submit s':>9} {'arrived s':>9} {'msg/s':>8} {'held':>6} {'cpu ms':>7}")
        rows = []
        try:
            for _ in range(args.repeats):
                for target, to in targets:
                    row = measure(target, receiver, to, jobs, args.connections, args.timeout)
                    print_row(row)
                    failed |= row.arrived is None or bool(row.errors)
                    rows.append(row)
        finally:
            if restore:
                postfix(args.postfix_config, restore)
            for sender in senders.values():
                sender.stop()
            receiver.server.stop()
        summary(rows)
    if args.keep:
        print(f"kept {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

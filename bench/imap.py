"""IMAP benchmark: mailsrv and Dovecot side by side, from one run.

Three parts, each measured on both servers one after the other in the same
run, printed as one table with mailsrv, Dovecot and mailsrv/Dovecot per line
(an absolute figure on a shared machine drifts by 2x within an hour; only a
ratio taken in one run means anything):

big folder
    a deterministic folder of N messages (``--messages``, default 100,000)
    written by this script and copied into alice's INBOX of both stores.
    Dovecot's index files are removed first, so that its first SELECT indexes
    the folder as mailsrv's does; then every command is run twice and the
    second (warm) time is reported, and both servers are restarted to time the
    first SELECT of a fresh process. A probe session sends NOOPs while each
    command runs: the longest NOOP round trip is how long that command
    stalled everybody else.
mixed ops
    C clients (``--clients``) on a 200-message INBOX (bob's) repeating
    SELECT, FETCH header, FETCH body, STORE, SEARCH FLAGGED, STORE, SEARCH
    UNSEEN for S seconds (``--seconds``): ops/s and latency percentiles.
idle memory
    memory of the server's process tree before and after opening
    ``--idle-connections`` logged-in connections with INBOX selected.

Dovecot is the private instance of the reference peers' ``start-postfix-dovecot.sh``
(its directory given with ``--peers``; run as root), started on free ports with its own run directory; ``--no-dovecot``
measures mailsrv alone. No timing is asserted: this prints figures for a
human to compare.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from tests.twistd_server import Server, free_ports  # noqa: E402  (needs REPO on sys.path)

DOMAIN = "example.test"
#: Login and password of the big-folder user and of the mixed-ops user, the
#: ones the peers' Dovecot knows.
BIG_USER, BIG_PASSWORD = "alice", "alicepw"
MIXED_USER, MIXED_PASSWORD = "bob", "bobpw"
MIXED_MESSAGES = 200
RARE_FROM = "someone@lists.example.org"
RARE_WORD = "zeppelin"


# --------------------------------------------------------------------------
# The folder


WORDS = (
    "the of and to in is was for on that with as by at from this have meeting report budget project update "
    "please review attached draft schedule server release notes invoice customer team weekly status question "
    "answer thanks regards lunch travel office network backup deadline contract proposal minutes agenda"
).split()
NAMES = ["Alice Smith", "Bob Jones", "Carol White", "Dan Brown", "Eve Black", "Frank Green", "Grace Hall"]
SENDER_DOMAINS = ["example.org", "mail.example.net", "corp.example.com"]
SUBJECTS = ["Re: weekly status", "Meeting notes", "Invoice {n}", "Fwd: project update", "Release {n} notes",
            "Lunch on Friday?", "[list] digest {n}", "Draft proposal v{n}"]


def _paragraph(rnd: random.Random, size: int) -> str:
    """About *size* octets of words in lines under 78 octets."""
    lines, line, total = [], [], 0
    while total < size:
        word = rnd.choice(WORDS)
        line.append(word)
        total += len(word) + 1
        if total % 72 < len(word) + 1:
            lines.append(" ".join(line))
            line = []
    lines.append(" ".join(line))
    return "\n".join(lines) + "\n"


def message(rnd: random.Random, number: int, when: int) -> bytes:
    """Message *number* of the folder: realistic headers, 15 % multipart/alternative.

    1 % come from :data:`RARE_FROM` and 0.3 % carry :data:`RARE_WORD` in the
    body; neither occurs anywhere else, so SEARCH has a known small answer.
    """
    if number % 100 == 7:
        sender = f"Someone Else <{RARE_FROM}>"
    else:
        name = rnd.choice(NAMES)
        sender = f"{name} <{name.split()[0].lower()}@{rnd.choice(SENDER_DOMAINS)}>"
    body = _paragraph(rnd, int(min(24000, max(300, rnd.lognormvariate(math.log(1800), 0.8)))))
    if number % 1000 in (3, 503, 803):
        body = body + f"see you on the {RARE_WORD}\n"
    date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(when))
    headers = (
        f"Return-Path: <bounce-{number}@{SENDER_DOMAINS[0]}>\n"
        f"Received: from mx.example.org (mx.example.org [192.0.2.{number % 250 + 1}])\n"
        f"\tby mail.{DOMAIN} with ESMTPS id {number:08x}; {date}\n"
        f"Date: {date}\nFrom: {sender}\nTo: Alice <alice@{DOMAIN}>\n"
        f"Subject: {rnd.choice(SUBJECTS).format(n=number)}\n"
        f"Message-ID: <{number}.{when}@bench.example.org>\nMIME-Version: 1.0\n"
    )
    if number % 7 == 0:
        boundary = f"=-b{number:x}"
        text = (
            f'{headers}Content-Type: multipart/alternative; boundary="{boundary}"\n\n'
            f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{body}\n"
            f"--{boundary}\nContent-Type: text/html; charset=utf-8\n\n<html><body><p>{body}</p></body></html>\n"
            f"--{boundary}--\n"
        )
    else:
        text = f"{headers}Content-Type: text/plain; charset=utf-8\n\n{body}"
    return text.encode()


def generate_folder(path: str, count: int, seed: int = 8) -> None:
    """Write *count* messages into ``path/cur`` with Dovecot-style names and flags (80 % seen, 5 % flagged)."""
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, sub), exist_ok=True)
    rnd = random.Random(seed)
    start = 1_700_000_000
    for number in range(1, count + 1):
        when = start + number * 60
        data = message(rnd, number, when)
        flags = ("F" if rnd.random() < 0.05 else "") + ("S" if rnd.random() < 0.8 else "")
        name = f"{when}.M{number}P1Q{number}.benchhost,S={len(data)}:2,{flags}"
        with open(os.path.join(path, "cur", name), "wb") as f:
            f.write(data)
        os.utime(os.path.join(path, "cur", name), (when, when))


def fill_maildir(source: str, maildir: str, owner: tuple[int, int] | None = None) -> None:
    """Put the messages of *source* into *maildir*'s ``cur/``, emptied first.

    Hard links when both are on one file system (a Maildir file's content
    never changes; each server renames only its own link), copies otherwise.
    """
    for sub in ("cur", "new", "tmp"):
        shutil.rmtree(os.path.join(maildir, sub), ignore_errors=True)
        os.makedirs(os.path.join(maildir, sub))
    for name in os.listdir(os.path.join(source, "cur")):
        src, dst = os.path.join(source, "cur", name), os.path.join(maildir, "cur", name)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)
    # Dovecot rescans a cur/ changed in the last few seconds on every SELECT (it
    # cannot trust the mtime yet); a real folder was last changed long ago.
    past = time.time() - 3600
    for sub in ("cur", "new", "tmp"):
        os.utime(os.path.join(maildir, sub), (past, past))
    if owner is not None:
        for root, dirs, files in os.walk(maildir):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), *owner)
        os.chown(maildir, *owner)


# --------------------------------------------------------------------------
# A lean IMAP client


class Imap:
    """One plaintext IMAP connection that reads whole responses, skipping literals.

    Much cheaper per command than imaplib, so the client's share of the two
    CPUs, which the server also needs, stays small; both servers get the same.
    """

    def __init__(self, port: int, timeout: float = 600.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.tags = 0
        self._line()

    def _line(self) -> bytes:
        while True:
            end = self.buf.find(b"\r\n")
            if end >= 0:
                line, self.buf = self.buf[: end + 2], self.buf[end + 2 :]
                return line
            self._more()

    def _more(self) -> None:
        data = self.sock.recv(262144)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def _skip(self, count: int) -> None:
        while len(self.buf) < count:
            self._more()
        self.buf = self.buf[count:]

    def command(self, text: str) -> tuple[bytes, int]:
        """Send *text*; return (tagged reply, untagged responses), raising unless it is OK."""
        self.tags += 1
        tag = b"t%d " % self.tags
        self.sock.sendall(tag + text.encode() + b"\r\n")
        untagged = 0
        while True:
            line = self._line()
            while line.endswith(b"}\r\n") and b"{" in line:
                self._skip(int(line[line.rindex(b"{") + 1 : -3]))
                line = self._line()
            if line.startswith(tag):
                if not line[len(tag) :].startswith(b"OK"):
                    raise RuntimeError(f"{text!r}: {line.decode(errors='replace').strip()}")
                return line, untagged
            untagged += line.startswith(b"* ")

    def timed(self, text: str) -> float:
        """Seconds *text* took, from sending to the tagged OK."""
        began = time.perf_counter()
        self.command(text)
        return time.perf_counter() - began

    def login(self, user: str, password: str) -> "Imap":
        """LOGIN, returning self for chaining."""
        self.command(f'LOGIN "{user}@{DOMAIN}" "{password}"')
        return self

    def close(self) -> None:
        """LOGOUT, ignoring a server that already went away."""
        try:
            self.command("LOGOUT")
        except (OSError, RuntimeError, ConnectionError):
            pass
        self.sock.close()


class Probe:
    """A second session sending NOOP after NOOP: the longest round trip during a window is its stall."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.imap = Imap(port).login(user, password)
        self.worst = 0.0
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while self.running:
            took = self.imap.timed("NOOP")
            with self.lock:
                self.worst = max(self.worst, took)
            time.sleep(0.005)

    def window(self, action: Callable[[], float]) -> tuple[float, float]:
        """(what *action* returned, longest NOOP round trip that overlapped it)."""
        with self.lock:
            self.worst = 0.0
        result = action()
        time.sleep(0.01)  # the NOOP in flight when the action ended counts too
        with self.lock:
            return result, self.worst

    def close(self) -> None:
        """Stop the loop and log out."""
        self.running = False
        self.thread.join(60)
        self.imap.close()


# --------------------------------------------------------------------------
# Memory of a process tree


def _tree(root: int) -> list[int]:
    """*root* and its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    text = f.read()
            except OSError:
                continue
            children.setdefault(int(text[text.rfind(")") + 2 :].split()[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_memory(root: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB summed over *root*'s process tree; PSS splits shared pages between sharers."""
    rss = pss = 0
    for pid in _tree(root):
        for path, key in ((f"/proc/{pid}/status", "VmRSS:"), (f"/proc/{pid}/smaps_rollup", "Pss:")):
            try:
                with open(path) as f:
                    value = next((int(line.split()[1]) for line in f if line.startswith(key)), 0)
            except OSError:
                continue
            if key == "VmRSS:":
                rss += value
            else:
                pss += value
    return rss, pss


# --------------------------------------------------------------------------
# The two servers


class Mailsrv:
    """A throw-away mailsrv (``tests/twistd_server.py``) serving plaintext IMAP on loopback."""

    label = "mailsrv"

    def __init__(self, base: str) -> None:
        os.makedirs(os.path.join(base, "mailsrv"))
        self.server = Server(
            os.path.join(base, "mailsrv"), ports={"imap": free_ports(1)[0]},
            extra_config="[auth]\nallow_plaintext_auth_on_loopback = true\n"
                         "[limits]\nmax_connections = 5000\nmax_connections_per_ip = 0\n",
            domains=(DOMAIN,),
        )
        self.port = self.server.ports["imap"]
        for user, password in ((BIG_USER, BIG_PASSWORD), (MIXED_USER, MIXED_PASSWORD)):
            self.server.add_user(f"{user}@{DOMAIN}", password)

    def maildir(self, user: str) -> str:
        """*user*'s INBOX: ``<data_dir>/mail/<domain>/<user>``."""
        return os.path.join(self.server.data_dir, "mail", DOMAIN, user)

    def fill(self, user: str, source: str) -> None:
        """Copy *source* in while the server is stopped, with no index of ours left over."""
        self.stop()
        fill_maildir(source, self.maildir(user))
        for name in os.listdir(self.maildir(user)):
            if name not in ("cur", "new", "tmp"):
                path = os.path.join(self.maildir(user), name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)

    def start(self) -> None:
        """Start twistd and wait for the IMAP port."""
        self.server.start()

    def stop(self) -> None:
        """SIGTERM and wait."""
        self.server.stop()

    @property
    def pid(self) -> int:
        """The twistd process."""
        assert self.server.process is not None
        return self.server.process.pid


class Dovecot:
    """The peers' private Dovecot (with its Postfix), on free ports, in a run directory of ours."""

    label = "dovecot"

    def __init__(self, base: str, peers: str) -> None:
        self.peers = peers
        self.run = os.path.join(base, "peers")
        smtp, self.port, imaps, pop3, pop3s = free_ports(5)
        self.env = dict(os.environ, PEERS_RUN=self.run, SMTP_PORT=str(smtp), IMAP_PORT=str(self.port),
                        IMAPS_PORT=str(imaps), POP3_PORT=str(pop3), POP3S_PORT=str(pop3s))
        self.conf = os.path.join(self.run, "dovecot", "dovecot.conf")
        self._script("start-postfix-dovecot.sh")

    def _run(self, command: list[str]) -> None:
        """Run *command* with its output in a file: the daemons it starts keep a pipe open forever."""
        log = os.path.join(os.path.dirname(self.run), "peers.log")
        with open(log, "a+") as out:
            done = subprocess.run(command, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, timeout=600)
            if done.returncode != 0:
                out.seek(0)
                raise RuntimeError(f"{' '.join(command)} failed: {out.read()[-2000:]}")

    def _script(self, name: str) -> None:
        self._run(["bash", os.path.join(self.peers, name)])

    def maildir(self, user: str) -> str:
        """*user*'s Maildir under the run directory."""
        return os.path.join(self.run, "mail", DOMAIN, user)

    def fill(self, user: str, source: str) -> None:
        """Copy *source* in while Dovecot is stopped, with its index files removed."""
        self.stop()
        owner = os.stat(self.maildir(user))
        fill_maildir(source, self.maildir(user), (owner.st_uid, owner.st_gid))
        for name in os.listdir(self.maildir(user)):
            if name.startswith("dovecot") or name == "maildirfolder":
                os.remove(os.path.join(self.maildir(user), name))

    def start(self) -> None:
        """Start the Dovecot master and wait for its IMAP port."""
        self._run(["dovecot", "-c", self.conf])
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not listen on {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """``doveadm stop``, and wait for the master to be gone."""
        pid = self._master()
        if pid is None:
            return
        self._run(["doveadm", "-c", self.conf, "stop"])
        deadline = time.monotonic() + 10
        while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
            time.sleep(0.05)

    def _master(self) -> int | None:
        try:
            with open(os.path.join(self.run, "dovecot", "run", "master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists(f"/proc/{pid}") else None

    @property
    def pid(self) -> int:
        """The Dovecot master (every login, imap and index process is under it)."""
        pid = self._master()
        if pid is None:
            raise RuntimeError("dovecot is not running")
        return pid

    def shutdown(self) -> None:
        """Stop Dovecot and the peers' Postfix."""
        self._script("stop-postfix-dovecot.sh")


# --------------------------------------------------------------------------
# The parts


@dataclass
class Line:
    """One table line: what was measured, its unit, and a figure per server (None: not measured)."""

    name: str
    unit: str
    figures: dict[str, float | None] = field(default_factory=dict)


def big_folder(target: Mailsrv | Dovecot, source: str, count: int) -> list[Line]:
    """The big-folder figures of one server (see the module docstring)."""
    target.fill(BIG_USER, source)
    target.start()
    session = Imap(target.port).login(BIG_USER, BIG_PASSWORD)
    probe = Probe(target.port, BIG_USER, BIG_PASSWORD)
    lines: list[Line] = []

    def run(name: str, command: str, repeat: int = 2) -> None:
        for _ in range(repeat):
            took, stall = probe.window(lambda: session.timed(command))
        lines.append(Line(name, "s", {target.label: took}))
        lines.append(Line("  stall of others during it", "s", {target.label: stall}))

    run("first SELECT, no index", "SELECT INBOX", repeat=1)
    run("SELECT INBOX (warm)", "SELECT INBOX")
    run("UID FETCH 1:* (FLAGS)", "UID FETCH 1:* (FLAGS)")
    run(f"FETCH 1:{min(1000, count)} (ENVELOPE)", f"FETCH 1:{min(1000, count)} (ENVELOPE)")
    run("UID SEARCH FROM someone", 'UID SEARCH FROM "someone"')
    run(f"SEARCH BODY {RARE_WORD}", f"SEARCH BODY {RARE_WORD}")
    for key in SORT_KEYS:
        run(f"SORT ({key})", f"SORT ({key}) UTF-8 ALL")
    rss, _ = tree_memory(target.pid)
    lines.append(Line("RSS with the folder open", "MiB", {target.label: rss / 1024}))
    probe.close()
    session.close()
    target.stop()
    target.start()
    session = Imap(target.port).login(BIG_USER, BIG_PASSWORD)
    lines.append(Line("first SELECT after a restart", "s", {target.label: session.timed("SELECT INBOX")}))
    session.close()
    return lines


#: The RFC 5256 sort keys timed on the big folder, each on its own.
SORT_KEYS = ("ARRIVAL", "DATE", "FROM", "SUBJECT")


#: One round of the mixed load: (command template, ``r`` replaced by a random message number).
MIXED_ROUND = (
    "SELECT INBOX", "FETCH {r} (FLAGS RFC822.SIZE BODY.PEEK[HEADER])", "FETCH {r} (BODY.PEEK[])",
    "STORE {r} +FLAGS (\\Flagged)", "SEARCH FLAGGED", "STORE {r} -FLAGS (\\Flagged)", "SEARCH UNSEEN",
)


def _mixed_client(port: int, seconds: float, seed: int, out: "multiprocessing.Queue[list[float]]") -> None:
    """One load process: log in, repeat :data:`MIXED_ROUND` until *seconds* are over, report latencies."""
    rnd = random.Random(seed)
    imap = Imap(port, timeout=60).login(MIXED_USER, MIXED_PASSWORD)
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for template in MIXED_ROUND:
            latencies.append(imap.timed(template.format(r=rnd.randint(1, MIXED_MESSAGES))))
    imap.close()
    out.put(latencies)


def mixed_ops(target: Mailsrv | Dovecot, clients: int, seconds: float) -> list[Line]:
    """ops/s and latency percentiles of *clients* processes on the 200-message INBOX."""
    queue: multiprocessing.Queue[list[float]] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_mixed_client, args=(target.port, seconds, n, queue))
               for n in range(clients)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    latencies = sorted(x for _ in workers for x in queue.get(timeout=seconds + 120))
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.join()
    label = target.label
    return [
        Line(f"mixed ops, {clients} clients", "ops/s", {label: len(latencies) / elapsed}),
        Line("  latency p50", "ms", {label: 1000 * latencies[len(latencies) // 2]}),
        Line("  latency p99", "ms", {label: 1000 * latencies[int(len(latencies) * 0.99)]}),
    ]


def idle_memory(target: Mailsrv | Dovecot, connections: int) -> list[Line]:
    """RSS and PSS of the server's tree per logged-in connection with INBOX selected."""
    time.sleep(1)  # let the mixed-ops sessions' processes (Dovecot) go away
    rss0, pss0 = tree_memory(target.pid)
    held = []
    for _ in range(connections):
        imap = Imap(target.port, timeout=60).login(MIXED_USER, MIXED_PASSWORD)
        imap.command("SELECT INBOX")
        held.append(imap)
    time.sleep(2)
    rss1, pss1 = tree_memory(target.pid)
    for imap in held:
        imap.close()
    label = target.label
    return [
        Line(f"RSS per idle connection ({connections})", "KiB", {label: (rss1 - rss0) / connections}),
        Line(f"PSS per idle connection ({connections})", "KiB", {label: (pss1 - pss0) / connections}),
    ]


def small_inbox(target: Mailsrv | Dovecot, source: str, clients: int, seconds: float,
                connections: int) -> list[Line]:
    """Mixed ops and idle memory, on a freshly filled 200-message INBOX."""
    target.fill(MIXED_USER, source)
    target.start()
    return mixed_ops(target, clients, seconds) + idle_memory(target, connections)


# --------------------------------------------------------------------------
# Output and command line


def merge(columns: Sequence[list[Line]]) -> list[Line]:
    """The servers' lines, which come in the same order, side by side."""
    merged = [Line(line.name, line.unit, dict(line.figures)) for line in columns[0]]
    for column in columns[1:]:
        for line, other in zip(merged, column):
            line.figures.update(other.figures)
    return merged


def table(lines: Sequence[list[Line]] | list[Line], labels: Sequence[str]) -> str:
    """One row per line: each server's figure, then mailsrv/Dovecot."""
    out = [f"{'':<40} {'unit':>5} " + " ".join(f"{label:>10}" for label in labels) + f" {'ratio':>7}"]
    for line in lines:
        values = [line.figures.get(label) for label in labels]
        cells = " ".join(f"{v:>10.4g}" if v is not None else f"{'-':>10}" for v in values)
        ratio = f"{values[0] / values[1]:>7.3g}" if len(values) > 1 and values[1] else f"{'-':>7}"
        out.append(f"{line.name:<40} {line.unit:>5} {cells} {ratio}")
    return "\n".join(out)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Options; ``--quick`` shrinks every part to a few seconds."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000, help="messages in the big folder")
    parser.add_argument("--clients", type=int, default=10, help="mixed-ops client processes")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the mixed-ops run")
    parser.add_argument("--idle-connections", type=int, default=500, help="connections held for idle memory")
    parser.add_argument("--no-dovecot", action="store_true", help="measure mailsrv only")
    parser.add_argument("--peers", default=os.environ.get("MAILSRV_BENCH_PEERS"),
                        help="directory of start-postfix-dovecot.sh (default: $MAILSRV_BENCH_PEERS)")
    parser.add_argument("--tmpdir", help="where the stores and the generated folder go")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (stores, configs, logs)")
    parser.add_argument("--quick", action="store_true", help="tiny run, to check the script works")
    args = parser.parse_args(argv)
    if args.quick:
        args.messages, args.clients, args.seconds, args.idle_connections = 300, 2, 1.0, 20
    if not args.no_dovecot:
        if os.geteuid() != 0:
            parser.error("Dovecot's peer needs root (or --no-dovecot)")
        if not args.peers or not os.path.exists(os.path.join(args.peers, "start-postfix-dovecot.sh")):
            parser.error(f"--peers {args.peers}: no start-postfix-dovecot.sh there")
    return args


def load() -> str:
    """The machine's load averages, for the reader to judge the figures by."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: Sequence[str] | None = None) -> int:
    """Measure every part on every server; 0 when all ran, 2 when a server failed."""
    args = parse_args(argv)
    base = tempfile.mkdtemp(prefix="mailsrv-imapbench-", dir=args.tmpdir)
    os.chmod(base, 0o755)  # Dovecot's processes run as "mail" and must reach its run directory
    targets: list[Mailsrv | Dovecot] = []
    try:
        print(f"{os.cpu_count()} CPUs, load {load()}; generating {args.messages} messages in {base}", flush=True)
        big, small = os.path.join(base, "big"), os.path.join(base, "small")
        generate_folder(big, args.messages)
        generate_folder(small, MIXED_MESSAGES, seed=200)
        targets.append(Mailsrv(base))
        if not args.no_dovecot:
            targets.append(Dovecot(base, args.peers))
        columns = []
        for target in targets:
            print(f"{target.label}: big folder (load {load()})", flush=True)
            lines = big_folder(target, big, args.messages)
            print(f"{target.label}: mixed ops and idle memory (load {load()})", flush=True)
            lines += small_inbox(target, small, args.clients, args.seconds, args.idle_connections)
            target.stop()
            columns.append(lines)
        print(f"\n{args.messages} messages, load {load()} at the end")
        print(table(merge(columns), [target.label for target in targets]))
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        print(f"imap.py: {e}", file=sys.stderr)
        return 2
    finally:
        for target in targets:
            target.stop()
            if isinstance(target, Dovecot):
                target.shutdown()
        if args.keep:
            print(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())

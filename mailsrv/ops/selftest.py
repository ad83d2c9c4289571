"""``mailsrv selftest``: one mail client's round trip through the running server, step by step.

The steps, each a :class:`Step` with its time, reported as it ends:

* ``certificate``: the certificate file the server serves (:func:`probe.served_certificate`)
  loads; every TLS step below trusts it and nothing else;
* ``user``: a temporary user ``selftest-<random>@<first local domain>`` with a random
  password, added as ``mailsrv user add`` adds one (the server reads the users file at
  each lookup, so it can log in at once);
* ``imap idle``: an IMAP session (``imaps``, else ``imap`` with STARTTLS) logs in,
  selects INBOX and enters IDLE (RFC 2177), before anything is sent;
* ``submit``: a message from the user to the user on ``submissions`` (465, implicit TLS),
  else ``submission`` (587, STARTTLS), with AUTH;
* ``imap exists``: the waiting IDLE session is told ``* N EXISTS``;
* ``pop3 retr``: POP3 (``pop3s``, else ``pop3`` with STLS) RETR returns the message
  byte-exact (:func:`added_fields`), and DELE removes it;
* ``tls <kind>``: every configured listener: the handshake its kind does (implicit, STARTTLS,
  STLS), the TLS version, the certificate's names against ``hostname``, days to expiry;
* ``dns <domain>``: the findings of ``mailsrv dns check`` counted for each local domain;
  skipped for a special-use name (``.test``, ``.example``, ``localhost``...: no public DNS
  can hold its records), and for every domain when the hostname is one;
* ``cleanup``: the temporary user and its Maildir (with any message a failed step left in
  it) are removed; also after a failure, and after Ctrl-C.

A step that needs an earlier one which failed is skipped, and says so.
Everything blocks: this is the command line's, not the server's.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import imaplib
import os
import poplib
import re
import secrets
import shutil
import signal
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import dns.exception

from mailsrv.address import mailbox_path
from mailsrv.config import Config
from mailsrv.listeners import Kind
from mailsrv.ops import dnscheck, probe, users
from mailsrv.ops.common import OpsError

PASS, FAIL, SKIP = "pass", "fail", "skip"
#: Names no public DNS holds: RFC 6761 6 and the special-use registry (local, home.arpa, alt), ICANN's
#: private-use ``internal``; and any name without a dot.  (example.com, .net and .org are in public DNS.)
_SPECIAL_USE = ("test", "example", "invalid", "localhost", "local", "alt", "internal", "home.arpa")
#: Our IMAP tag for IDLE, which imaplib does not send itself (its own tags are letters and digits).
_IDLE_TAG = b"SELFTEST-IDLE"


@dataclass(frozen=True)
class Step:
    """How one step went: ``pass``, ``fail`` or ``skip``, in how many seconds, and what was seen."""

    name: str
    result: str
    seconds: float
    detail: str

    def line(self) -> str:
        """The step as one line of the report."""
        return f"{self.result:4}  {self.name:<16} {self.seconds:6.2f}s  {self.detail}"


class StepFailed(Exception):
    """A step saw something wrong; the message says what."""


#: What a step may end with besides StepFailed: the network, TLS, the protocol libraries, a refused edit, DNS.
_STEP_ERRORS = (StepFailed, OSError, EOFError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto,
                OpsError, dns.exception.DNSException)


def run(config: Config, report: Callable[[Step], None], timeout: float = 30.0, check_dns: bool = True) -> list[Step]:
    """Run every step against the server *config* describes; each :class:`Step` goes to *report* as it ends.

    *timeout* bounds each network wait.  The temporary user is removed
    whatever happens, Ctrl-C (``KeyboardInterrupt``, raised again after
    the cleanup) included.
    """
    test = SelfTest(config, report, timeout)
    try:
        test.mail_loop()
        test.tls()
        if check_dns:
            test.dns()
    except KeyboardInterrupt:
        test.record("interrupted", FAIL, time.monotonic(), "stopped by a signal")
        raise
    finally:
        test.cleanup()
    return test.steps


def special_use(name: str) -> bool:
    """Whether *name* is one no public DNS answers for, so that checking its records says nothing."""
    name = name.rstrip(".").lower()
    return "." not in name or any(name == suffix or name.endswith("." + suffix) for suffix in _SPECIAL_USE)


def added_fields(received: bytes, sent: bytes) -> list[str]:
    """The names of the header fields the server put above *sent*; :class:`StepFailed` unless the rest is *sent*.

    Byte-exact means: every octet of the sent header and body is there,
    in order, and what comes before it is whole header fields (the
    server's Return-Path, Received, DKIM-Signature, ...).
    """
    if not received.endswith(sent):
        raise StepFailed(f"not the message sent: {_difference(received, sent)}")
    above = received[: len(received) - len(sent)]
    if not above:
        return []
    if not above.endswith(b"\r\n"):
        changed = above.rsplit(b"\r\n", 1)[-1]
        raise StepFailed(f"not the message sent: its first line begins with {_show(changed)} before what was sent")
    names = []
    for field in re.split(rb"\r\n(?![ \t])", above[:-2]):
        match = re.match(rb"([!-9;-~]+):", field)
        if match is None:
            raise StepFailed(f"not a header field above the message sent: {_show(field)}")
        names.append(match.group(1).decode("ascii"))
    return names


def _difference(received: bytes, sent: bytes) -> str:
    """The first line where *received* departs from *sent*, lined up at the first sent line."""
    first = sent.split(b"\r\n", 1)[0]
    at = received.find(first + b"\r\n")
    if at < 0:
        return f"its line {_show(first)} is missing"
    got, want = received[at:].split(b"\r\n"), sent.split(b"\r\n")
    for number, (line, expected) in enumerate(zip(got, want), 1):
        if line != expected:
            return f"line {number} sent as {_show(expected)}, read back as {_show(line)}"
    return f"{len(sent)} octets sent, {len(received) - at} read back"


def _show(line: bytes) -> str:
    return repr(line[:80].decode("utf-8", "replace")) + ("..." if len(line) > 80 else "")


class SelfTest:
    """The steps' shared state: the TLS context, the temporary user, the open IDLE session."""

    def __init__(self, config: Config, report: Callable[[Step], None], timeout: float) -> None:
        self.config = config
        self.report = report
        self.timeout = timeout
        self.steps: list[Step] = []
        self.context: ssl.SSLContext | None = None
        self.address = ""
        self.password = secrets.token_urlsafe(24)
        self.token = secrets.token_hex(8)
        self.message = self._message()
        self.idle: imaplib.IMAP4 | None = None
        self.exists = 0

    # -- bookkeeping ----------------------------------------------------------------

    def record(self, name: str, result: str, start: float, detail: str) -> None:
        step = Step(name, result, time.monotonic() - start, detail)
        self.steps.append(step)
        self.report(step)

    def step(self, name: str, action: Callable[[], str], needs: tuple[str, ...] = ()) -> bool:
        """Run *action* (it returns the detail of a pass) unless a step it *needs* did not pass."""
        start = time.monotonic()
        missing = [need for need in needs if not self.passed(need)]
        if missing:
            self.record(name, SKIP, start, f"needs {', '.join(missing)}")
            return False
        try:
            detail = action()
        except _STEP_ERRORS as e:
            self.record(name, FAIL, start, _reason(e))
            return False
        self.record(name, PASS, start, detail)
        return True

    def passed(self, name: str) -> bool:
        return any(step.name == name and step.result == PASS for step in self.steps)

    # -- the mail loop ----------------------------------------------------------------

    def mail_loop(self) -> None:
        self.step("certificate", self._certificate)
        self.step("user", self._add_user, needs=("certificate",))
        self.step("imap idle", self._open_idle, needs=("user",))
        self.step("submit", self._submit, needs=("user",))
        self.step("imap exists", self._await_exists, needs=("imap idle", "submit"))
        self.step("pop3 retr", self._pop3, needs=("submit",))

    def _certificate(self) -> str:
        path = probe.served_certificate(self.config)
        try:
            self.context = probe.client_context(self.config)
        except (OSError, ssl.SSLError) as e:
            raise StepFailed(f"{path}: {_reason(e)} (start the server once, or set [tls] cert)") from None
        return f"{path}, trusted as our own"

    def _add_user(self) -> str:
        domain = self.config.domains[0]
        address = f"selftest-{self.token}@{domain}"
        if os.path.exists(self._maildir(address)):
            raise StepFailed(f"{self._maildir(address)} exists already")
        self.address = users.add_user(self.config, address, self.password)
        return f"{self.address} (temporary)"

    def _message(self) -> bytes:
        """What is submitted; it brings its own Date and Message-ID, so submission adds neither."""
        address = f"selftest-{self.token}@{self.config.domains[0]}"
        date = email.utils.format_datetime(datetime.datetime.now(datetime.timezone.utc))
        header = (f"From: mailsrv selftest <{address}>\r\nTo: <{address}>\r\nSubject: mailsrv selftest {self.token}\r\n"
                  f"Date: {date}\r\nMessage-ID: <selftest.{self.token}@{self.config.hostname}>\r\n"
                  "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n")
        body = ("mailsrv selftest sent this to itself and deletes it.\r\n"
                ".a line that starts with a dot (SMTP and POP3 dot-stuffing)\r\n"
                "trailing white space \t\r\n"
                f"{'0123456789' * 90}\r\n")
        return (header + "\r\n" + body).encode("ascii")

    def _pick(self, *kinds: Kind) -> probe.Target:
        """The first dialable listener of the first of *kinds* that has one."""
        for kind in kinds:
            for found in probe.targets(self.config, kind):
                if isinstance(found, probe.Target):
                    return found
        names = " or ".join(kind.label for kind in kinds)
        raise StepFailed(f"no {names} listener to connect to ([listen] in {self.config.source})")

    def _open_idle(self) -> str:
        target = self._pick(Kind.IMAPS, Kind.IMAP)
        client = probe.imap(target, self._tls(), self.timeout)
        self.idle = client
        client.login(self.address, self.password)
        typ, data = client.select("INBOX")
        if typ != "OK":
            raise StepFailed(f"{target}: SELECT INBOX: {data}")
        self.exists = int(data[0] or 0)
        client.send(_IDLE_TAG + b" IDLE\r\n")
        while not (line := client.readline()).startswith(b"+"):
            if not line.startswith(b"* "):
                raise StepFailed(f"{target}: IDLE refused: {_show(line.rstrip())}")
        return f"{target} ({_how(target)}), INBOX has {self.exists}, idling"

    def _submit(self) -> str:
        target = self._pick(Kind.SUBMISSIONS, Kind.SUBMISSION)
        with probe.smtp(target, self._tls(), self.timeout) as client:
            client.login(self.address, self.password)
            for command, argument in ((client.mail, self.address), (client.rcpt, self.address)):
                code, reply = command(argument)
                if code not in (250, 251):
                    raise StepFailed(f"{target}: {code} {reply.decode('utf-8', 'replace')}")
            code, reply = client.data(self.message)
            if code != 250:
                raise StepFailed(f"{target}: after the data: {code} {reply.decode('utf-8', 'replace')}")
        return f"{target} ({_how(target)}, AUTH as {self.address}): {code} {reply.decode('utf-8', 'replace')}"

    def _await_exists(self) -> str:
        client = self.idle
        assert client is not None
        deadline = time.monotonic() + self.timeout
        while True:
            line = client.readline()
            if not line:
                raise StepFailed("the server closed the IDLE session")
            match = re.match(rb"\* (\d+) EXISTS", line)
            if match and int(match.group(1)) > self.exists:
                break
            if time.monotonic() > deadline:
                raise StepFailed(f"no EXISTS within {self.timeout:g}s")
        client.send(b"DONE\r\n")
        while not (done := client.readline()).startswith(_IDLE_TAG + b" "):
            if not done:
                raise StepFailed("the server closed the IDLE session after DONE")
        if not done.startswith(_IDLE_TAG + b" OK"):
            raise StepFailed(f"IDLE ended with {_show(done.rstrip())}")
        client.logout()
        self.idle = None
        return f"{line.rstrip().decode('ascii')} in the IDLE session"

    def _pop3(self) -> str:
        target = self._pick(Kind.POP3S, Kind.POP3)
        client = probe.pop3(target, self._tls(), self.timeout)
        try:
            client.user(self.address)
            client.pass_(self.password)
            count = client.stat()[0]
            message_id = self.message.split(b"Message-ID: ", 1)[1].split(b"\r\n", 1)[0]
            for number in range(1, count + 1):
                _, lines, _ = client.retr(number)
                received = b"\r\n".join(lines) + b"\r\n"
                if message_id in received:
                    break
            else:
                raise StepFailed(f"{target}: {count} messages, none of them the one sent")
            fields = added_fields(received, self.message)
            client.dele(number)
        finally:
            with contextlib.suppress(*_STEP_ERRORS):
                client.quit()  # ends the transaction: the DELE takes effect (RFC 1939 6)
        above = ", ".join(fields) or "nothing"
        return f"{target} ({_how(target)}): {len(received)} octets, byte-exact below {above}; deleted"

    def _tls(self) -> ssl.SSLContext:
        assert self.context is not None
        return self.context

    # -- every listener's TLS ---------------------------------------------------------

    def tls(self) -> None:
        for kind in Kind:
            for found in probe.targets(self.config, kind):
                name = f"tls {kind.label}"
                if not kind.implicit_tls and not kind.offers_starttls:
                    self.record(name, SKIP, time.monotonic(), f"{found}: plain HTTP, no TLS")
                elif isinstance(found, probe.Unreachable):
                    self.record(name, SKIP, time.monotonic(), str(found))
                else:
                    self.step(name, lambda target=found: self._handshake(target), needs=("certificate",))

    def _handshake(self, target: probe.Target) -> str:
        shown = probe.handshake(target, self._tls(), self.timeout)
        if shown.days_left < dnscheck.EXPIRY_MARGIN.days:
            raise StepFailed(f"{target}: {shown}: renew the certificate")
        return f"{target}: {shown}"

    # -- DNS --------------------------------------------------------------------------

    def dns(self) -> None:
        start = time.monotonic()
        if special_use(self.config.hostname):
            self.record("dns", SKIP, start, f"hostname {self.config.hostname} is a special-use name, not in public DNS")
            return
        for domain in self.config.domains:
            if special_use(domain):
                self.record(f"dns {domain}", SKIP, start, "a special-use name, not in public DNS")
            else:
                self.step(f"dns {domain}", lambda domain=domain: self._dns_check(domain))

    def _dns_check(self, domain: str) -> str:
        findings = dnscheck.check(self.config, domain)
        bad = [f for f in findings if f.status is not dnscheck.Status.OK]
        if bad:
            listed = "; ".join(f"{f.what} {f.status.value}" for f in bad)
            raise StepFailed(f"{len(bad)} of {len(findings)} checks not ok: {listed} (see mailsrv dns check {domain})")
        return f"{len(findings)} checks ok"

    # -- cleanup ----------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove the temporary user and its Maildir, not to be interrupted by a second Ctrl-C."""
        if not self.address:
            return
        with _uninterrupted():
            start = time.monotonic()
            if self.idle is not None:
                with contextlib.suppress(*_STEP_ERRORS):
                    self.idle.shutdown()
            try:
                users.remove_user(self.config, self.address)
                left = self._remove_maildir()
            except (OpsError, OSError) as e:
                self.record("cleanup", FAIL, start, f"{self.address}: {_reason(e)}")
                return
            note = f", with {left} message(s) a failed step left" if left else ""
            self.record("cleanup", PASS, start, f"removed {self.address} and its Maildir{note}")

    def _maildir(self, address: str) -> str:
        return os.path.join(self.config.mail_dir, *mailbox_path(address))

    def _remove_maildir(self) -> int:
        """Remove the temporary user's Maildir; how many messages were still in its INBOX."""
        path = self._maildir(self.address)
        if not os.path.isdir(path):
            return 0
        left = sum(len(os.listdir(os.path.join(path, sub))) for sub in ("new", "cur")
                   if os.path.isdir(os.path.join(path, sub)))
        shutil.rmtree(path)
        return left


def _how(target: probe.Target) -> str:
    return "implicit TLS" if target.kind.implicit_tls else ("STLS" if target.kind.protocol == "pop3" else "STARTTLS")


def _reason(error: BaseException) -> str:
    """An exception in the admin's words: the TLS verification message, the reply, or the error text."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate not accepted: {error.verify_message}"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"{error.smtp_code} {error.smtp_error.decode('utf-8', 'replace')}"
    if isinstance(error, (StepFailed, OpsError)):
        return str(error)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror} ({type(error).__name__})"
    return f"{type(error).__name__}: {error}"


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ignore SIGINT meanwhile (in the main thread only: others cannot set handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)

"""Re-run the reproductions behind docs/twisted-notes.rst against the installed Twisted.

Usage: ``python docs/twisted_checks.py`` (from a venv with mailsrv's
dependencies).  Each check drives one of Twisted's own classes -- never
mailsrv's -- and prints ``present`` when the defect its section of
docs/twisted-notes.rst describes is still there, ``GONE`` when Twisted
behaves differently now (the workaround may then be dropped: read the
section again first).  The name printed is the section heading.

Most checks feed bytes through ``StringTransport``; the ones about sockets
run on the real reactor over loopback.  Nothing here is part of mailsrv or
its test suite; it exists so that the notes can be checked after a Twisted
upgrade.
"""

from __future__ import annotations

import base64
import datetime
import fcntl
import io
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback
from email.parser import BytesHeaderParser
from typing import Any, Callable

import twisted
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet import defer, protocol, reactor, task, threads
from twisted.internet.endpoints import TCP4ServerEndpoint, serverFromString
from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.ssl import PrivateCertificate
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogBeginner
from twisted.mail import imap4, pop3, smtp
from twisted.mail.protocols import DomainDeliveryBase
from twisted.python import log
from twisted.python.logfile import LogFile
from zope.interface import implementer

CHECKS: list[tuple[str, Callable[[], Any]]] = []


def check(heading: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Register a check for the section called *heading*; it returns ``(present, detail)``."""

    def register(fn: Callable[[], Any]) -> Callable[[], Any]:
        CHECKS.append((heading, fn))
        return fn

    return register


# -- fakes ------------------------------------------------------------------


@implementer(ITLSTransport)
class TLSCapableTransport(StringTransport):
    """A StringTransport that can "start TLS": it records where in the output that happened."""

    tls_at: int | None = None

    def startTLS(self, ctx: object, normal: bool = True) -> None:
        self.tls_at = len(self.value())


class Message:
    """An SMTP ``IMessage`` that keeps its lines; *fail* makes ``eomReceived`` fail."""

    def __init__(self, fail: bool = False) -> None:
        self.lines: list[bytes] = []
        self.fail = fail

    def lineReceived(self, line: bytes) -> None:
        self.lines.append(line)

    def eomReceived(self) -> defer.Deferred[None]:
        return defer.fail(RuntimeError("store failed")) if self.fail else defer.succeed(None)

    def connectionLost(self) -> None:
        pass


class Delivery:
    """An ``IMessageDelivery`` accepting everyone; *from_result* replaces validateFrom's answer."""

    def __init__(self, from_result: Any = None, to_error: Exception | None = None) -> None:
        self.from_result = from_result
        self.to_error = to_error
        self.messages: list[Message] = []
        self.received_calls = 0

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> bytes:
        self.received_calls += 1
        return b"Received: test"

    def validateFrom(self, helo: Any, origin: Any) -> Any:
        return origin if self.from_result is None else self.from_result

    def validateTo(self, user: Any) -> Callable[[], Message]:
        if self.to_error is not None:
            raise self.to_error

        def make() -> Message:
            message = Message(fail=len(self.messages) == 1)
            self.messages.append(message)
            return message

        return make


def esmtp(delivery: Delivery | None = None, chal: dict[bytes, Any] | None = None) -> tuple[smtp.ESMTP, TLSCapableTransport]:
    server = smtp.ESMTP(chal=chal, contextFactory=object())
    server.delivery = delivery or Delivery()
    server.host = b"mx.example"
    transport = TLSCapableTransport()
    server.makeConnection(transport)
    return server, transport


class Maildrop:
    """A POP3 ``IMailbox`` over a list of byte strings (LF line ends, as Twisted wants)."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages
        self.deleted: list[int] = []

    def listMessages(self, i: int | None = None) -> Any:
        return [len(m) for m in self.messages] if i is None else len(self.messages[i])

    def getMessage(self, i: int) -> io.BytesIO:
        return io.BytesIO(self.messages[i])

    def getUidl(self, i: int) -> bytes:
        return b"%d" % i

    def deleteMessage(self, i: int) -> None:
        self.deleted.append(i)

    def undeleteMessages(self) -> None:
        self.deleted = []

    def sync(self) -> None:
        pass


def pop3_session(mbox: Any = None) -> tuple[pop3.POP3, StringTransport]:
    server = pop3.POP3()
    transport = StringTransport()
    server.makeConnection(transport)
    server.mbox = mbox
    transport.clear()
    return server, transport


def pump_producer(transport: StringTransport) -> bytes:
    """Run the FileSender Twisted registered (RETR/TOP) to the end; return all output."""
    while transport.producer is not None:
        transport.producer.resumeProducing()
    return transport.value()


@implementer(imap4.IMessage, imap4.IMessagePart)
class IMAPMessage:
    """An IMAP message over raw bytes (no ``IMessageFile``, as a plain adapter would be)."""

    def __init__(self, raw: bytes, uid: int = 1) -> None:
        self.raw = raw
        self.uid = uid
        self.header = BytesHeaderParser().parsebytes(raw)

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        wanted = {n.lower() for n in names}
        return {k.lower(): v for k, v in self.header.items() if (k.lower() in wanted) != negate}

    def getBodyFile(self) -> io.BytesIO:
        return io.BytesIO(self.raw.split(b"\r\n\r\n", 1)[1])

    def getSize(self) -> int:
        return len(self.raw)

    def isMultipart(self) -> bool:
        return False

    def getSubPart(self, part: int) -> Any:
        raise IndexError(part)

    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return []

    def getInternalDate(self) -> str:
        return "Mon, 01 Jan 2024 00:00:00 +0000"


@implementer(imap4.IMailbox)
class IMAPMailbox:
    """One-message mailbox; *store_error* makes ``store`` raise."""

    def __init__(self, raw: bytes, store_error: Exception | None = None) -> None:
        self.message = IMAPMessage(raw)
        self.store_error = store_error

    def getFlags(self) -> list[str]:
        return ["\\Seen"]

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return 1

    def getUIDNext(self) -> int:
        return 2

    def getUID(self, seq: int) -> int:
        return 1

    def getMessageCount(self) -> int:
        return 1

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        return 1

    def isWriteable(self) -> bool:
        return True

    def addListener(self, listener: Any) -> None:
        pass

    def removeListener(self, listener: Any) -> None:
        pass

    def fetch(self, messages: Any, uid: bool) -> list[tuple[int, IMAPMessage]]:
        return [(1, self.message)]

    def store(self, messages: Any, flags: Any, mode: int, uid: bool) -> dict[int, list[str]]:
        if self.store_error is not None:
            raise self.store_error
        return {}

    def expunge(self) -> list[int]:
        return []


class Account:
    """An ``IAccount`` whose ``select`` returns *mailbox* (None: no such mailbox)."""

    def __init__(self, mailbox: Any) -> None:
        self.mailbox = mailbox

    def select(self, name: str, rw: bool = True) -> Any:
        return self.mailbox


RAW = b"Subject: hello\r\nReceived: one\r\nReceived: two\r\n\r\n0123456789abcdefghij\r\n"


def imap_session(
    state: str = "select", raw: bytes = RAW, ctx: object = None, chal: dict[bytes, Any] | None = None,
    mailbox: Any = None,
) -> tuple[imap4.IMAP4Server, TLSCapableTransport]:
    transport = TLSCapableTransport()

    def run_now(steps: Any) -> defer.Deferred[None]:
        """A scheduler that runs a FETCH to the end at once (Twisted's waits for the reactor)."""
        for _ in steps:
            pump_producer(transport)
        return defer.succeed(None)

    server = imap4.IMAP4Server(chal=chal, contextFactory=ctx, scheduler=run_now)
    server.makeConnection(transport)
    server.state = state
    server.mbox = mailbox or IMAPMailbox(raw)
    server.account = Account(server.mbox)
    transport.clear()
    return server, transport


class Errors:
    """Collect what Twisted logs with ``log.err`` while a check runs."""

    def __enter__(self) -> list[Any]:
        self.events: list[Any] = []
        log.addObserver(self._observe)
        return self.events

    def _observe(self, event: dict[str, Any]) -> None:
        if event.get("isError"):
            self.events.append(event)

    def __exit__(self, *exc: object) -> None:
        log.removeObserver(self._observe)


def raises(fn: Callable[[], Any]) -> str | None:
    """The name of the exception *fn* raises, or None."""
    try:
        fn()
    except Exception as e:
        return type(e).__name__
    return None


# -- SMTP -------------------------------------------------------------------


@check("STARTTLS command injection")
def starttls_injection() -> tuple[bool, str]:
    server, t = esmtp()
    server.dataReceived(b"EHLO c\r\nSTARTTLS\r\nRSET\r\n")
    smtp_hit = t.tls_at is not None and b"250 I remember nothing." in t.value()[t.tls_at:]
    imap, it = imap_session(state="unauth", ctx=object())
    imap.dataReceived(b"a STARTTLS\r\nb CAPABILITY\r\n")
    imap_hit = it.tls_at is not None and b"b OK CAPABILITY completed" in it.value()[it.tls_at:]
    return smtp_hit and imap_hit, f"SMTP RSET answered after TLS: {smtp_hit}; IMAP CAPABILITY: {imap_hit}"


@check("SMTP: STARTTLS keeps the session")
def starttls_keeps_session() -> tuple[bool, str]:
    server, t = esmtp()
    server.dataReceived(b"EHLO c\r\nMAIL FROM:<a@example.org>\r\n")
    server.dataReceived(b"STARTTLS\r\n")
    t.clear()
    server.dataReceived(b"RCPT TO:<b@example.org>\r\n")
    return t.value().startswith(b"250"), f"RCPT after STARTTLS without a new MAIL: {t.value()!r}"


@check("Passwords before TLS")
def passwords_before_tls() -> tuple[bool, str]:
    server, t = esmtp(chal={b"PLAIN": imap4.PLAINCredentials})
    server.portal = object()
    server.dataReceived(b"EHLO c\r\nAUTH PLAIN\r\n")
    smtp_hit = b"250-AUTH PLAIN" in t.value() and b"\r\n334 " in t.value()
    imap, it = imap_session(state="unauth", ctx=object(), chal={b"PLAIN": imap4.PLAINCredentials})
    imap.portal = object()
    imap.dataReceived(b"a CAPABILITY\r\nb AUTHENTICATE PLAIN\r\n")
    imap_hit = b"AUTH=PLAIN" in it.value() and b"LOGINDISABLED" in it.value() and b"\r\n+" in it.value()
    pop, pt = pop3_session()
    pop.dataReceived(b"USER alice\r\n")
    pop_hit = pt.value().startswith(b"+OK")
    return smtp_hit and imap_hit and pop_hit, (
        f"SMTP AUTH offered and started in clear: {smtp_hit}; IMAP AUTH=PLAIN beside LOGINDISABLED and "
        f"AUTHENTICATE started: {imap_hit}; POP3 USER accepted in clear: {pop_hit}"
    )


@check("SMTP: over-long lines")
def long_lines() -> tuple[bool, str]:
    server, t = esmtp()
    server.dataReceived(b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n")
    server.dataReceived(b"x" * 20000 + b"\r\n")
    t.clear()
    server.dataReceived(b"MAIL FROM:<smuggled@example.org>\r\n")
    smuggled = t.value()
    held_server, ht = esmtp()
    ht.clear()
    for _ in range(64):
        held_server.dataReceived(b"x" * 16384)
    held = len(held_server._buffer)
    return smuggled.startswith(b"250") and held >= 64 * 16384, (
        f"body line after the long one, run as a command: {smuggled!r}; without CRLF: {held} octets "
        f"held after {ht.value().count(b'500 ')} replies of 500"
    )


@check("SMTP: pipelining")
def pipelining_order() -> tuple[bool, str]:
    pending: defer.Deferred[Any] = defer.Deferred()
    server, t = esmtp(Delivery(from_result=pending))
    server.dataReceived(b"HELO c\r\n")
    t.clear()
    server.dataReceived(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\n")
    pending.callback(smtp.Address(b"a@example.org"))
    replies = [line[:3] for line in t.value().splitlines()]
    return replies == [b"503", b"250"], f"replies to MAIL, RCPT in this order: {replies}"


@check("SMTP: MAIL and RCPT parameters")
def mail_parameters() -> tuple[bool, str]:
    server, t = esmtp()
    server.dataReceived(b"EHLO c\r\n")
    ehlo = t.value()
    t.clear()
    server.dataReceived(b"MAIL FROM:<a@example.org> SIZE=999999999999 FOO=BAR\r\n")
    accepted = t.value().startswith(b"250")
    return accepted and b"SIZE" not in ehlo, f"unknown parameter and huge SIZE accepted: {t.value()!r}"


@check("SMTP: missing commands")
def missing_commands() -> tuple[bool, str]:
    server, t = esmtp()
    t.clear()
    server.dataReceived(b"NOOP\r\nVRFY a\r\nHELP\r\n")
    replies = [line[:3] for line in t.value().splitlines()]
    return replies == [b"500"] * 3, f"NOOP, VRFY, HELP: {replies}"


@check("Non-ASCII command names")
def non_ascii_commands() -> tuple[bool, str]:
    server, _ = esmtp()
    smtp_error = raises(lambda: server.dataReceived(b"\xff\xfe\r\n"))
    pop, _ = pop3_session(Maildrop([]))  # logged in: before that, every unknown verb is -ERR
    with Errors():
        pop_error = raises(lambda: pop.dataReceived(b"\xff\r\n"))
    imap, it = imap_session(state="unauth")
    with Errors() as logged:
        imap.dataReceived(b"a \xff\r\n")
    imap_hit = b"BAD Server error" in it.value() and bool(logged)
    return bool(smtp_error and pop_error and imap_hit), (
        f"SMTP dataReceived raises {smtp_error}; POP3 raises {pop_error}; "
        f"IMAP: {it.value().strip()!r} and {len(logged)} logged traceback(s)"
    )


@check("SMTP: SMTPServerError texts")
def server_error_texts() -> tuple[bool, str]:
    server, t = esmtp(Delivery(to_error=smtp.SMTPServerError(550, b"5.1.1 no such user")))
    server.dataReceived(b"HELO c\r\nMAIL FROM:<a@example.org>\r\n")
    t.clear()
    server.dataReceived(b"RCPT TO:<b@example.org>\r\n")
    silent = t.value() == b""  # the TypeError is logged only when the Deferred is collected

    class Refusing(Message):
        def lineReceived(self, line: bytes) -> None:
            if line == b"body":
                raise smtp.SMTPServerError(552, "5.3.4 too big")

    delivery = Delivery()
    delivery.validateTo = lambda user: Refusing  # type: ignore[method-assign]
    server2, _ = esmtp(delivery)
    server2.dataReceived(b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\nbody\r\n")
    error = raises(lambda: server2.dataReceived(b".\r\n"))
    return silent and error is not None, (
        f"bytes text from validateTo: reply {t.value()!r}; "
        f"str text from IMessage.lineReceived: dataReceived raises {error} at the final dot"
    )


@check("SMTP: one message per recipient")
def message_per_recipient() -> tuple[bool, str]:
    delivery = Delivery()
    server, t = esmtp(delivery)
    server.dataReceived(b"HELO c\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\r\n")
    t.clear()
    with Errors():
        server.dataReceived(b"DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n")
    last = t.value().splitlines()[-1]
    hit = len(delivery.messages) == 2 and delivery.received_calls == 2 and last.startswith(b"550")
    return hit, f"{len(delivery.messages)} IMessages, {delivery.received_calls} Received headers; reply {last!r}"


@check("SMTP: Received header")
def received_header() -> tuple[bool, str]:
    base = DomainDeliveryBase(None, None, b"mx.example")
    header = base.receivedHeader((b"client.example", b"192.0.2.1"), smtp.Address(b"a@example.org"), [smtp.Address(b"b@example.org")])
    return b"\n\t" in header and b"\r\n" not in header, f"folded with bare LF: {header[:60]!r}..."


@check("SMTP: source routes")
def source_routes() -> tuple[bool, str]:
    routed = str(smtp.Address(b"<@relay.example:user@dest.example>"))
    percent = str(smtp.Address(b"user%other.example@dest.example"))
    return routed == "user@dest.example", f"route dropped: {routed!r}; %-hack kept for later: {percent!r}"


@check("SMTP client: dot-stuffing")
def client_dot_stuffing() -> tuple[bool, str]:
    sent = smtp.SMTPClient(b"client.example").transformChunk(b".\nrest\n")
    return sent == b".\r\nrest\r\n", f"chunk b'.\\nrest\\n' sent as {sent!r}"


@check("PLAIN drops the authzid")
def plain_authzid() -> tuple[bool, str]:
    credentials = imap4.PLAINCredentials()
    credentials.setResponse(b"admin@example.org\0alice@example.org\0secret")
    kept = [v for v in vars(credentials).values() if v == b"admin@example.org"]
    return not kept, f"username {credentials.username!r}; authzid kept anywhere: {bool(kept)}"


# -- POP3 -------------------------------------------------------------------


@check("POP3: no STLS")
def no_stls() -> tuple[bool, str]:
    server, t = pop3_session()
    server.dataReceived(b"STLS\r\n")
    return not hasattr(server, "do_STLS"), f"STLS answered {t.value().strip()!r}"


@check("POP3: capabilities")
def pop3_capabilities() -> tuple[bool, str]:
    server, t = pop3_session()
    server.dataReceived(b"CAPA\r\n")
    caps = t.value().split(b"\r\n")[1:-2]
    return b"CELERITY" in caps and b"PIPELINE" in caps, f"CAPA before TLS: {caps}"


@check("POP3: APOP")
def apop() -> tuple[bool, str]:
    from hashlib import md5

    magic, password = b"<1.2@example.org>", b"secret"
    digest = md5(magic + password).hexdigest().encode("ascii")
    ok = pop3.APOPCredentials(magic, b"alice", digest).checkPassword(password)
    return not ok, f"checkPassword with the right password: {ok}"


@check("POP3: AUTH")
def pop3_auth() -> tuple[bool, str]:
    server, t = pop3_session()
    server.factory = type("F", (), {"challengers": {b"PLAIN": imap4.PLAINCredentials}})()
    server.portal = object()
    server.dataReceived(b"AUTH PLAIN\r\n" + base64.b64encode(b"\0alice@example.org\0secret") + b"\r\n")
    last = t.value().splitlines()[-1]
    return last.startswith(b"-ERR"), f"a valid PLAIN response answered {last!r}"


@check("POP3: DELE 0")
def dele_zero() -> tuple[bool, str]:
    mbox = Maildrop([b"a\n", b"b\n"])
    server, t = pop3_session(mbox)
    server.dataReceived(b"DELE 0\r\n")
    return mbox.deleted == [-1], f"mailbox asked to delete index {mbox.deleted}; reply {t.value().strip()!r}"


@check("POP3: error texts")
def pop3_error_texts() -> tuple[bool, str]:
    class Strict(Maildrop):
        def deleteMessage(self, i: int) -> None:
            raise ValueError("no such message")

    server, _ = pop3_session(Strict([b"a\n"]))
    with Errors():
        error = raises(lambda: server.dataReceived(b"DELE 7\r\n"))
    return error == "TypeError", f"ValueError with a str message: dataReceived raises {error}"


@check("POP3: over-long lines")
def pop3_long_line() -> tuple[bool, str]:
    server, t = pop3_session()
    server.dataReceived(b"x" * 20000 + b"\r\n")
    return t.disconnecting, f"a 20,000-octet line closes the connection: {t.disconnecting}"


@check("POP3: pipelining")
def pop3_pipelining() -> tuple[bool, str]:
    class SlowLogin(pop3.POP3):
        def authenticateUserPASS(self, user: bytes, password: bytes) -> defer.Deferred[Any]:
            return defer.Deferred()

    server = SlowLogin()
    t = StringTransport()
    server.makeConnection(t)
    t.clear()
    server.dataReceived(b"USER alice\r\nPASS secret\r\nSTAT\r\n")
    stat = t.value().splitlines()[-1]
    return stat.startswith(b"-ERR"), f"STAT behind a pending PASS answered {stat!r}"


@check("POP3: dot-stuffing at chunk boundaries")
def dot_stuffing() -> tuple[bool, str]:
    first = b".first line\nsecond\n"
    boundary = b"a" * 16383 + b"\n" + b".\n" + b"after the boundary\n"
    crlf = b"line\r\n"
    out = []
    for message in (first, boundary, crlf):
        server, t = pop3_session(Maildrop([message]))
        server.dataReceived(b"RETR 1\r\n")
        out.append(pump_producer(t))
    first_ok = b"\r\n..first" in out[0]
    early_end = out[1].find(b"\r\n.\r\n") < len(out[1]) - 5
    crcrlf = b"\r\r\n" in out[2]
    return (not first_ok) and early_end and crcrlf, (
        f"first line stuffed: {first_ok}; '.' line at 16 KiB ends the response early: {early_end}; "
        f"CRLF input sent as CR CR LF: {crcrlf}"
    )


@check("POP3: TOP header split")
def top_header_split() -> tuple[bool, str]:
    header = b"X-Pad: " + b"p" * (16384 - 2 - len(b"X-Pad: ")) + b"\r\n"  # ends exactly at 16 KiB
    message = header + b"\r\nbody line 1\r\nbody line 2\r\n"
    reader = pop3._HeadersPlusNLines(io.BytesIO(message), 0)
    out = b""
    while chunk := reader.read(16384):
        out += chunk
    return b"body line 1" in out, f"TOP 0 returned {len(out)} of {len(message)} octets, body included"


# -- IMAP -------------------------------------------------------------------


@check("IMAP: line limit")
def imap_line_limit() -> tuple[bool, str]:
    server, t = imap_session()
    server.dataReceived(b"a FETCH " + b"1," * 10000 + b"1 FLAGS\r\n")
    return t.disconnecting, f"a 20 kB FETCH line closes the connection: {t.disconnecting}"


@check("IMAP: APPEND literal size")
def append_literal() -> tuple[bool, str]:
    server, t = imap_session(state="auth")
    server.dataReceived(b"a APPEND INBOX {999999999999}\r\n")
    return b"+ Ready for 999999999999" in t.value(), t.value().strip().decode()


@check("IMAP: pipelining")
def imap_pipelining() -> tuple[bool, str]:
    server, t = imap_session(state="unauth")
    server.portal = type("P", (), {"login": lambda self, *a: defer.Deferred()})()
    server.dataReceived(b"a LOGIN alice secret\r\nb SELECT INBOX\r\n")
    return b"b BAD" in t.value(), f"SELECT behind a pending LOGIN: {t.value().strip()!r}"


@check("IMAP: parsing")
def imap_arguments() -> tuple[bool, str]:
    server, t = imap_session(state="unauth")
    quoted = server.arg_astring(b'"al\\"ice" secret')
    signed = [isinstance(server.arg_astring(size), defer.Deferred) for size in (b"{+5}", b"{-1}")]
    server, t = imap_session(state="unauth")
    server.dataReceived(b"b NOOP extra\r\n")
    repr_in_reply = b"b'extra'" in t.value()
    server.state = "select"
    t.clear()
    with Errors() as search_logged:
        server.dataReceived(b"c SEARCH\r\n")
    bare_search = b"Server error" in t.value()
    server.state = "auth"
    with Errors() as name_logged:
        server.dataReceived(b"d SELECT \xc3\xa9\r\n")
    server, t = imap_session()  # a failed SELECT leaves nothing selected
    server.dataReceived(b"e FETCH 1 BODY.PEEK[]<-1.5>\r\n")
    negative_partial = b"e OK" in t.value()
    hit = quoted[0] == b"al\\" and all(signed) and repr_in_reply and bare_search and name_logged and negative_partial
    return hit, (
        f'quoted "al\\"ice" secret read as {quoted}; literal sizes {{+5}}, {{-1}} accepted: {signed}; '
        f"repr in a BAD text: {repr_in_reply}; bare SEARCH is a server error with {len(search_logged)} "
        f"traceback(s): {bare_search}; 8-bit mailbox name: {len(name_logged)} traceback(s); "
        f"partial <-1.5> accepted: {negative_partial}"
    )


@check("IMAP: sequence sets")
def sequence_sets() -> tuple[bool, str]:
    token = b",".join(b"%d" % (2 * i + 1) for i in range(3000))
    start = time.perf_counter()
    imap4.parseIdList(token)
    slow = time.perf_counter() - start
    return slow > 0.1, f"parseIdList of 3,000 single numbers: {slow:.2f} s"


@check("IMAP: SELECT responses")
def select_responses() -> tuple[bool, str]:
    server, t = imap_session(state="auth")
    server.dataReceived(b"a SELECT INBOX\r\n")
    missing = [k for k in (b"UIDNEXT", b"PERMANENTFLAGS", b"UNSEEN") if k not in t.value()]
    return len(missing) == 3, f"missing from SELECT: {missing}"


@check("IMAP: partial FETCH")
def partial_fetch() -> tuple[bool, str]:
    server, t = imap_session()
    server.dataReceived(b"a FETCH 1 BODY.PEEK[]<0.10>\r\n")
    first = t.value().split(b"\r\n", 1)[0]
    size = int(first.rsplit(b"{", 1)[1].rstrip(b"}"))
    return size > 10, f"answer to <0.10>: {first!r} ({size} octets, not 10)"


@check("IMAP: sections rebuilt")
def sections_rebuilt() -> tuple[bool, str]:
    server, t = imap_session()
    server.dataReceived(b"a FETCH 1 BODY.PEEK[HEADER]\r\n")
    received = t.value().count(b"Received")
    return received < 2, f"the message has 2 Received fields; BODY[HEADER] sent {received}"


@check("IMAP: no expunge notification")
def no_expunge_callback() -> tuple[bool, str]:
    names = sorted(imap4.IMailboxListener.names())
    return not any("xpunge" in n for n in names), f"imap4.IMailboxListener: {names}"


@check("IMAP: IDLE")
def idle() -> tuple[bool, str]:
    server, t = imap_session()
    server.dataReceived(b"a IDLE\r\n")
    bare = t.value() == b"+\r\n"
    server.dataReceived(b"anything\r\n")
    ended = b"a OK IDLE terminated" in t.value()
    return bare and ended, f"continuation {t.value().splitlines()[0]!r}; ended by a line that is not DONE: {ended}"


@check("IMAP: SEARCH")
def imap_search() -> tuple[bool, str]:
    server, t = imap_session()
    with Errors():
        server.dataReceived(b"a SEARCH SUBJECT hello\r\n")  # one message: answered at once
    subject = t.value().strip()
    t.clear()
    server.dataReceived(b"b SEARCH DELETED\r\n")
    empty = t.value().strip()
    depth = raises(lambda: imap4.parseNestedParens(b"(" * 1000 + b"ALL" + b")" * 1000))
    return b"BAD" in subject and b"* SEARCH" not in empty and depth == "RecursionError", (
        f"SUBJECT: {subject!r}; no match: {empty!r}; 1,000 nested parentheses: {depth}"
    )


@check("IMAP: error replies")
def imap_error_replies() -> tuple[bool, str]:
    server, t = imap_session()
    server.account = Account(None)
    with Errors():
        server.dataReceived(b"a COPY 1 Missing\r\n")
    copy = t.value().strip()
    server2, t2 = imap_session(mailbox=IMAPMailbox(RAW, store_error=imap4.MailboxException("[CANNOT] no")))
    server2.dataReceived(b"b STORE 1 +FLAGS (\\Seen)\r\n")
    store = t2.value().strip()
    return b"BAD Server error" in copy and b"BAD" in store, f"COPY to a missing mailbox: {copy!r}; STORE error: {store!r}"


@check("IMAP: UIDPLUS")
def uidplus() -> tuple[bool, str]:
    server, t = imap_session()
    server.dataReceived(b"a UID EXPUNGE 1\r\n")
    caps = b" ".join(server.listCapabilities())
    return b"UIDPLUS" not in caps and b"a BAD" in t.value(), f"capabilities {caps!r}; UID EXPUNGE: {t.value().strip()!r}"


@check("IMAP: BODYSTRUCTURE")
def bodystructure() -> tuple[bool, str]:
    raw = b'Content-Type: text/plain; charset=UTF-8; name="Report.TXT"\r\n\r\nbody\r\n'
    structure = imap4.getBodyStructure(IMAPMessage(raw))
    lowered = "report.txt" in structure[2]
    whole = structure[6] == len(raw)
    bare = raises(lambda: imap4.getBodyStructure(IMAPMessage(b"Content-Type: text/plain; flowed\r\n\r\nx\r\n")))
    return lowered and whole and bare is not None, (
        f"parameters {structure[2]}; size {structure[6]} of {len(raw)} octets (body is 6); "
        f"parameter without '=' raises {bare}"
    )


# -- transport and deployment -------------------------------------------------


@check("Reactor thread pool")
def thread_pool() -> tuple[bool, str]:
    pool = reactor.getThreadPool()  # type: ignore[attr-defined]
    return pool.max == 10, f"default reactor thread pool: at most {pool.max} threads"


@check("Every write waits for the poller")
def writes_wait_for_the_poller() -> tuple[bool, str]:
    from twisted.internet import abstract
    from twisted.internet.epollreactor import EPollReactor

    stock = EPollReactor()
    calls: list[str] = []
    poller = stock._poller

    class Spy:
        def register(self, fd, flags):
            calls.append("register")
            return poller.register(fd, flags)

        def modify(self, fd, flags):
            calls.append("modify")
            return poller.modify(fd, flags)

        def unregister(self, fd):
            calls.append("unregister")
            return poller.unregister(fd)

        def poll(self, timeout, maxevents):
            return poller.poll(timeout, maxevents)

    here, there = socket.socketpair()
    here.setblocking(False)

    class End(abstract.FileDescriptor):
        connected = 1

        def fileno(self):
            return here.fileno()

        def writeSomeData(self, data):
            return here.send(data)

    stock._poller = Spy()
    try:
        End(stock).write(b"250 2.0.0 Ok\r\n")
        stock.iterate(0)
        sent = there.recv(100)
    finally:
        here.close()
        there.close()
        stock._poller = poller
        poller.close()
    return calls == ["register", "unregister"], f"one reply of {len(sent)} octets: epoll calls {calls}"


_TAC = """\
from twisted.application import service

class Refuses(service.Service):
    def privilegedStartService(self):
        raise SystemExit("cannot start: port in use")

application = service.Application("check")
{service}().setServiceParent(application)
"""


def _twistd(directory: str, service: str, *args: str) -> list[str]:
    """The twistd command line running a .tac whose one service is *service* (``Refuses``, ``Service``)."""
    tac = os.path.join(directory, "check.tac")
    with open(tac, "w") as f:
        f.write(_TAC.format(service=service if service == "Refuses" else "service." + service))
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *args,
            f"--pidfile={directory}/twistd.pid", f"--logfile={directory}/twistd.log", "-y", tac]


@check("Daemon start failures")
def daemon_start_failures() -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as directory:
        try:
            subprocess.run(_twistd(directory, "Refuses"), capture_output=True, timeout=5, cwd=directory)
            hung = False
        except subprocess.TimeoutExpired:
            hung = True
        time.sleep(0.5)
        pid_left = os.path.exists(f"{directory}/twistd.pid")
        os.remove(f"{directory}/twistd.pid") if pid_left else None
        nodaemon = subprocess.run(_twistd(directory, "Refuses", "-n"), capture_output=True, timeout=30, cwd=directory)
    return hung and pid_left and not nodaemon.stderr, (
        f"daemon: {'still waiting after 5 s' if hung else 'returned'}, pid file left: {pid_left}; "
        f"-n: exit {nodaemon.returncode}, stderr {nodaemon.stderr!r}"
    )


@check("No SIGHUP handler")
def no_sighup_handler() -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen(_twistd(directory, "Service", "-n"), cwd=directory)
        deadline = time.monotonic() + 30
        while not os.path.exists(f"{directory}/twistd.pid") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGHUP)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.terminate()
            code = process.wait()
        pid_left = os.path.exists(f"{directory}/twistd.pid")
    ended = signal.Signals(-code).name if code < 0 else f"exit {code}"
    return code == -signal.SIGHUP and pid_left, f"twistd -n after SIGHUP: {ended}, pid file left: {pid_left}"


@check("Log file rotation")
def log_file_rotation() -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as directory:
        logfile = LogFile.fromFullPath(os.path.join(directory, "twistd.log"))  # as UnixAppLogger makes it
        appends = bool(fcntl.fcntl(logfile._file.fileno(), fcntl.F_GETFL) & os.O_APPEND)
        logfile.close()
    return (logfile.rotateLength == 1_000_000 and logfile.maxRotatedFiles is None and not appends), (
        f"rotateLength={logfile.rotateLength} maxRotatedFiles={logfile.maxRotatedFiles} O_APPEND={appends}"
    )


@check("MultiService stops children at once")
def multiservice_stop_order() -> tuple[bool, str]:
    stopped = []

    class Slow(Service):
        def stopService(self) -> defer.Deferred[None]:
            super().stopService()
            stopped.append(self.name)
            return defer.Deferred()  # never fires here

    parent = MultiService()
    for name in ("first", "last"):
        child = Slow()
        child.setName(name)
        child.setServiceParent(parent)
    parent.startService()
    parent.stopService()
    return stopped == ["last", "first"], f"stopService called on {stopped} while the last child's stop is pending"


@check("inotify: a deleted directory closes every watch")
def inotify_deleted_directory() -> tuple[bool, str]:
    from twisted.internet import inotify
    from twisted.python.filepath import FilePath

    with tempfile.TemporaryDirectory() as directory:
        doomed, kept = (os.path.join(directory, name) for name in ("doomed", "kept"))
        os.mkdir(doomed)
        os.mkdir(kept)
        notifier = inotify.INotify(reactor)
        notifier.watch(FilePath(doomed))
        notifier.watch(FilePath(kept))
        os.rmdir(doomed)
        notifier.doRead()  # the kernel queued the events already
        closed, left = not notifier.connected, len(notifier._watchpoints)
        if not closed:
            notifier.connectionLost(None)
    return closed, f"after rmdir of one of two watched directories: closed={closed}, watches left={left}"


@check("inotify: watch tables")
def inotify_watch_tables() -> tuple[bool, str]:
    from twisted.internet import inotify
    from twisted.python.filepath import FilePath

    with tempfile.TemporaryDirectory() as directory:
        notifier = inotify.INotify(reactor)
        first, second = [lambda *a: None], [lambda *a: None]
        wd = notifier.watch(FilePath(directory), callbacks=first)
        again = notifier.watch(FilePath(directory), callbacks=second)
        shared = again == wd and notifier._watchpoints[wd].callbacks is first
        notifier.connectionLost(None)
    return shared, f"a second watch of one path: same descriptor={again == wd}, its callbacks dropped={shared}"


def _tcp(
    port: int, send: list[bytes], wait: float = 2.0, tls_after: bytes | None = None, greeting: bool = False,
) -> tuple[bytes, bool]:
    """Blocking client (run in a thread): send each item, read until close or *wait*; (data, closed).

    *greeting*: read the server's first line before sending anything.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    data, closed = b"", False
    while greeting and b"\r\n" not in data:
        data += sock.recv(4096)
    for item in send:
        sock.sendall(item)
        if tls_after is not None and item.endswith(b"STARTTLS\r\n"):
            while tls_after not in data:
                data += sock.recv(4096)
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = context.wrap_socket(sock)
    try:
        while chunk := sock.recv(4096):
            data += chunk
        closed = True
    except (socket.timeout, ssl.SSLError):
        pass
    sock.close()
    return data, closed


async def tcp_checks() -> list[tuple[str, tuple[bool, str]]]:
    """The checks that need real sockets, on one reactor run."""
    results = []

    # An exception out of dataReceived: the reactor closes the connection, no reply.
    factory = protocol.ServerFactory.forProtocol(lambda: smtp.ESMTP())
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    with Errors() as logged:
        data, closed = await threads.deferToThread(_tcp, port.getHost().port, [b"\xff\xfe\r\n"], greeting=True)
    await port.stopListening()
    after_greeting = data.split(b"\r\n", 1)[1]
    results.append(("Exceptions close the connection", (
        closed and after_greeting == b"",
        f"after the greeting: {after_greeting!r}, closed: {closed}, {len(logged)} logged",
    )))

    # Nagle's algorithm and delayed ACKs: Twisted's POP3 RETR of a small message.
    timings = []
    for nodelay in (False, True):
        class Drop(pop3.POP3):
            def connectionMade(self) -> None:
                if nodelay:
                    self.transport.setTcpNoDelay(True)
                super().connectionMade()
                self.mbox = Maildrop([b"Subject: x\n\nhello\n"])

        port = reactor.listenTCP(0, protocol.ServerFactory.forProtocol(Drop), interface="127.0.0.1")  # type: ignore[attr-defined]
        timings.append(await threads.deferToThread(_retr_rate, port.getHost().port, 20))
        await port.stopListening()
    results.append(("Nagle and delayed ACKs", (
        timings[0] > 5 * timings[1],
        f"20 RETR: {timings[0] * 1000:.0f} ms with Nagle, {timings[1] * 1000:.0f} ms with TCP_NODELAY",
    )))

    # Listen backlog: what the kernel was given for a default endpoint.
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(protocol.ServerFactory())
    ss = subprocess.run(["ss", "-ltnH", f"sport = :{port.getHost().port}"], capture_output=True, text=True)
    await port.stopListening()
    backlog = ss.stdout.split()[2] if ss.stdout.split() else "?"
    results.append(("Listen backlog", (backlog == "50", f"ss Send-Q (the backlog) of a default tcp: endpoint: {backlog}")))

    # haproxy: the peer as connectionMade sees it, and TLS after STARTTLS.
    results.append(("PROXY protocol: peer in connectionMade", await _haproxy_peer()))
    results.append(("PROXY protocol: STARTTLS is invisible", await _haproxy_starttls()))

    # A port in use: StreamServerEndpointService logs and goes on.
    busy = reactor.listenTCP(0, protocol.ServerFactory(), interface="127.0.0.1")  # type: ignore[attr-defined]
    service = StreamServerEndpointService(
        TCP4ServerEndpoint(reactor, busy.getHost().port, interface="127.0.0.1"), protocol.ServerFactory()
    )
    with Errors() as logged:
        error = raises(service.privilegedStartService)
    await busy.stopListening()
    results.append(("Bind errors at start-up", (
        error is None and bool(logged),
        f"privilegedStartService on a port in use raised {error}; {len(logged)} error(s) logged",
    )))
    return results


def _retr_rate(port: int, count: int) -> float:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.recv(4096)
    start = time.perf_counter()
    for _ in range(count):
        sock.sendall(b"RETR 1\r\n")
        data = b""
        while not data.endswith(b"\r\n.\r\n"):
            data += sock.recv(4096)
    elapsed = time.perf_counter() - start
    sock.close()
    return elapsed


class _Recorder(protocol.Protocol):
    """Records what its transport says at connectionMade and at each data arrival."""

    def __init__(self, ctx: Any = None) -> None:
        self.ctx = ctx
        self.notes: list[str] = []

    def connectionMade(self) -> None:
        self.notes.append(f"connectionMade peer={self.transport.getPeer().host}")

    def dataReceived(self, data: bytes) -> None:
        t = self.transport
        self.notes.append(
            f"data peer={t.getPeer().host} ISSLTransport={ISSLTransport.providedBy(t)} TLS={getattr(t, 'TLS', None)}"
        )
        if data.endswith(b"STARTTLS\r\n") and self.ctx is not None:
            t.write(b"go\r\n")
            t.startTLS(self.ctx)
        else:
            t.write(" | ".join(self.notes).encode() + b"\r\n")
            t.loseConnection()


async def _listen_haproxy(ctx: Any = None) -> tuple[Any, list[_Recorder]]:
    made: list[_Recorder] = []

    def build() -> _Recorder:
        made.append(_Recorder(ctx))
        return made[-1]

    endpoint = serverFromString(reactor, "haproxy:tcp:0:interface=127.0.0.1")
    return await endpoint.listen(protocol.ServerFactory.forProtocol(build)), made


async def _haproxy_peer() -> tuple[bool, str]:
    port, made = await _listen_haproxy()
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 25\r\n"
    await threads.deferToThread(_tcp, port.getHost().port, [header, b"hello\r\n"])
    await port.stopListening()
    notes = made[0].notes
    return notes[0] == "connectionMade peer=127.0.0.1" and "203.0.113.7" in notes[1], "; ".join(notes)


async def _haproxy_starttls() -> tuple[bool, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    port, made = await _listen_haproxy(PrivateCertificate.loadPEM(pem).options())
    header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 25\r\n"
    await threads.deferToThread(
        _tcp, port.getHost().port, [header + b"STARTTLS\r\n", b"after\r\n"], 2.0, b"go\r\n"
    )
    await port.stopListening()
    after = made[0].notes[-1]
    return "ISSLTransport=False TLS=True" in after, f"after STARTTLS: {after}"


def report(heading: str, result: tuple[bool, str]) -> None:
    present, detail = result
    print(f"{'present' if present else 'GONE   '}  {heading}: {detail}")


def main() -> None:
    """Run every check and print one line each; ends through ``task.react``."""
    # Twisted's logged errors are what some checks count; they are not shown.
    globalLogBeginner.beginLoggingTo([lambda event: None], redirectStandardIO=False)
    print(f"Twisted {twisted.__version__}, Python {sys.version.split()[0]}")
    for heading, fn in CHECKS:
        report(heading, fn())

    async def run(_: Any) -> None:
        try:
            results = await tcp_checks()
        except Exception:
            traceback.print_exc()
            raise
        for heading, result in results:
            report(heading, result)

    task.react(lambda r: defer.Deferred.fromCoroutine(run(r)))


if __name__ == "__main__":
    main()

"""The ESMTP server for inbound mail (port 25) and submission (587, 465).

Built on :mod:`mailsrv.net` (framing, one command at a time, flow control)
rather than ``twisted.mail.smtp.ESMTP``, whose input handling is where its
defects are: pipelined commands answered out of order, an over-long line in
DATA running the rest of the body as commands, unbounded buffering, STARTTLS
command injection, AUTH offered in clear text (docs/twisted-notes.rst,
"SMTP").  This module holds the session commands and the dispatch; the mail
transaction is :mod:`.transaction`, AUTH is :mod:`.auth`, replies are
:mod:`.replies`.

Every 2xx/4xx/5xx reply carries an RFC 3463 enhanced status code (RFC
2034), except the greeting and the HELO/EHLO reply, which RFC 2034 3 exempts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Awaitable

from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsrv.listeners import Kind
from mailsrv.net.server import ProtocolFactory, ServerProtocol
from mailsrv.policy import rates
from mailsrv.smtp import auth, bdat, replies, transaction
from mailsrv.smtp.connection import SessionCounts, Transaction
from mailsrv.smtp.limits import limits_keyword
from mailsrv.smtp.replies import Reply

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

log = Logger()

_HELO_NAME = re.compile(rb"[\x21-\x7e]{1,255}\Z")


class SMTPServer(ServerProtocol):
    """One SMTP connection of listener kind ``smtp``, ``submission`` or ``submissions``."""

    protocol_name = "smtp"

    def __init__(self, ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> None:
        limits = ctx.config.limits
        super().__init__(ctx, kind, limits.max_line_length, lf_tolerant=False, idle_timeout=limits.smtp_timeout,
                         clock=clock)
        self.host = ctx.config.hostname
        #: The HELO/EHLO name, ``None`` before one was given (or after STARTTLS).
        self.helo: str | None = None
        self.esmtp = False
        self.transaction: Transaction | None = None
        self.counts = SessionCounts()
        # Header lines the connect and HELO checks asked to add to every message of the session.
        self._connect_headers: tuple[bytes, ...] = ()
        self._helo_headers: tuple[bytes, ...] = ()
        self._errors = 0
        #: A connect check refused the session (554 instead of the greeting): only QUIT is taken.
        self.refused = False

    # -- output ------------------------------------------------------------

    @property
    def headers(self) -> tuple[bytes, ...]:
        """Header lines the connect and HELO checks asked to add to every message of the session."""
        return self._connect_headers + self._helo_headers

    def reject(self, stage: str, subject: str, reply: Reply) -> None:
        """Record a policy refusal at *stage* in the audit log (the reply is sent by the caller)."""
        self.ctx.audit.rejection(self.session, stage, subject, reply.wire().decode("ascii").strip())

    def answer(self, reply: Reply) -> None:
        """Send *reply*; a 421 closes (RFC 5321 3.8), too many command errors end the session (4.3.2: 421)."""
        self.write(reply.wire())
        if reply.code == 421:
            self.close()
        elif reply.code in replies.COMMAND_ERROR_CODES:
            self._errors += 1
            if self._errors >= self.ctx.config.limits.max_command_errors:
                self.write(replies.TOO_MANY_ERRORS(host=self.host).wire())
                self.close()

    # -- connection hooks --------------------------------------------------

    async def welcome(self) -> None:
        """RFC 5321 4.2: ``220 domain``, unless a connect check refuses (3.1: 554 instead).

        Port 25 first holds the greeting ``[limits] pregreet_wait`` seconds:
        a client that talks meanwhile did not wait for it, as spam software
        does and no real MTA, and is sent away (its input is never run).
        """
        self.counts.limited = not rates.exempt(self.ctx.config.limits, self.session.peer_ip)
        wait = self.ctx.config.limits.pregreet_wait
        if wait and not self.kind.submission:
            await task.deferLater(self.clock, wait, lambda: None)
            if self.closing:
                return
            if len(self.input):
                self.reject("connect", self.session.peer_ip, replies.PREGREET(host=self.host))
                self.write(replies.PREGREET(host=self.host).wire())
                self.close()
                return
        verdict = await self.ctx.policy.run("connect", self.session)
        if not verdict.accepted:
            assert verdict.reply is not None
            self.reject("connect", self.session.peer_ip, verdict.reply)
            self.write(verdict.reply.wire())
            if verdict.reply.code == 421:
                self.close()
            else:  # RFC 5321 3.1: after a 554 greeting, wait for QUIT
                self.refused = True
            return
        self._connect_headers = verdict.headers
        self.write(replies.GREETING(host=self.host).wire())

    def refuse(self, reason: str) -> None:
        """Too many connections: 421 instead of the greeting (RFC 5321 3.1)."""
        self.write(replies.TOO_MANY_CONNECTIONS(host=self.host).wire())

    def timed_out(self) -> None:
        """RFC 5321 4.5.3.2: the client went quiet; say so before closing."""
        self.write(replies.TIMEOUT(host=self.host).wire())
        self.close()

    def goodbye(self) -> None:
        """RFC 5321 3.8: the server is shutting down; an open transaction is dropped, the client retries."""
        self.write(replies.SHUTTING_DOWN(host=self.host).wire())

    def line_too_long(self) -> None:
        """A command line over ``limits.max_line_length`` (RFC 5321 4.5.3.1.6)."""
        self.answer(replies.LINE_TOO_LONG)

    def command_failed(self, failure: Failure) -> None:
        """Our bug: log it, 421 and hang up (RFC 5321 4.2.1: the client retries, nothing is lost)."""
        log.failure("SMTP command failed", failure, client_ip=self.session.peer_ip)
        self.write(replies.INTERNAL_ERROR(host=self.host).wire())
        self.close()

    def ended(self, reason: Failure) -> None:
        """Log an open transaction as aborted and drop its body; the base releases the login."""
        self.abort_transaction()
        super().ended(reason)

    # -- dispatch ----------------------------------------------------------

    async def command(self, line: bytes) -> None:
        """Run one command line and send its reply."""
        verb, _, rest = line.partition(b" ")
        if not verb:
            self.answer(replies.BAD_SYNTAX)
            return
        if b"\n" in line or b"\r" in line:
            self.answer(replies.BARE_LINE_END)
            return
        # Only ASCII letters name a command; NUL or 8-bit octets are "unknown".
        name = verb.upper() if verb.isalpha() and len(verb) <= 16 else b""
        if self.refused and name != b"QUIT":
            self.answer(replies.REFUSED_SESSION)  # RFC 5321 3.1
            return
        if name not in _COMMANDS:
            self.answer(replies.UNKNOWN_COMMAND)  # RFC 5321 4.2.4
            return
        reply = getattr(self, "do_" + name.decode())(rest)
        if reply is not None and not isinstance(reply, Reply):
            reply = await reply
        if reply is not None:
            self.answer(reply)

    # -- the session ---------------------------------------------------------

    def extensions(self) -> list[bytes]:
        """What EHLO advertises: only what this server really does."""
        limits = self.ctx.config.limits
        ext = [
            b"PIPELINING",  # RFC 2920
            b"SIZE %d" % limits.max_message_size,  # RFC 1870
            b"8BITMIME",  # RFC 6152
            b"ENHANCEDSTATUSCODES",  # RFC 2034
            b"DSN",  # RFC 3461
            b"CHUNKING",  # RFC 3030 2
            b"BINARYMIME",  # RFC 3030 3
        ]
        ext += [b"SMTPUTF8", limits_keyword(limits, self.counts)]  # RFC 6531, RFC 9422
        if self.session.tls_active:
            ext.append(b"REQUIRETLS")  # RFC 8689 3: offered over TLS only
        if self.can_start_tls():
            ext.append(b"STARTTLS")  # RFC 3207
        if self.auth_offered():
            ext.append(b"AUTH " + b" ".join(auth.MECHANISMS))  # RFC 4954
        return ext

    async def hello(self, rest: bytes, esmtp: bool) -> Reply:
        """HELO and EHLO (RFC 5321 4.1.1.1); EHLO lists :meth:`extensions`."""
        name = rest.strip()
        if not _HELO_NAME.match(name):
            return replies.SYNTAX(usage="EHLO hostname")
        self.abort_transaction()  # RFC 5321 4.1.4: EHLO/HELO implies RSET
        text = name.decode("ascii")
        verdict = await self.ctx.policy.run("helo", self.session, text)
        if not verdict.accepted:
            assert verdict.reply is not None
            self.reject("helo", text, verdict.reply)
            return verdict.reply
        self.helo, self.esmtp = text, esmtp
        self._helo_headers = verdict.headers
        lines = [self.host.encode("ascii", "replace")] + (self.extensions() if esmtp else [])
        return replies.HELLO(lines="\n".join(line.decode("ascii") for line in lines))

    def do_HELO(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 5321 4.1.1.1."""
        return self.hello(rest, esmtp=False)

    def do_EHLO(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 5321 4.1.1.1."""
        return self.hello(rest, esmtp=True)

    def do_NOOP(self, rest: bytes) -> Reply:
        """RFC 5321 4.1.1.9: arguments are ignored."""
        return replies.OK

    def do_RSET(self, rest: bytes) -> Reply:
        """RFC 5321 4.1.1.5."""
        if rest.strip():
            return replies.SYNTAX(usage="RSET")
        self.abort_transaction()
        return replies.OK

    def do_VRFY(self, rest: bytes) -> Reply:
        """RFC 5321 3.5.3: 252, neither confirming nor denying (no address harvesting)."""
        if not rest.strip():
            return replies.SYNTAX(usage="VRFY address")
        return replies.VRFY_CANNOT

    def do_HELP(self, rest: bytes) -> Reply:
        """RFC 5321 4.1.1.8: the commands this listener takes now.

        STARTTLS and AUTH are listed exactly when EHLO would advertise them,
        so HELP never points a client at a command that only gets 502/503/538.
        """
        commands = ["EHLO", "HELO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "VRFY", "HELP", "QUIT"]
        if self.can_start_tls():
            commands.append("STARTTLS")
        if self.auth_offered():
            commands.append("AUTH")
        return replies.HELP(commands=" ".join(commands))

    def do_QUIT(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.10."""
        self.abort_transaction()
        self.answer(replies.BYE)
        self.close()

    def do_STARTTLS(self, rest: bytes) -> Reply | None:
        """RFC 3207: start TLS and forget everything from before it."""
        if rest.strip():
            return replies.SYNTAX(usage="STARTTLS")
        if self.session.tls_active:
            return replies.TLS_ACTIVE
        if not self.kind.offers_starttls:
            return replies.TLS_UNAVAILABLE
        self.answer(replies.READY_FOR_TLS)
        self.start_tls()
        # RFC 3207 4.2: forget everything learnt from the client, including
        # a (loopback, plaintext) login.
        self.abort_transaction()
        self.helo, self.esmtp, self._helo_headers = None, False, ()
        self.release_login()
        return None

    def do_AUTH(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 4954 (see :mod:`.auth`)."""
        return auth.authenticate(self, rest)

    def auth_offered(self) -> bool:
        """AUTH is offered here now (see :func:`.auth.offered`)."""
        return auth.offered(self)

    # -- the mail transaction ------------------------------------------------

    def do_MAIL(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 5321 4.1.1.2 (see :mod:`.transaction`)."""
        return transaction.mail(self, rest)

    def do_RCPT(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 5321 4.1.1.3."""
        return transaction.rcpt(self, rest)

    def do_DATA(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 5321 4.1.1.4."""
        return transaction.data(self, rest)

    def do_BDAT(self, rest: bytes) -> Awaitable[Reply]:
        """RFC 3030 2 (see :mod:`.bdat`)."""
        return bdat.bdat(self, rest)

    def abort_transaction(self) -> None:
        """End an open transaction without a message (RSET, EHLO, QUIT, STARTTLS, disconnect)."""
        current, self.transaction = self.transaction, None
        if current is not None:
            current.abort()
            self.log_transaction(current, "aborted")

    def log_transaction(self, current: Transaction, result: int | str) -> None:
        """The one audit line per SMTP transaction."""
        self.ctx.audit.transaction(
            self.session, helo=self.helo, sender=current.envelope.sender,
            recipients=[str(r) for r in current.recipients], rejected=current.rejected, size=current.size,
            result=result, queue_id=current.envelope.queue_id if result == 250 else None,
        )


#: The commands: every ``do_*`` method.
_COMMANDS = frozenset(name[3:].encode() for name in vars(SMTPServer) if name.startswith("do_"))


def make_factory(ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> ProtocolFactory:
    """The factory for a smtp listener *kind* (implicit-TLS kinds are wrapped by the caller)."""
    return ProtocolFactory(SMTPServer, ctx, kind, clock)

"""The ESMTP protocol for inbound mail (port 25) and submission (587, 465).

:class:`SMTPServer` subclasses ``twisted.mail.smtp.ESMTP`` for its command
dispatch, SASL challengers and delivery plumbing, and replaces what
TWISTED-NOTES section 1 lists as broken or missing:

* input is framed by :class:`~mailsrv.smtp.lines.LineFramer` (bounded, an
  over-long line never leaves DATA mode) and commands run strictly one at a
  time: while a command waits for a Deferred (validation, AUTH, the store)
  no further line is read, so pipelined replies come in order (#8126);
  all of that, and the reading of the DATA body, is the base class
  :class:`~mailsrv.smtp.intake.Intake`, so this module holds what the
  commands mean: policy, replies, the transaction;
* STARTTLS throws away what was pipelined behind it and forgets the session
  (RFC 3207); AUTH is offered only on submission and only over TLS;
* SIZE, 8BITMIME, PIPELINING, ENHANCEDSTATUSCODES, NOOP, VRFY, HELP, MAIL
  parameters, recipient and error limits;
* DATA feeds each distinct message once and answers 250 only after the
  store's Deferred fired (see :mod:`mailsrv.smtp.delivery`).

Every 2xx/4xx/5xx reply carries an RFC 3463 enhanced status code (RFC 2034),
except the greeting and the HELO/EHLO reply, which RFC 2034 3 exempts.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail.imap4 import IllegalClientResponse
from twisted.mail.interfaces import IMessageSMTP
from twisted.mail.smtp import AUTH, COMMAND, DATA
from twisted.python.failure import Failure

from mailsrv import tls
from mailsrv.accounts.cred import PlainCredentials
from mailsrv.address import AddressSyntaxError, Mailbox, parse_path
from mailsrv.listeners import Kind
from mailsrv.smtp.auth import MECHANISMS, ISubmitter, log_login
from mailsrv.smtp.delivery import LocalDelivery
from mailsrv.smtp.intake import Intake
from mailsrv.smtp.params import parse_mail_params, parse_rcpt_params
from mailsrv.smtp.received import tls_details
from mailsrv.smtp.replies import Rejection
from mailsrv.smtp.session import Session

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

log = Logger()

KINDS = ("smtp", "submission", "submissions")

_MAIL = re.compile(rb"FROM: ?<(?P<path>[^<>]*)>(?: +(?P<params>.*))?\Z", re.I | re.S)
_RCPT = re.compile(rb"TO: ?<(?P<path>[^<>]*)>(?: +(?P<params>.*))?\Z", re.I | re.S)
_HELO_NAME = re.compile(rb"[\x21-\x7e]{1,255}\Z")
#: Replies that mean "the client got the protocol wrong"; they count
#: towards ``limits.max_command_errors``.
_COMMAND_ERRORS = frozenset({500, 501, 502, 503, 504, 555})


class SMTPServer(Intake):
    """One SMTP connection of listener kind ``smtp``, ``submission`` or ``submissions``."""

    def __init__(self, ctx: "ServerContext", kind: str) -> None:
        submission = kind != "smtp"
        super().__init__(
            ctx.config.limits.max_line_length,
            chal=dict(MECHANISMS) if submission else {},
            contextFactory=None if Kind.named(kind).implicit_tls else ctx.tls,
        )
        self.ctx = ctx
        self.limits = ctx.config.limits
        self.host = ctx.config.hostname
        self.timeout = self.limits.smtp_timeout
        self.portal = ctx.portal
        self.session = Session(kind)
        self.delivery = LocalDelivery(ctx, self.session)
        self._errors = 0
        self._logout: Callable[[], None] | None = None
        self._mechanism = ""
        # The mail transaction (RFC 5321 3.3).
        self._transaction_open = False
        self._sender: Mailbox | None = None
        self._recipients: list[tuple[Mailbox, Callable[[], IMessageSMTP]]] = []
        self._rejected: list[str] = []
        self._messages: list[IMessageSMTP] = []
        self._data_size = 0
        self._data_error: Rejection | None = None

    # -- connection ------------------------------------------------------

    def connectionMade(self) -> None:
        """Greet; disable Nagle so small replies are not held for 40 ms (TWISTED-NOTES 10)."""
        self.transport.setTcpNoDelay(True)
        super().connectionMade()

    def greeting(self) -> bytes:
        """RFC 5321 4.2: ``220 domain text``; "ESMTP" tells old clients to try EHLO."""
        return self.host + b" ESMTP mailsrv"

    def timeoutConnection(self) -> None:
        """RFC 5321 4.5.3.2: the client went quiet; say so before closing."""
        self.reply(421, f"4.4.2 {self.ctx.config.hostname} Error: timeout exceeded")
        self.transport.loseConnection()

    def connectionLost(self, reason: Failure | None = None) -> None:
        """Drop any unfinished message, log an open transaction, release the login."""
        for message in self._messages:
            message.connectionLost()
        self._messages = []
        self._abort_transaction()
        self._release_login()
        self.setTimeout(None)

    # -- command dispatch -------------------------------------------------

    def lookupMethod(self, command: bytes) -> Callable[[bytes], None] | None:
        """Only ASCII letters name a command; anything else (NUL, UTF-8) is unknown.

        Twisted decodes the verb with ``nativeString``, which raises on
        8-bit input and drops the connection with a traceback.
        """
        if not (command.isalpha() and len(command) <= 16):
            return None
        return super().lookupMethod(command)

    # -- output -----------------------------------------------------------

    def sendCode(self, code: int, message: bytes = b"") -> None:
        """Write a (possibly multi-line, ``\\n``-separated) reply in one write."""
        lines = message.split(b"\n")
        out = [b"%03d-%s\r\n" % (code, line) for line in lines[:-1]]
        out.append(b"%03d %s\r\n" % (code, lines[-1]))
        self.transport.write(b"".join(out))

    def reply(self, code: int, text: str) -> None:
        """Send one reply; too many command errors end the session (RFC 5321 4.3.2: 421)."""
        self.sendCode(code, text.encode("ascii", "replace"))
        if code in _COMMAND_ERRORS:
            self._errors += 1
            if self._errors >= self.limits.max_command_errors:
                self.sendCode(421, b"4.7.0 " + self.host + b" Error: too many errors")
                self.transport.loseConnection()

    def sendSyntaxError(self) -> None:
        """An empty command line."""
        self.reply(500, "5.5.2 Error: bad syntax")

    def do_UNKNOWN(self, rest: bytes) -> None:
        """RFC 5321 4.2.4: 500 for an unrecognized command."""
        self.reply(500, "5.5.2 Error: command not recognized")

    # -- session commands -------------------------------------------------

    def _peer_ip(self) -> str:
        # Read each time: behind haproxy: the real peer is known only after
        # the PROXY header, which comes after connectionMade (TWISTED-NOTES 4).
        return str(getattr(self.transport.getPeer(), "host", ""))

    def extensions(self) -> dict[bytes, list[bytes] | None]:
        """What EHLO advertises: only what this server really does."""
        ext: dict[bytes, list[bytes] | None] = {
            b"PIPELINING": None,  # RFC 2920
            b"SIZE": [b"%d" % self.limits.max_message_size],  # RFC 1870
            b"8BITMIME": None,  # RFC 6152
            b"ENHANCEDSTATUSCODES": None,  # RFC 2034
        }
        if self._can_start_tls():
            ext[b"STARTTLS"] = None  # RFC 3207
        if self._auth_offered():
            ext[b"AUTH"] = list(self.challengers)  # RFC 4954
        return ext

    def _tls_active(self) -> bool:
        # After STARTTLS through a wrapping transport (haproxy:), the wrapper
        # never starts providing ISSLTransport; our own flag still knows.
        return self.startedTLS or tls.uses_tls(self.transport)

    def _can_start_tls(self) -> bool:
        return self.canStartTLS and not self._tls_active()

    def _secure(self) -> bool:
        # RFC 4954 4 / RFC 8314 4.1: no password over a connection without TLS
        # (loopback excepted when configured).
        return self._tls_active() or tls.is_secure(self.transport, self.ctx.config)

    def _auth_offered(self) -> bool:
        # Port 25 takes no logins at all.
        return self.session.is_submission and self._secure()

    def do_HELO(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.1."""
        self._hello(rest, esmtp=False)

    def do_EHLO(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.1; the reply lists :meth:`extensions`."""
        self._hello(rest, esmtp=True)

    def _hello(self, rest: bytes, esmtp: bool) -> None:
        name = rest.strip()
        if not _HELO_NAME.match(name):
            self.reply(501, "5.5.4 Syntax: EHLO hostname")
            return
        self._abort_transaction()  # RFC 5321 4.1.4: EHLO/HELO implies RSET
        ip = self._peer_ip()
        session = self.session
        session.helo = name.decode("ascii")
        session.esmtp = esmtp
        session.client_ip = ip
        session.tls = self._tls_active()
        session.tls_details = tls_details(self.transport) if session.tls else None
        self._helo = (name, ip.encode("ascii"))
        lines = [self.host]
        if esmtp:
            for keyword, args in self.extensions().items():
                lines.append(b" ".join([keyword, *(args or [])]))
        self.sendCode(250, b"\n".join(lines))

    def do_NOOP(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.9: arguments are ignored."""
        self.reply(250, "2.0.0 Ok")

    def do_RSET(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.5."""
        if rest.strip():
            self.reply(501, "5.5.4 Syntax: RSET")
            return
        self._abort_transaction()
        self.reply(250, "2.0.0 Ok")

    def do_VRFY(self, rest: bytes) -> None:
        """RFC 5321 3.5.3: 252, we neither confirm nor deny (no address harvesting)."""
        if not rest.strip():
            self.reply(501, "5.5.4 Syntax: VRFY address")
            return
        self.reply(252, "2.5.0 Cannot VRFY user, but will accept message and attempt delivery")

    def do_HELP(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.8: the commands this listener takes in this state.

        STARTTLS and AUTH are listed exactly when EHLO would advertise them,
        so HELP never points a client at a command that only gets 502/503/538.
        """
        commands = [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"VRFY", b"HELP", b"QUIT"]
        if self._can_start_tls():
            commands.append(b"STARTTLS")
        if self._auth_offered():
            commands.append(b"AUTH")
        self.sendCode(214, b"2.0.0 Commands: " + b" ".join(commands) + b"\n2.0.0 See RFC 5321")

    def do_QUIT(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.10."""
        self._abort_transaction()
        self.reply(221, "2.0.0 Bye")
        self.transport.loseConnection()

    def ext_STARTTLS(self, rest: bytes) -> None:
        """RFC 3207: start TLS, discard what came before it."""
        if rest.strip():
            self.reply(501, "5.5.4 Syntax: STARTTLS")
        elif self._tls_active():
            self.reply(503, "5.5.1 Error: TLS already active")
        elif not self.canStartTLS:
            self.reply(454, "4.7.0 TLS not available")
        else:
            self.reply(220, "2.0.0 Ready to start TLS")
            # RFC 3207 6: anything the client pipelined after STARTTLS came
            # in plaintext and must not be executed inside TLS.
            self._pending.clear()
            self._framer.clear()
            self.transport.startTLS(self.ctx.tls)
            self.startedTLS = True
            # RFC 3207 4.2: forget everything learnt from the client,
            # including a (loopback, plaintext) login.
            self._abort_transaction()
            self.session.forget_client()
            self._helo = None
            self.authenticated = False
            self._release_login()

    # -- AUTH (RFC 4954) -------------------------------------------------

    def ext_AUTH(self, rest: bytes) -> None:
        """Start a SASL exchange; only on submission, only when the connection is secure."""
        if not self.session.is_submission:
            self.reply(502, "5.5.1 Error: authentication not enabled")
            return
        if not self._secure():
            self.reply(538, "5.7.11 Encryption required for requested authentication mechanism")  # RFC 4954 6
            return
        if self.session.user is not None:
            self.reply(503, "5.5.1 Error: already authenticated")  # RFC 4954 4
            return
        parts = rest.split(None, 1)
        factory = self.challengers.get(parts[0].upper()) if parts else None
        if factory is None:
            self.reply(504, "5.5.4 Unrecognized authentication type")
            return
        self.challenger = factory()
        self._mechanism = parts[0].upper().decode("ascii")
        self.mode = AUTH
        challenge = self.challenger.getChallenge()
        if len(parts) == 2:
            self.state_AUTH(parts[1])  # initial response: the first challenge is implied
        else:
            self.sendCode(334, base64.b64encode(challenge))

    def state_AUTH(self, line: bytes) -> None:
        """One client response of the SASL exchange."""
        if line == b"*":
            self._end_auth()
            self.reply(501, "5.7.0 Authentication aborted")  # RFC 4954 4
            return
        try:
            # RFC 4954 4: "=" is an empty initial response.
            data = b"" if line == b"=" else base64.b64decode(line, validate=True)
            self.challenger.setResponse(data)
        except (binascii.Error, IllegalClientResponse):
            self._end_auth()
            self.reply(501, "5.5.2 Error: malformed authentication response")
            return
        if self.challenger.moreChallenges():
            self.sendCode(334, base64.b64encode(self.challenger.getChallenge()))
            return
        credentials = self.challenger
        mechanism = self._mechanism
        self._end_auth()
        if isinstance(credentials, PlainCredentials) and not credentials.acts_as_itself():
            # RFC 4616 2: an authzid the user may not act as MUST fail the login.
            self._auth_failed(credentials.username, mechanism, Failure(UnauthorizedLogin("authzid is not authcid")))
            return
        d = self.portal.login(credentials, None, ISubmitter)
        self._await(
            d,
            partial(self._authenticated, credentials.username, mechanism),
            partial(self._auth_failed, credentials.username, mechanism),
        )

    def _release_login(self) -> None:
        if self._logout is not None:
            self._logout()
            self._logout = None

    def _end_auth(self) -> None:
        self.mode = COMMAND
        self.challenger = None

    def _authenticated(self, user: bytes, mechanism: str, result: tuple[Any, Any, Callable[[], None]]) -> None:
        _, avatar, logout = result
        self.session.user = avatar.address
        self.authenticated = True
        self._logout = logout
        log_login(user, mechanism, True, self._peer_ip(), self.session.kind)
        self.reply(235, "2.7.0 Authentication successful")

    def _auth_failed(self, user: bytes, mechanism: str, failure: Failure) -> None:
        if failure.check(UnauthorizedLogin):
            log_login(user, mechanism, False, self._peer_ip(), self.session.kind)
            self.reply(535, "5.7.8 Error: authentication failed")  # RFC 4954 6
        else:
            log.failure("SMTP login error", failure, user=user.decode("utf-8", "replace"), client_ip=self._peer_ip())
            self.reply(454, "4.7.0 Temporary authentication failure")  # RFC 4954 6

    # -- the mail transaction (RFC 5321 3.3) ------------------------------

    def do_MAIL(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.2, with RFC 1870/6152 parameters."""
        if self.session.helo is None:
            self.reply(503, "5.5.1 Error: send HELO/EHLO first")  # RFC 5321 4.1.4
            return
        if self._transaction_open:
            self.reply(503, "5.5.1 Error: nested MAIL command")
            return
        match = _MAIL.match(rest)
        if match is None:
            self.reply(501, "5.5.4 Syntax: MAIL FROM:<address>")
            return
        path = match.group("path")
        try:
            sender = parse_path(path) if path else None  # "<>" is the null reverse-path
            parse_mail_params(
                match.group("params") or b"",
                max_size=self.limits.max_message_size,
                auth_offered=self._auth_offered(),
            )
        except AddressSyntaxError as e:
            self.reply(501, f"5.1.7 Bad sender address syntax: {e}")
            return
        except Rejection as e:
            self.reply(e.code, e.text)
            return
        self._await(defer.maybeDeferred(self.validateFrom, self._helo, sender), partial(self._mail_accepted, sender))

    def _mail_accepted(self, sender: Mailbox | None, _: object) -> None:
        self._transaction_open = True
        self._sender = sender
        self.reply(250, "2.1.0 Ok")

    def do_RCPT(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.3; the policy is :meth:`LocalDelivery.validateTo`."""
        if not self._transaction_open:
            self.reply(503, "5.5.1 Error: need MAIL command")
            return
        match = _RCPT.match(rest)
        if match is None:
            self.reply(501, "5.5.4 Syntax: RCPT TO:<address>")
            return
        if len(self._recipients) >= self.limits.max_recipients:
            self.reply(452, "4.5.3 Error: too many recipients")  # RFC 5321 4.5.3.1.10
            return
        path = match.group("path")
        try:
            parse_rcpt_params(match.group("params") or b"")
            recipient = self._postmaster() if path.lower() == b"postmaster" else parse_path(path)
        except AddressSyntaxError as e:
            self.reply(501, f"5.1.3 Bad recipient address syntax: {e}")
            return
        except Rejection as e:
            self.reply(e.code, e.text)
            return
        self._await(
            defer.maybeDeferred(self.validateTo, recipient),
            partial(self._rcpt_accepted, recipient),
            partial(self._rcpt_refused, recipient),
        )

    def _postmaster(self) -> Mailbox:
        # RFC 5321 4.5.1: "<Postmaster>" without a domain must be accepted.
        return Mailbox("postmaster", self.ctx.config.domains[0])

    def _rcpt_accepted(self, recipient: Mailbox, message_factory: Callable[[], IMessageSMTP]) -> None:
        self._recipients.append((recipient, message_factory))
        self.reply(250, "2.1.5 Ok")

    def _rcpt_refused(self, recipient: Mailbox, failure: Failure) -> None:
        failure.trap(Rejection)
        self._rejected.append(str(recipient))
        self.reply(failure.value.code, failure.value.text)

    def do_DATA(self, rest: bytes) -> None:
        """RFC 5321 4.1.1.4: feed each distinct message once, trace headers first."""
        if rest.strip():
            self.reply(501, "5.5.4 Syntax: DATA")
            return
        if not self._transaction_open:
            self.reply(503, "5.5.1 Error: need MAIL command")
            return
        if not self._recipients:
            self.reply(554, "5.5.1 Error: no valid recipients")  # RFC 5321 3.3
            return
        messages = list(dict.fromkeys(factory() for _, factory in self._recipients))
        trace = self.receivedHeader(self._helo, self._sender, [r for r, _ in self._recipients])
        for message in messages:
            message.lineReceived(trace)
        self._messages = messages
        self._data_size = 0
        self._data_error = None
        self.mode = DATA
        self.sendCode(354, b"End data with <CR><LF>.<CR><LF>")

    def _end_data(self) -> None:
        self.mode = COMMAND
        summary = self._summary()
        messages, self._messages = self._messages, []
        error = self._data_error
        self._reset_transaction()
        if error is not None:
            self.reply(error.code, error.text)
            self._log_transaction(summary, error.code)
            return
        d = defer.gatherResults([defer.maybeDeferred(m.eomReceived) for m in messages], consumeErrors=True)
        self._await(d, partial(self._stored, summary), partial(self._not_stored, summary))

    def _stored(self, summary: dict[str, Any], queue_ids: list[str]) -> None:
        # Only now is the message on disk (store.deliver fired): RFC 5321 6.1.
        summary["queue_id"] = queue_ids[0]
        self.reply(250, f"2.0.0 Ok: queued as {queue_ids[0]}")
        self._log_transaction(summary, 250)

    def _not_stored(self, summary: dict[str, Any], failure: Failure) -> None:
        if failure.check(defer.FirstError):
            failure = failure.value.subFailure
        log.failure("SMTP delivery to the store failed", failure, client_ip=summary["client_ip"])
        self.reply(451, "4.3.0 Error: message not stored, try again later")
        self._log_transaction(summary, 451)

    def _summary(self) -> dict[str, Any]:
        return {
            "client_ip": self.session.client_ip or self._peer_ip(),
            "helo": self.session.helo,
            "user": self.session.user,
            "sender": "" if self._sender is None else str(self._sender),
            "recipients": [str(r) for r, _ in self._recipients],
            "rejected": list(self._rejected),
            "size": self._data_size,
            "queue_id": None,
        }

    def _reset_transaction(self) -> None:
        self._transaction_open = False
        self._sender = None
        self._recipients = []
        self._rejected = []
        self._data_size = 0
        self._data_error = None

    def _abort_transaction(self) -> None:
        """End an open transaction without a message (RSET, EHLO, QUIT, STARTTLS, disconnect)."""
        if self._transaction_open:
            summary = self._summary()
            self._reset_transaction()
            self._log_transaction(summary, None)

    def _log_transaction(self, summary: dict[str, Any], code: int | None) -> None:
        """The one log line per SMTP transaction (DESIGN.md: contracts)."""
        log.info(
            "SMTP transaction from {client_ip} helo={helo} sender=<{sender}> "
            "recipients={recipients} rejected={rejected} size={size} result={result} id={queue_id}",
            result=code if code is not None else "aborted",
            kind=self.session.kind,
            **summary,
        )


class SMTPFactory(ServerFactory):
    """Builds :class:`SMTPServer` connections of one listener kind."""

    def __init__(self, ctx: "ServerContext", kind: str) -> None:
        self.ctx = ctx
        self.kind = kind

    def buildProtocol(self, addr: object) -> SMTPServer:
        protocol = SMTPServer(self.ctx, self.kind)
        protocol.factory = self
        return protocol


def make_factory(ctx: "ServerContext", kind: str) -> ServerFactory:
    """The listener factory for *kind* (``smtp``, ``submission`` or ``submissions``).

    For ``submissions`` the caller wraps it in TLS (docs/internals.rst).
    """
    if kind not in KINDS:
        raise ValueError(f"not an SMTP listener kind: {kind!r}")
    return SMTPFactory(ctx, kind)

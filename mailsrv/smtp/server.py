"""The ESMTP protocol for inbound mail (port 25) and submission (587, 465).

:class:`SMTPServer` subclasses ``twisted.mail.smtp.ESMTP`` for its command
dispatch, SASL challengers and delivery plumbing, and replaces what
TWISTED-NOTES section 1 lists as broken or missing:

* input is framed by :class:`~mailsrv.smtp.lines.LineFramer` (bounded, an
  over-long line never leaves DATA mode) and commands run strictly one at a
  time: while a command waits for a Deferred (validation, AUTH, the store)
  no further line is read, so pipelined replies come in order (#8126);
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
from collections import deque
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail.imap4 import IllegalClientResponse
from twisted.mail.interfaces import IMessageSMTP
from twisted.mail.smtp import AUTH, COMMAND, DATA, ESMTP
from twisted.python.failure import Failure

from mailsrv import tls
from mailsrv.accounts.cred import PlainCredentials
from mailsrv.config import IMPLICIT_TLS_KINDS
from mailsrv.smtp.address import AddressSyntaxError, Mailbox, parse_path
from mailsrv.smtp.auth import MECHANISMS, ISubmitter, log_login
from mailsrv.smtp.delivery import LocalDelivery
from mailsrv.smtp.lines import TOO_LONG, Line, LineFramer
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
_SIZE_EXCEEDED = Rejection(552, "5.3.4 Message size exceeds fixed maximum message size")  # RFC 1870 6.3
_LINE_TOO_LONG = Rejection(500, "5.5.2 Line too long")  # RFC 5321 4.5.3.1.6


class SMTPServer(ESMTP):
    """One SMTP connection of listener kind ``smtp``, ``submission`` or ``submissions``."""

    def __init__(self, ctx: "ServerContext", kind: str) -> None:
        submission = kind != "smtp"
        super().__init__(
            chal=dict(MECHANISMS) if submission else {},
            contextFactory=None if kind in IMPLICIT_TLS_KINDS else ctx.tls,
        )
        self.ctx = ctx
        self.limits = ctx.config.limits
        self.host = ctx.config.hostname
        self.timeout = self.limits.smtp_timeout
        self.portal = ctx.portal
        self.session = Session(kind)
        self.delivery = LocalDelivery(ctx, self.session)
        self._framer = LineFramer(self.limits.max_line_length)
        self._pending: deque[Line] = deque()
        self._blocked = False  # a command's reply waits for a Deferred
        self._draining = False
        self._paused = False
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

    # -- input: framing and one-command-at-a-time ------------------------

    def dataReceived(self, data: bytes) -> None:
        """Frame *data* into lines and run them in order.

        A message body is taken a chunk at a time (:meth:`_data_chunk`)
        whenever the next line to run is a body line at the start of *data*;
        everything else goes line by line through the framer and
        :meth:`_drain`, which is the reference behaviour the chunk path
        reproduces exactly.

        While a reply waits for a Deferred and lines are queued behind it, the
        transport is paused, so a pipelining client cannot make us queue
        without bound (the framer holds at most one partial line).
        """
        framer = self._framer
        while data:
            if not (
                self.mode == DATA
                and not self._pending
                and not self._blocked
                and not self._draining
                and not self.transport.disconnecting
            ):
                self._pending.extend(framer.feed(data))
                self._drain()
                break
            if not framer.at_line_start:
                # Finish the line begun in an earlier packet the usual way.
                end = framer.line_end(data)
                if end < 0:
                    self._pending.extend(framer.feed(data))  # completes no line
                    break
                self._pending.extend(framer.feed(data[:end]))
                self._drain()
                data = data[end:]
                continue
            data = self._data_chunk(data)
            if self.mode == DATA:
                # Only a partial line (no CRLF) is left: hold it in the framer.
                self._pending.extend(framer.feed(data))
                break
        if self._blocked and self._pending and not self._paused:
            self._paused = True
            self.transport.pauseProducing()

    def _drain(self) -> None:
        if self._draining:
            return
        self._draining = True
        try:
            while self._pending and not self._blocked and not self.transport.disconnecting:
                line = self._pending.popleft()
                try:
                    if line is TOO_LONG:
                        self.resetTimeout()
                        self.lineLengthExceeded(b"")
                    else:
                        self.lineReceived(line)
                except Exception:
                    self._input_failed()
        finally:
            self._draining = False

    def _input_failed(self) -> None:
        """Client input raised unexpectedly (called in the except block): log it, 421, hang up.

        RFC 5321 4.2.1: 421 tells the client to try again later, so no
        message is lost to our bug.
        """
        log.failure("SMTP command failed", client_ip=self._peer_ip())
        self.reply(421, f"4.3.0 {self.ctx.config.hostname} Error: internal error")
        self.transport.loseConnection()

    def _await(
        self,
        d: "defer.Deferred[Any]",
        on_success: Callable[[Any], None],
        on_failure: Callable[[Failure], None] | None = None,
    ) -> None:
        """Send the reply when *d* fires; read no further command until then.

        Twisted keeps executing pipelined commands while a validation
        Deferred is pending, which reorders replies (twisted #8126); RFC 2920
        3 requires them in command order.
        """
        self._blocked = True
        d.addCallbacks(on_success, on_failure or self._refused)
        d.addErrback(self._internal_error)
        d.addBoth(self._unblock)

    def _unblock(self, _: object) -> None:
        self._blocked = False
        if self._paused:
            self._paused = False
            self.transport.resumeProducing()
        self._drain()

    def _refused(self, failure: Failure) -> None:
        failure.trap(Rejection)
        self.reply(failure.value.code, failure.value.text)

    def _internal_error(self, failure: Failure) -> None:
        log.failure("SMTP command failed", failure, client_ip=self._peer_ip())
        self.reply(451, "4.3.0 Error: local error in processing")

    def lineLengthExceeded(self, line: bytes) -> None:
        """An over-long line is an error, never a change of mode (TWISTED-NOTES 1, Limits).

        Inside DATA the transaction is marked failed and the body is still
        consumed up to the final dot, where the error is answered: switching
        to command mode here would run the rest of the body as commands.
        """
        if self.mode == DATA:
            self._fail_data(_LINE_TOO_LONG)
            return
        if self.mode == AUTH:
            self._end_auth()
        self.reply(_LINE_TOO_LONG.code, _LINE_TOO_LONG.text)

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
        return self.startedTLS or ISSLTransport.providedBy(self.transport)

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

    def state_DATA(self, line: bytes) -> None:
        """One line of the message body: unstuff, count, pass on."""
        if line == b".":
            self._end_data()
            return
        if line[:1] == b".":
            line = line[1:]  # RFC 5321 4.5.2 transparency
        if self._data_error is not None:
            return
        self._data_size += len(line) + 2
        if self._data_size > self.limits.max_message_size:
            self._fail_data(_SIZE_EXCEEDED)
            return
        for message in self._messages:
            message.lineReceived(line)

    def _data_chunk(self, data: bytes) -> bytes:
        """Run the complete body lines at the start of *data* at once; return the rest.

        The framer is at a line start, nothing is queued, and the mode is
        DATA, so the lines in *data* are exactly those :meth:`state_DATA`
        would get one by one; this does what those calls would do, in bulk:

        * end of data is a line holding only "." (RFC 5321 3.3, 4.1.1.4):
          the lines before it are the body, :meth:`_end_data` runs, and what
          follows it is returned for the command path, in order;
        * RFC 5321 4.5.3.1.6: a line longer than ``max_line_length`` (CRLF
          included) fails the transaction with 500 at the final dot, as
          :meth:`lineLengthExceeded` does, and never leaves DATA mode;
        * RFC 5321 4.5.2 transparency: a leading "." of every line is removed;
        * RFC 1870: the message size is the unstuffed size with CRLFs, and
          the first line taking it over ``max_message_size`` fails with 552;
        * the first error wins and later lines are neither counted nor kept.

        Without a final dot, the trailing partial line (no CRLF) is returned
        for the framer.  The idle timer is reset once if any line was taken.
        """
        if data[:3] == b".\r\n":
            body_end = 0
        else:
            dot = data.find(b"\r\n.\r\n")
            body_end = dot + 2 if dot >= 0 else data.rfind(b"\r\n") + 2
            if body_end < 2:
                return data  # not one complete line yet
        # Every CRLF in data ends a line (CR is not LF, so none overlap), so
        # the first CRLF "." CRLF is the first "." line.
        final = body_end < len(data) and data[body_end:body_end + 3] == b".\r\n"
        self._draining = True
        try:
            self.resetTimeout()
            if body_end and self._data_error is None:
                self._data_lines(data[:body_end])
            if final:
                self._end_data()
        except Exception:
            self._input_failed()
        finally:
            self._draining = False
        return data[body_end + 3:] if final else data[body_end:]

    def _data_lines(self, body: bytes) -> None:
        """:meth:`state_DATA` for every line of *body* (complete lines, none of them ".")."""
        # RFC 5321 4.5.3.1.6: find the first over-long line.  Each window of
        # max_content + 2 octets from a line start must hold a CRLF; all
        # lines ending in it are short enough, so resume after its last one.
        window = self._framer.max_content + 2
        good = len(body)
        if good > window:
            start = 0
            while good - start > window:
                last = body.rfind(b"\r\n", start, start + window)
                if last < 0:
                    good = start
                    break
                start = last + 2
        # RFC 5321 4.5.2: remove the dot that starts a line.
        lines = body[:good].replace(b"\r\n.", b"\r\n")
        if lines[:1] == b".":
            lines = lines[1:]
        room = self.limits.max_message_size - self._data_size
        if len(lines) > room:
            # RFC 1870 6.3: the line taking the size over the limit is
            # counted, not kept, and fails the transaction.
            over = lines.find(b"\r\n", max(room - 1, 0)) + 2
            self._data_size += over
            before = lines.rfind(b"\r\n", 0, over - 2)  # the CRLF ending the line before it
            self._deliver_lines(lines[: before + 2] if before >= 0 else b"")
            self._fail_data(_SIZE_EXCEEDED)
            return
        self._data_size += len(lines)
        self._deliver_lines(lines)
        if good < len(body):
            self._fail_data(_LINE_TOO_LONG)

    def _deliver_lines(self, lines: bytes) -> None:
        """Pass complete, unstuffed lines (each with its CRLF) to every message."""
        if not lines:
            return
        for message in self._messages:
            bulk = getattr(message, "linesReceived", None)
            if bulk is not None:
                bulk(lines)
            else:
                for line in lines[:-2].split(b"\r\n"):
                    message.lineReceived(line)

    def _fail_data(self, error: Rejection) -> None:
        """Keep the first error for the final dot and discard what was received."""
        if self._data_error is None:
            self._data_error = error
            for message in self._messages:
                message.connectionLost()
            self._messages = []

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

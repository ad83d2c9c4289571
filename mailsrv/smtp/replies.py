"""Every SMTP reply the server sends, named, with the RFC that defines it.

A :class:`Reply` is a code (RFC 5321 4.2), an enhanced status code (RFC
3463, sent because ENHANCEDSTATUSCODES is advertised, RFC 2034) and a text
that may hold ``{placeholders}``.  Handlers return replies (or raise
:class:`Rejection`); the command loop writes them and counts the errors, so
the wording lives only here and tests import what they expect from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any


@dataclass(frozen=True)
class Reply:
    """One reply; ``enhanced`` is empty for the greeting and the EHLO/HELO
    reply, which RFC 2034 3 exempts.  Multi-line replies have lines in ``text``
    separated by ``\\n`` (each line gets the enhanced code)."""

    code: int
    enhanced: str
    text: str

    def __call__(self, **values: Any) -> "Reply":
        """This reply with its ``{placeholders}`` filled in."""
        return Reply(self.code, self.enhanced, self.text.format(**values))

    @property
    def is_error(self) -> bool:
        """4xx or 5xx."""
        return self.code >= 400

    @cached_property
    def _wire(self) -> bytes:
        lines = self.text.split("\n")
        prefix = f"{self.enhanced} " if self.enhanced else ""
        out = [f"{self.code}-{prefix}{line}\r\n" for line in lines[:-1]]
        out.append(f"{self.code} {prefix}{lines[-1]}\r\n")
        return "".join(out).encode("ascii", "replace")

    def wire(self) -> bytes:
        """The reply as sent: every line but the last with ``-`` after the code (RFC 5321 4.2.1)."""
        return self._wire


class Rejection(Exception):
    """Raised by policy and parsing code to answer with *reply* instead of going on."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


# -- connection and session (RFC 5321 4.2, 3.1) ---------------------------------
GREETING = Reply(220, "", "{host} ESMTP mailsrv")  # RFC 5321 4.2: "ESMTP" tells old clients to try EHLO
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "{host} Error: too many connections, try again later")  # RFC 5321 3.1
TIMEOUT = Reply(421, "4.4.2", "{host} Error: timeout exceeded")  # RFC 5321 4.5.3.2
# RFC 5321 3.8: a server that must shut down answers 421; RFC 3463 3.5: 4.3.2
SHUTTING_DOWN = Reply(421, "4.3.2", "{host} Service shutting down, closing transmission channel")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "{host} Error: too many errors")  # RFC 5321 4.3.2
# -- rate limits and connection hygiene: 421 closes (RFC 5321 3.8), RFC 3463 X.7.0 (policy) ---------
CONNECTION_RATE = Reply(421, "4.7.0", "Error: too many connections from your address, try again later")
MESSAGE_RATE = Reply(421, "4.7.0", "Error: too many messages from your address, try again later")
RECIPIENT_RATE = Reply(421, "4.7.0", "Error: too many recipients from your address, try again later")
MESSAGES_PER_CONNECTION = Reply(421, "4.7.0", "Error: too many messages in one connection, reconnect")
RECIPIENTS_PER_CONNECTION = Reply(421, "4.7.0", "Error: too many recipients in one connection, reconnect")
FAILED_RECIPIENTS = Reply(421, "4.7.0", "Error: too many unknown recipients")
GREYLISTED = Reply(451, "4.7.1", "Greylisted, try again later")  # RFC 6647: a temporary failure
# A client on a DNS blocklist (RFC 5782), in Postfix's words; at connect instead of the greeting (RFC 5321 3.1)
BLOCKLISTED = Reply(554, "5.7.1", "Service unavailable; client [{ip}] blocked using {lists}")
# RFC 5321 3.1: after a 554 greeting, every command but QUIT gets 503
REFUSED_SESSION = Reply(503, "5.5.1", "Error: this session was refused, send QUIT")
PREGREET = Reply(421, "4.7.0", "{host} Error: you talked before the greeting")
INTERNAL_ERROR = Reply(421, "4.3.0", "{host} Error: internal error")  # RFC 5321 4.2.1: the client retries
BYE = Reply(221, "2.0.0", "Bye")
OK = Reply(250, "2.0.0", "Ok")
HELLO = Reply(250, "", "{lines}")
VRFY_CANNOT = Reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")  # RFC 5321 3.5.3
HELP = Reply(214, "2.0.0", "Commands: {commands}\nSee RFC 5321")  # RFC 5321 4.1.1.8

# -- syntax and sequence (RFC 5321 4.2.4, 4.1.4) ----------------------------------
BAD_SYNTAX = Reply(500, "5.5.2", "Error: bad syntax")
UNKNOWN_COMMAND = Reply(500, "5.5.2", "Error: command not recognized")
# RFC 5321 2.3.8: CR and LF occur only together, as the line end; a command holding one alone is not taken, so
# "BDAT 10\n" cannot be read one way here and another way by the client (or by a filter in between).
BARE_LINE_END = Reply(500, "5.5.2", "Error: bare CR or LF in command, lines must end in CRLF")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")  # RFC 5321 4.5.3.1.6
SYNTAX = Reply(501, "5.5.4", "Syntax: {usage}")
HELO_FIRST = Reply(503, "5.5.1", "Error: send HELO/EHLO first")  # RFC 5321 4.1.4
NESTED_MAIL = Reply(503, "5.5.1", "Error: nested MAIL command")
NEED_MAIL = Reply(503, "5.5.1", "Error: need MAIL command")
NO_RECIPIENTS = Reply(554, "5.5.1", "Error: no valid recipients")  # RFC 5321 3.3

# -- STARTTLS (RFC 3207) -------------------------------------------------------
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
TLS_ACTIVE = Reply(503, "5.5.1", "Error: TLS already active")
TLS_UNAVAILABLE = Reply(454, "4.7.0", "TLS not available")  # RFC 3207 4

# -- AUTH (RFC 4954) -----------------------------------------------------------
AUTH_NOT_ENABLED = Reply(502, "5.5.1", "Error: authentication not enabled")
ENCRYPTION_REQUIRED = Reply(538, "5.7.11", "Encryption required for requested authentication mechanism")  # RFC 4954 6
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Error: already authenticated")  # RFC 4954 4
UNKNOWN_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication type")  # RFC 4954 4
AUTH_ABORTED = Reply(501, "5.7.0", "Authentication aborted")  # RFC 4954 4
AUTH_MALFORMED = Reply(501, "5.5.2", "Error: malformed authentication response")  # RFC 4954 4
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")  # RFC 4954 6
AUTH_FAILED = Reply(535, "5.7.8", "Error: authentication failed")  # RFC 4954 6
AUTH_TEMPORARY = Reply(454, "4.7.0", "Temporary authentication failure")  # RFC 4954 6
AUTH_LOCKED = Reply(454, "4.7.0", "Too many failed logins, try again later")  # RFC 4954 6
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")  # RFC 4954 6, RFC 6409 4.3

# -- submission: who a user may send as (RFC 6409 6.1, 6.3) ----------------------
# RFC 6409 6.1 names 550 for MAIL; 553 ("mailbox name not allowed", RFC 5321
# 4.2.2) says more precisely what is wrong and is what Postfix answers.
SENDER_NOT_OWNED = Reply(553, "5.7.1", "<{address}>: Sender address rejected: not owned by user {user}")
AUTHOR_NOT_OWNED = Reply(550, "5.7.1", "<{address}>: From address rejected: not owned by user {user}")
BAD_AUTHOR = Reply(554, "5.6.0", "Error: the message needs a From: header with addresses that parse")

# -- port 25: sender authentication (RFC 7489 7.3: 5.7.1 for a DMARC rejection) ---
DMARC_REJECTED = Reply(550, "5.7.1", "Message rejected: it fails DMARC and the policy of {domain} is reject")

# -- port 25: spam scoring (RFC 3463 3.8: 5.7.1 delivery not authorized, 4.7.0 a security failure) --
SPAM_REJECTED = Reply(550, "5.7.1", "Message rejected as spam")
SPAM_DEFERRED = Reply(451, "4.7.1", "Message deferred as likely spam, try again later")
SPAM_UNCHECKED = Reply(451, "4.7.0", "Spam scanner unavailable, try again later")

# -- the mail transaction (RFC 5321 3.3) -----------------------------------------
SENDER_OK = Reply(250, "2.1.0", "Ok")
RECIPIENT_OK = Reply(250, "2.1.5", "Ok")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax: {reason}")
BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax: {reason}")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Error: too many recipients")  # RFC 5321 4.5.3.1.10
RELAY_DENIED = Reply(554, "5.7.1", "<{address}>: Relay access denied")
REMOTE_UNAVAILABLE = Reply(550, "5.7.0", "Remote delivery is not available on this server yet")
USER_UNKNOWN = Reply(550, "5.1.1", "<{address}>: Recipient address rejected: User unknown")
TOO_MANY_HOPS = Reply(554, "5.4.6", "Too many hops: mail loop")  # RFC 5321 6.3, RFC 3463 X.4.6
# RFC 3463 3.3 X.2.2 "mailbox full": temporary while the user can make room (RFC 5321 4.2.2: 452) ...
MAILBOX_FULL = Reply(452, "4.2.2", "<{address}>: Mailbox full, try again later")
# ... permanent for a message larger than the whole quota (RFC 1870 6.2: 552 per recipient).
MAILBOX_TOO_SMALL = Reply(552, "5.2.2", "<{address}>: Message is larger than the mailbox quota")
BAD_SRS = Reply(550, "5.1.1", "<{address}>: Recipient address rejected: invalid or expired SRS address")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")  # RFC 5321 4.2: no enhanced code on 3xx
QUEUED = Reply(250, "2.0.0", "Ok: queued as {queue_id}")
NOT_STORED = Reply(451, "4.3.0", "Error: message not stored, try again later")
LOCAL_ERROR = Reply(451, "4.3.0", "Error: local error in processing")
SIZE_EXCEEDED = Reply(552, "5.3.4", "Message size exceeds fixed maximum message size")  # RFC 1870 6.3
BARE_LF = Reply(554, "5.6.0", "Error: bare LF in message data, lines must end in CRLF")  # RFC 5321 2.3.8

# -- BDAT (RFC 3030 2) -------------------------------------------------------------
CHUNK_RECEIVED = Reply(250, "2.0.0", "{octets} octets received")  # RFC 3030 2: one 250 per chunk
# RFC 3030 2: a chunk's size is how its end is found; without one the rest of the input cannot be read.
BDAT_UNREADABLE = Reply(421, "4.5.0", "{host} Error: cannot tell where the chunk ends, closing")
# RFC 3030 2: octets announced far past SIZE are not worth reading to the end of the chunk.
CHUNK_TOO_BIG = Reply(421, "4.3.4", "{host} Error: chunk far over the message size limit, closing")
BINARYMIME_NEEDS_BDAT = Reply(503, "5.5.1", "Error: BODY=BINARYMIME needs BDAT, not DATA")  # RFC 3030 3
DATA_AFTER_BDAT = Reply(503, "5.5.1", "Error: DATA and BDAT cannot be mixed in one transaction")  # RFC 3030 2
# RFC 3030 3 lets binary content hold any octet; the store keeps LF line ends (message/wire.py), so a bare LF
# would come back as CRLF: refused rather than changed, as IMAP APPEND refuses such a literal8 (RFC 3516 4.4).
BINARY_BARE_LF = Reply(554, "5.6.1", "Error: binary content with a bare LF cannot be stored here")

# -- MAIL and RCPT parameters (RFC 5321 4.1.2, RFC 1870, RFC 6152) ----------------
BAD_PARAMETERS = Reply(501, "5.5.4", "Syntax error in parameters")
DUPLICATE_PARAMETER = Reply(501, "5.5.4", "Duplicate parameter {name}")
BAD_SIZE = Reply(501, "5.5.4", "Bad SIZE parameter")
BAD_BODY = Reply(501, "5.5.4", "Bad BODY parameter")
UNSUPPORTED_PARAMETER = Reply(555, "5.5.4", "Unsupported parameter {name}")  # RFC 5321 4.1.1.11
BAD_DSN_PARAMETER = Reply(501, "5.5.4", "Bad {name} parameter: {reason}")  # RFC 3461 4
BAD_REQUIRETLS = Reply(501, "5.5.4", "Bad REQUIRETLS parameter: it takes no value")  # RFC 8689 3
# RFC 8689 3: REQUIRETLS only over TLS; RFC 3207 4 answers 530 when TLS must come first, RFC 3463 X.7.10.
REQUIRETLS_NEEDS_TLS = Reply(530, "5.7.10", "REQUIRETLS needs a TLS session: issue STARTTLS first")
BAD_SMTPUTF8 = Reply(501, "5.5.4", "Bad SMTPUTF8 parameter: it takes no value")  # RFC 6531 3.4
# RFC 6531 3.5: 553 "mailbox name not allowed", X.6.7 "non-ASCII addresses not permitted".
NON_ASCII_ADDRESS = Reply(553, "5.6.7", "Non-ASCII address without SMTPUTF8 in MAIL FROM")

#: Replies meaning "the client got the protocol wrong"; they count towards
#: ``limits.max_command_errors`` (RFC 5321 4.3.2 lets us close after too many).
COMMAND_ERROR_CODES = frozenset({500, 501, 502, 503, 504, 555})

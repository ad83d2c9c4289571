"""One SMTP transaction on an open connection: EHLO, STARTTLS, AUTH, MAIL, RCPT, DATA or BDAT (RFC 5321 3.3).

:func:`open_session` reads the greeting and says EHLO, STARTTLS and AUTH;
:func:`mail_transaction` then returns one result per recipient, and may
run again on the same session (with ``reset``: RSET first) before
:func:`end_session`.  Both raise :class:`TryNextHost` when this host
cannot take the message now (no greeting, TLS required and not offered, a
lost connection) so that the caller tries the next one, or
:class:`TLSBroken` when a STARTTLS handshake failed under policy ``may``
(the caller then reconnects without TLS, RFC 3207 leaves that to the
client).  Timeouts are RFC 5321 4.5.3.2's.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, replace

from mailsrv.delivery import dsnrequest
from mailsrv.delivery.attempt import Options, Outcome, RecipientResult
from mailsrv.delivery.smtpclient import Authenticate, ClientConnection, Reply, SMTPClientError
from mailsrv.message import wire
from mailsrv.message.body import Body, BodyType
from mailsrv.message.headers import past_return_path

#: RFC 5321 4.5.3.2: seconds to wait for each reply.
GREETING_TIMEOUT = 300.0
COMMAND_TIMEOUT = 300.0
DATA_TIMEOUT = 120.0
BLOCK_TIMEOUT = 180.0
FINAL_TIMEOUT = 600.0
#: Not in the RFC: how long a TLS handshake, and the reply to QUIT or RSET, may take.
TLS_TIMEOUT = 60.0
QUIT_TIMEOUT = 10.0


#: What became of a message's data: the outcome for its accepted recipients, the reply, and whether
#: the peer may have taken it without saying so (:attr:`RecipientResult.maybe_taken`).
_Final = tuple[Outcome, str, bool]


class TryNextHost(Exception):
    """This host did not take the message; *reply* says why (the next host may)."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class TLSBroken(TryNextHost):
    """The TLS handshake failed after STARTTLS was accepted."""


class RequireTLSUnsupported(TryNextHost):
    """A REQUIRETLS message, and this host does not offer REQUIRETLS (RFC 8689 4.2.2.1)."""


@dataclass(frozen=True)
class TLSPolicy:
    """What this transaction does about TLS."""

    #: Send STARTTLS when offered.
    attempt: bool
    #: Give up on a host that does not offer it or whose handshake fails.
    required: bool
    #: The client TLS options for the handshake (checking the certificate or not).
    creator: object = None
    #: Checks the server's certificate chain after the handshake (DANE); None: the creator's checks only.
    authenticate: Authenticate | None = None
    #: Who requires TLS, for the reply when a host cannot give it.
    requirement: str = "our TLS policy"


@dataclass(frozen=True)
class Transaction:
    """What to send: the envelope and body, our name, the credentials for AUTH PLAIN if any, and what
    the sender asked (DSN parameters to pass on, REQUIRETLS)."""

    helo: str
    sender: str
    recipients: Sequence[str]
    body: Body
    credentials: tuple[str, str] | None = None
    options: Options = Options()


async def open_session(conn: ClientConnection, tx: Transaction, tls: TLSPolicy) -> dict[str, str]:
    """The greeting, EHLO, STARTTLS and AUTH as *tls* and *tx* ask; the extensions the session offers."""
    try:
        greeting = await conn.read_reply(GREETING_TIMEOUT)
        if not greeting.positive:
            raise TryNextHost(str(greeting))
        extensions = await _hello(conn, tx.helo)
        if tls.attempt and not conn.tls:
            extensions = await _starttls(conn, tx.helo, extensions, tls)
        if tx.credentials is not None:
            await _auth(conn, extensions, tx.credentials)
    except SMTPClientError as e:
        raise TryNextHost(str(e)) from None
    return extensions


async def mail_transaction(
    conn: ClientConnection, tx: Transaction, extensions: dict[str, str], reset: bool = False,
) -> list[RecipientResult]:
    """One mail transaction on an open session: a result per recipient, or TryNextHost if the session broke first.

    With *reset*, on a session kept from an earlier transaction, RSET
    (RFC 5321 4.1.1.5) goes first to check the session is still good; a
    refused RSET raises TryNextHost too (a new session may take the
    message).  When it returns, the session is in step with the peer again
    (every reply read), ready for QUIT or for the next transaction.
    """
    try:
        return await _mail(conn, tx, extensions, reset)
    except SMTPClientError as e:
        raise TryNextHost(str(e)) from None


async def _command(conn: ClientConnection, line: str, timeout: float = COMMAND_TIMEOUT) -> Reply:
    conn.send(line)
    return await conn.read_reply(timeout)


async def _hello(conn: ClientConnection, helo: str) -> dict[str, str]:
    """EHLO (HELO if refused); the extensions offered, keyword (upper case) -> parameters."""
    reply = await _command(conn, f"EHLO {helo}")
    if reply.positive:
        return _extensions(reply)
    if reply.code not in (500, 502, 504, 550):
        raise TryNextHost(str(reply))
    reply = await _command(conn, f"HELO {helo}")
    if not reply.positive:
        raise TryNextHost(str(reply))
    return {}


def _extensions(ehlo: Reply) -> dict[str, str]:
    offered = {}
    for line in ehlo.lines[1:]:
        keyword, _, params = line.strip().partition(" ")
        offered[keyword.upper()] = params
    return offered


async def _starttls(conn: ClientConnection, helo: str, extensions: dict[str, str], tls: TLSPolicy) -> dict[str, str]:
    """STARTTLS and EHLO again (RFC 3207 4.2); the plaintext extensions when TLS is optional and refused."""
    if "STARTTLS" not in extensions:
        if tls.required:
            raise TryNextHost(f"STARTTLS is required by {tls.requirement} and not offered")
        return extensions
    reply = await _command(conn, "STARTTLS")
    if reply.code != 220:
        if tls.required:
            raise TryNextHost(f"STARTTLS refused: {reply}")
        return extensions
    try:
        await conn.start_tls(tls.creator, TLS_TIMEOUT, tls.authenticate)
    except SMTPClientError as e:
        raise (TryNextHost if tls.required else TLSBroken)(f"TLS handshake failed: {e}") from None
    return await _hello(conn, helo)


async def _auth(conn: ClientConnection, extensions: dict[str, str], credentials: tuple[str, str]) -> None:
    """AUTH PLAIN (RFC 4954, RFC 4616), only over TLS."""
    if not conn.tls:
        raise TryNextHost("refusing to send the relay password without TLS")
    if "PLAIN" not in extensions.get("AUTH", "").upper().split():
        raise TryNextHost("the relay does not offer AUTH PLAIN")
    user, password = credentials
    token = base64.b64encode(f"\0{user}\0{password}".encode()).decode("ascii")
    reply = await _command(conn, f"AUTH PLAIN {token}")
    if reply.code != 235:
        raise TryNextHost(f"AUTH at the relay failed: {reply}")


def _unsendable(tx: Transaction, extensions: dict[str, str]) -> str | None:
    """Why the peer cannot take this message unchanged, or None (RFC 6152, RFC 6531, RFC 1870)."""
    if tx.body.body_type is BodyType.EIGHT_BIT_MIME and "8BITMIME" not in extensions:
        return "554 5.6.3 the message has 8-bit data and the receiving server does not offer 8BITMIME"
    if tx.body.body_type is BodyType.BINARY_MIME and not ("BINARYMIME" in extensions and "CHUNKING" in extensions):
        # RFC 3030 3: binary content goes only to a server that takes it with BDAT; never re-encoded here.
        return "554 5.6.3 the message is BINARYMIME and the receiving server does not offer BINARYMIME and CHUNKING"
    if _needs_smtputf8(tx) and "SMTPUTF8" not in extensions:
        return "553 5.6.7 the addresses are not ASCII and the receiving server does not offer SMTPUTF8"
    limit = extensions.get("SIZE", "").strip()
    if limit.isdigit() and int(limit) and tx.body.wire_size > int(limit):
        return f"552 5.3.4 the message ({tx.body.wire_size} octets) exceeds the receiving server's limit of {limit}"
    return None


def _needs_smtputf8(tx: Transaction) -> bool:
    """RFC 6531 3.4: a UTF-8 header or address (sent only where needed, refused by a peer without it)."""
    return tx.options.smtputf8 or not all(address.isascii() for address in (tx.sender, *tx.recipients))


def _mail_command(tx: Transaction, extensions: dict[str, str]) -> str:
    params = []
    if "SIZE" in extensions:
        params.append(f"SIZE={tx.body.wire_size}")
    if tx.body.body_type is not BodyType.SEVEN_BIT:
        params.append(f"BODY={tx.body.body_type.value}")  # RFC 6152 2, RFC 3030 3
    if _needs_smtputf8(tx):
        params.append("SMTPUTF8")
    options = tx.options
    if "DSN" in extensions:  # RFC 3461 5.2.1: passed on to a server that offers DSN, and only to one
        if options.ret:
            params.append(f"RET={options.ret}")
        if options.envid:
            params.append(f"ENVID={dsnrequest.encode_xtext(options.envid)}")
    if options.require_tls:
        params.append("REQUIRETLS")  # RFC 8689 4.2.2.1
    return " ".join([f"MAIL FROM:<{tx.sender}>", *params])


def _rcpt_command(tx: Transaction, recipient: str, extensions: dict[str, str]) -> str:
    params = []
    request = tx.options.requests.get(recipient, dsnrequest.NO_REQUEST)
    if "DSN" in extensions:
        if request.notify:
            params.append(f"NOTIFY={request.notify}")
        if request.orcpt:
            params.append(f"ORCPT={dsnrequest.orcpt_parameter(request.orcpt)}")
    return " ".join([f"RCPT TO:<{recipient}>", *params])


async def _mail(conn: ClientConnection, tx: Transaction, extensions: dict[str, str], reset: bool) -> list[RecipientResult]:
    """[RSET,] MAIL, RCPT for each recipient (pipelined when offered, RFC 2920), then the message: with
    BDAT when the peer offers CHUNKING (RFC 3030 2), else with DATA.

    RFC 2920 3.1 lets RSET open a group: on a pipelining peer a reused
    session's RSET costs no round trip of its own.  Its reply is read
    first; a refusal gives up on the session before any message octet is
    sent (a DATA already accepted is ended by the caller closing it).
    """
    if tx.options.require_tls and not (conn.tls and "REQUIRETLS" in extensions):
        raise RequireTLSUnsupported("the message requires TLS (REQUIRETLS) and this server does not offer REQUIRETLS")
    reason = _unsendable(tx, extensions)
    pipelined = "PIPELINING" in extensions
    if reset:
        conn.send("RSET")
        if not pipelined or reason is not None:
            _check_reset(await conn.read_reply(QUIT_TIMEOUT))
    if reason is not None:
        return _all(conn, tx.recipients, Outcome.FAILED, reason)
    chunking = "CHUNKING" in extensions
    commands = [_mail_command(tx, extensions), *(_rcpt_command(tx, r, extensions) for r in tx.recipients)]
    replies = await _send_batch(conn, commands if chunking else [*commands, "DATA"], pipelined,
                                after_reset=reset and pipelined)
    mail, rcpts = replies[0], replies[1 : len(commands)]
    if not mail.positive:
        return _all(conn, tx.recipients, _outcome(mail), str(mail))
    results = {r: _result(conn, r, _rcpt_outcome(reply), str(reply)) for r, reply in zip(tx.recipients, rcpts)
               if not reply.positive}
    accepted = [r for r, reply in zip(tx.recipients, rcpts) if reply.positive]
    if chunking:
        final = await _send_chunked(conn, tx) if accepted else None
    else:
        final = await _send_data(conn, tx, replies[-1], bool(accepted))
    for r in accepted:
        assert final is not None
        results[r] = _result(conn, r, *final)
    return [replace(results[r], peer_dsn="DSN" in extensions) for r in tx.recipients]


async def _send_data(conn: ClientConnection, tx: Transaction, data: Reply | None, accepted: bool) -> _Final:
    """The message after DATA's reply *data*, dot-stuffed (RFC 5321 4.5.2); the outcome for the accepted recipients."""
    if data is None:
        return Outcome.DEFERRED, "DATA was not sent", False
    if data.code != 354:
        return _outcome(data), str(data), False
    if accepted:
        await conn.send_body(past_return_path(tx.body.open()), BLOCK_TIMEOUT)
    else:
        conn.send(".")  # RFC 2920 3.1: DATA was accepted for no recipient; end it empty
    return await _final_reply(conn)


async def _send_chunked(conn: ClientConnection, tx: Transaction) -> _Final:
    """The message as one ``BDAT <size> LAST`` chunk (RFC 3030 2): its octets as stored, nothing stuffed."""
    stored = past_return_path(tx.body.open())
    skipped = stored.tell()
    stored.seek(0)
    size = tx.body.wire_size - wire.wire_size(stored.read(skipped))
    conn.send(f"BDAT {size} LAST")
    await conn.send_body(stored, BLOCK_TIMEOUT, size=size)
    return await _final_reply(conn)


async def _final_reply(conn: ClientConnection) -> _Final:
    """The reply after the message's octets, as an outcome for its recipients; whether the peer may have
    taken the message although it did not say so (no reply came)."""
    try:
        final = await conn.read_reply(FINAL_TIMEOUT)
    except SMTPClientError as e:
        # The message may have been taken: a retry might duplicate it (RFC 5321 6.1), a bounce would lie.
        return Outcome.DEFERRED, f"no reply after the message data: {e}", True
    return (Outcome.DELIVERED if final.positive else _outcome(final)), str(final), False


def _check_reset(reply: Reply) -> None:
    """A kept session whose RSET is refused is not fit for another transaction."""
    if reply.code != 250:
        raise TryNextHost(f"RSET refused: {reply}")


async def _send_batch(
    conn: ClientConnection, commands: list[str], pipelined: bool, after_reset: bool = False,
) -> list[Reply | None]:
    """Each command's reply; without pipelining, nothing after a refused MAIL and no DATA without a recipient.

    *after_reset*: the group follows an RSET sent and not yet answered, whose reply is checked first.
    """
    if pipelined:
        for line in commands:
            conn.send(line)
        if after_reset:
            _check_reset(await conn.read_reply(QUIT_TIMEOUT))
        return [await conn.read_reply(DATA_TIMEOUT if line == "DATA" else COMMAND_TIMEOUT) for line in commands]
    mail = await _command(conn, commands[0])
    if not mail.positive:
        return [mail, *([None] * (len(commands) - 1))]
    replies: list[Reply | None] = [mail]
    for line in commands[1:]:
        if line != "DATA":
            replies.append(await _command(conn, line))
        elif any(reply.positive for reply in replies[1:] if reply is not None):
            replies.append(await _command(conn, line, DATA_TIMEOUT))
        else:
            replies.append(None)
    return replies


async def end_session(conn: ClientConnection) -> None:
    """QUIT politely; the transaction is over whatever the answer."""
    try:
        await _command(conn, "QUIT", QUIT_TIMEOUT)
    except SMTPClientError:
        pass


def _outcome(reply: Reply) -> Outcome:
    return Outcome.FAILED if reply.permanent else Outcome.DEFERRED


def _rcpt_outcome(reply: Reply) -> Outcome:
    """RFC 5321 4.5.3.1.10: a 552 "too many recipients" to RCPT (the older code for 452) is temporary.

    Only that 552 (``5.5.3``, RFC 3463, or those words): a 552 for a full
    mailbox (``5.2.2``) stays permanent.
    """
    text = str(reply).lower()
    if reply.code == 552 and (text.startswith("552 5.5.3") or "too many recipients" in text):
        return Outcome.DEFERRED
    return _outcome(reply)


def _result(
    conn: ClientConnection, recipient: str, outcome: Outcome, reply: str, maybe_taken: bool = False,
) -> RecipientResult:
    return RecipientResult(recipient, outcome, reply, tls=conn.tls, maybe_taken=maybe_taken)


def _all(conn: ClientConnection, recipients: Sequence[str], outcome: Outcome, reply: str) -> list[RecipientResult]:
    return [_result(conn, r, outcome, reply) for r in recipients]

"""SMTP AUTH (RFC 4954): the mechanisms and the command.

The password check is the shared portal's (:mod:`mailsrv.net.login`: hashing
off the reactor thread, one audit line); the exchange is
:mod:`mailsrv.net.sasl`'s.  What is SMTP's own: AUTH only on submission
listeners and only where a password may travel, and the 334/235/535 replies.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any, Callable

from twisted.mail.smtp import LOGINCredentials

from mailsrv.accounts.cred import PlainCredentials
from mailsrv.net import sasl
from mailsrv.net.lines import Line
from mailsrv.net.login import IUser, LoginFailed, login
from mailsrv.smtp import replies
from mailsrv.smtp.replies import Reply

if TYPE_CHECKING:
    from mailsrv.smtp.connection import Connection

#: SASL mechanisms offered after TLS.  PLAIN is RFC 4616 (the shared
#: decoder, which keeps the authzid); LOGIN, the de-facto Outlook form, is
#: Twisted's challenger, used as it is.
MECHANISMS: dict[bytes, Callable[[], Any]] = {
    b"PLAIN": PlainCredentials,
    b"LOGIN": LOGINCredentials,
}


def offered(server: "Connection") -> bool:
    """AUTH is advertised and taken only on submission, and only where a password may travel
    (what :meth:`Connection.auth_offered` answers).

    Port 25 takes no logins at all; RFC 4954 4 and RFC 8314 4.1: no
    password over a connection without TLS (loopback excepted if configured).
    """
    return server.kind.submission and server.passwords_allowed()


async def authenticate(server: "Connection", rest: bytes) -> Reply:
    """The AUTH command: run the exchange and log in; the final reply."""
    session = server.session
    if not server.kind.submission:
        return replies.AUTH_NOT_ENABLED
    if not offered(server):
        return replies.ENCRYPTION_REQUIRED  # RFC 4954 6
    if session.user is not None:
        return replies.ALREADY_AUTHENTICATED  # RFC 4954 4
    parts = rest.split(None, 1)
    mechanism = parts[0].upper() if parts else b""
    if mechanism not in MECHANISMS:
        return replies.UNKNOWN_MECHANISM

    async def ask(challenge: bytes) -> Line:
        server.write(b"334 " + base64.b64encode(challenge) + b"\r\n")  # RFC 4954 4
        return await server.read_line()

    try:
        credentials = await sasl.exchange(MECHANISMS, mechanism, parts[1] if len(parts) == 2 else None, ask)
    except sasl.SaslCancelled:
        return replies.AUTH_ABORTED
    except sasl.SaslMalformed:
        return replies.AUTH_MALFORMED
    ctx = server.ctx
    try:
        _, logout = await login(ctx.portal, ctx.audit, session, credentials, IUser, mechanism.decode("ascii"),
                                ctx.throttle, server.clock)
    except LoginFailed as e:
        if e.locked:
            return replies.AUTH_LOCKED
        return replies.AUTH_TEMPORARY if e.temporary else replies.AUTH_FAILED
    server.hold_login(logout)  # False only when the connection is gone: nobody reads the reply
    return replies.AUTH_OK

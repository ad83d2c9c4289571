"""Checking a login through the portal, the same way for every protocol.

Each protocol used to log in with its own copy of the RFC 4616 authzid rule
and its own log line; here the rule, the portal call, the audit line and the
meaning of each failure are one function, and the protocol only maps the
outcome to its reply.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.cred.error import LoginDenied, UnauthorizedLogin
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer
from zope.interface.interface import InterfaceClass

from mailsrv.accounts.cred import HashingQueueFull, PlainCredentials
from mailsrv.net.audit import Audit
from mailsrv.net.session import Session

log = Logger()


class IUser(Interface):
    """The avatar of every login: who logged in.  Each protocol opens what it
    needs (a maildrop, the folder tree) from the store itself, so the realm
    knows no protocol."""

    address = Attribute("Canonical address of the user (str).")


@implementer(IUser)
class User:
    """An authenticated user; holds nothing that needs a logout."""

    def __init__(self, address: str) -> None:
        self.address = address


class LoginFailed(Exception):
    """The login did not succeed; ``temporary`` means "our fault, try again later"."""

    def __init__(self, temporary: bool) -> None:
        super().__init__("temporary failure" if temporary else "bad credentials")
        self.temporary = temporary


async def login(
    portal: Any, audit: Audit, session: Session, credentials: Any, interface: InterfaceClass, mechanism: str
) -> tuple[Any, Callable[[], None]]:
    """Log in; ``(avatar, logout)``, with ``session.user`` set, or :class:`LoginFailed`.

    The avatar must have an ``address`` (the canonical user address).
    """
    user = credentials.username
    if isinstance(credentials, PlainCredentials) and not credentials.acts_as_itself():
        # RFC 4616 2: an authzid the user may not act as MUST fail the
        # login, and no user may act as another here.
        audit.login(session, user, mechanism, "failed", "authzid is not the user")
        raise LoginFailed(temporary=False)
    try:
        _, avatar, logout = await portal.login(credentials, None, interface)
    except (UnauthorizedLogin, LoginDenied):
        audit.login(session, user, mechanism, "failed")
        raise LoginFailed(temporary=False) from None
    except HashingQueueFull as e:
        audit.login(session, user, mechanism, "tempfail", str(e))
        raise LoginFailed(temporary=True) from None
    except Exception:
        log.failure("login error", user=str(user), client_ip=session.peer_ip)
        audit.login(session, user, mechanism, "tempfail", "internal error")
        raise LoginFailed(temporary=True) from None
    session.user = avatar.address
    audit.login(session, user, mechanism, "ok")
    return avatar, logout

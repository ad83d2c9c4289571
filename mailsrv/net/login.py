"""Checking a login through the portal, the same way for every protocol.

Each protocol used to log in with its own copy of the RFC 4616 authzid rule
and its own log line; here the rule, the throttle (:mod:`mailsrv.net.throttle`),
the portal call, the audit line and the meaning of each failure are one
function, and the protocol only maps the outcome to its reply.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.cred.error import LoginDenied, UnauthorizedLogin
from twisted.internet import task
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer
from zope.interface.interface import InterfaceClass

from mailsrv.accounts.cred import HashingQueueFull, PlainCredentials
from mailsrv.net.audit import Audit
from mailsrv.net.session import Session
from mailsrv.net.throttle import LoginThrottle

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
    """The login did not succeed; ``temporary`` means "our fault, try again later", ``locked``
    that too many failures locked the address or account out (also temporary)."""

    def __init__(self, temporary: bool, locked: bool = False) -> None:
        super().__init__("locked out" if locked else "temporary failure" if temporary else "bad credentials")
        self.temporary = temporary or locked
        self.locked = locked


async def login(
    portal: Any, audit: Audit, session: Session, credentials: Any, interface: InterfaceClass, mechanism: str,
    throttle: LoginThrottle, clock: IReactorTime,
) -> tuple[Any, Callable[[], None]]:
    """Log in; ``(avatar, logout)``, with ``session.user`` set, or :class:`LoginFailed`.

    The avatar must have an ``address`` (the canonical user address).  A
    locked-out address or account is refused at once; a failure is
    answered after the throttle's delay on *clock*.
    """
    user = credentials.username
    ip = session.peer_ip
    if throttle.locked(ip, user, clock.seconds()):
        audit.login(session, user, mechanism, "locked", "too many failures")
        raise LoginFailed(temporary=True, locked=True)
    if isinstance(credentials, PlainCredentials) and not credentials.acts_as_itself():
        # RFC 4616 2: an authzid the user may not act as MUST fail the
        # login, and no user may act as another here.
        await _failed(audit, session, user, mechanism, throttle, clock, "authzid is not the user")
    try:
        _, avatar, logout = await portal.login(credentials, None, interface)
    except (UnauthorizedLogin, LoginDenied):
        await _failed(audit, session, user, mechanism, throttle, clock)
    except HashingQueueFull as e:
        audit.login(session, user, mechanism, "tempfail", str(e))
        raise LoginFailed(temporary=True) from None
    except Exception:
        log.failure("login error", user=str(user), client_ip=session.peer_ip)
        audit.login(session, user, mechanism, "tempfail", "internal error")
        raise LoginFailed(temporary=True) from None
    session.user = avatar.address
    throttle.succeeded(user)
    audit.login(session, user, mechanism, "ok")
    return avatar, logout


async def _failed(
    audit: Audit, session: Session, user: str | bytes, mechanism: str, throttle: LoginThrottle,
    clock: IReactorTime, reason: str = "",
) -> None:
    """Log and count a failure, hold the reply for the throttle's delay, then raise :class:`LoginFailed`."""
    audit.login(session, user, mechanism, "failed", reason)
    delay = throttle.failed(session.peer_ip, user, clock.seconds())
    if delay:
        await task.deferLater(clock, delay, lambda: None)
    raise LoginFailed(temporary=False)

"""SMTP AUTH (RFC 4954): mechanisms, the avatar, and the login log line.

The password check itself is the shared portal's (hashing off the reactor
thread, brief cache).  The SMTP avatar is only "who is logged in":
``mailsrv.tap`` registers :class:`Submitter` in the realm as
``realm_factories[ISubmitter]``.
"""

from __future__ import annotations

from typing import Callable

from twisted.cred.credentials import IUsernamePassword
from twisted.logger import Logger
from twisted.mail.smtp import LOGINCredentials
from zope.interface import Attribute, Interface, implementer

from mailsrv.accounts.cred import PlainCredentials

log = Logger()

#: SASL mechanisms offered after TLS.  PLAIN is RFC 4616 (the shared
#: decoder, which keeps the authzid); LOGIN, the de-facto Outlook form, is
#: Twisted's challenger.
MECHANISMS: dict[bytes, Callable[[], IUsernamePassword]] = {
    b"PLAIN": PlainCredentials,
    b"LOGIN": LOGINCredentials,
}


class ISubmitter(Interface):
    """The avatar of an SMTP AUTH login: the user mail may be submitted as."""

    address = Attribute("Canonical address of the authenticated user (str).")


@implementer(ISubmitter)
class Submitter:
    """An authenticated submission user; holds nothing that needs a logout."""

    def __init__(self, address: str) -> None:
        self.address = address


def log_login(user: bytes | None, mechanism: str, success: bool, client_ip: str, kind: str) -> None:
    """One log line per login attempt, success or failure, with the client IP."""
    log.info(
        "SMTP login {outcome} for {user} from {client_ip} ({mechanism})",
        outcome="succeeded" if success else "failed",
        success=success,
        user=(user or b"").decode("utf-8", "replace"),
        client_ip=client_ip,
        mechanism=mechanism,
        protocol=kind,
    )

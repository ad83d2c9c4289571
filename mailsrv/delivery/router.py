"""Where a recipient's mail goes: local mailboxes, a remote server, or nowhere.

The one place that decides it, for every protocol that accepts mail (today
SMTP; later Sieve redirects and the HTTP API): the protocol turns the
answer into its own reply.  No syntax is checked here, that happened when
the address was parsed; no relay permission either, which depends on who
is asking (see :mod:`mailsrv.smtp.transaction`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, Union

from mailsrv.address import Mailbox


class Directory(Protocol):
    """What routing needs of :class:`mailsrv.accounts.Directory`."""

    def is_local_domain(self, domain: str) -> bool: ...

    def resolve(self, address: str) -> list[str]: ...


@dataclass(frozen=True)
class Local:
    """Delivered here, to these canonical user addresses (aliases already expanded)."""

    users: tuple[str, ...]


@dataclass(frozen=True)
class Remote:
    """Another server's mailbox: only an authenticated user may send there."""

    mailbox: Mailbox


class Refusal(enum.Enum):
    """Why a recipient has no route at all."""

    #: ``%``-hack, bang path or ``@`` in the local part: an attempt to relay.
    ROUTING_TRICK = "routing trick"
    #: A local domain, but no user or alias of that name.
    NO_SUCH_USER = "no such user"


@dataclass(frozen=True)
class Refused:
    """No route; :attr:`reason` says why."""

    reason: Refusal


Route = Union[Local, Remote, Refused]


class Router:
    """Routes recipients with the directory of local domains, users and aliases."""

    def __init__(self, directory: Directory) -> None:
        self._directory = directory

    def route(self, mailbox: Mailbox) -> Route:
        """The route for *mailbox*.

        RFC 5321 4.1.1.3 and appendix C: a source route is ignored and the
        mailbox after it routed like any other; whoever asks decides what a
        routed remote address means.
        """
        if mailbox.routes_elsewhere:
            return Refused(Refusal.ROUTING_TRICK)
        if mailbox.is_literal or not self._directory.is_local_domain(mailbox.domain):
            return Remote(mailbox)
        users = self._directory.resolve(mailbox.plain)
        if not users:
            return Refused(Refusal.NO_SUCH_USER)
        return Local(tuple(users))

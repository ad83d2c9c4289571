"""Where a recipient's mail goes: local mailboxes, a remote server, or nowhere.

An alias may also forward to other servers (the admin made it so), and a
bounce to an SRS address of ours (:mod:`mailsrv.delivery.srs`) goes on to
the sender it stands for: both are :class:`Local` routes with
:attr:`Local.forward` targets, accepted from anyone, unlike a
:class:`Remote` recipient, which is relaying.

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

from mailsrv.address import Mailbox, split_address
from mailsrv.delivery.srs import Rewriter, SRSInvalid


class Directory(Protocol):
    """What routing needs of :class:`mailsrv.accounts.Directory`."""

    def is_local_domain(self, domain: str) -> bool: ...

    def resolve(self, address: str) -> list[str]: ...


@dataclass(frozen=True)
class Local:
    """Ours: delivered here to *users*, and forwarded on our behalf to *forward*.

    *users* are canonical user addresses (aliases expanded); *forward*
    the remote addresses an alias names, or the original sender behind an
    SRS address.  Forwarded copies leave with an SRS sender.  Either may
    be empty, not both.
    """

    users: tuple[str, ...]
    forward: tuple[str, ...] = ()


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
    #: An SRS address of ours with a wrong hash, an expired timestamp or bad syntax.
    BAD_SRS = "invalid SRS address"


@dataclass(frozen=True)
class Refused:
    """No route; :attr:`reason` says why."""

    reason: Refusal


Route = Union[Local, Remote, Refused]


class Router:
    """Routes recipients with the directory of local domains, users and aliases."""

    def __init__(self, directory: Directory, srs: Rewriter | None = None) -> None:
        self._directory = directory
        self._srs = srs

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
        address = mailbox.plain
        if self._srs is not None and self._srs.is_srs(mailbox.local):
            try:
                original = self._srs.reverse(address)
            except SRSInvalid:
                return Refused(Refusal.BAD_SRS)
            parts = split_address(original)
            if parts is None:
                return Refused(Refusal.BAD_SRS)
            if not self._directory.is_local_domain(parts[1]):
                return Local((), forward=(original,))
            address = original
        return self._local(address)

    def _local(self, address: str) -> Route:
        """The users and remote alias targets *address* of a local domain reaches."""
        users: list[str] = []
        forward: list[str] = []
        for target in self._directory.resolve(address):
            parts = split_address(target)
            local = parts is not None and self._directory.is_local_domain(parts[1])
            (users if local else forward).append(target)
        if not users and not forward:
            return Refused(Refusal.NO_SUCH_USER)
        return Local(tuple(users), tuple(forward))

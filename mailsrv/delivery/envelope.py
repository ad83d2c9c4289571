"""One message in transit: its id, its envelope, and its body."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from mailsrv.delivery.dsnrequest import RecipientRequest
from mailsrv.message.body import Body

_QUEUE_ID_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXYZ"
_QUEUE_ID_LENGTH = 12
_QUEUE_IDS = len(_QUEUE_ID_ALPHABET) ** _QUEUE_ID_LENGTH


def new_queue_id() -> str:
    """A short random id naming one message in replies, the trace header and the log.

    Twelve uniform symbols of the alphabet (60 bits).  The id names a
    message, it guards nothing, so it comes from the process's seeded
    generator (reseeded in a forked child) rather than one system-RNG read
    per message on the reactor thread.
    """
    n = random.randrange(_QUEUE_IDS)
    base = len(_QUEUE_ID_ALPHABET)
    out = []
    for _ in range(_QUEUE_ID_LENGTH):
        n, digit = divmod(n, base)
        out.append(_QUEUE_ID_ALPHABET[digit])
    return "".join(out)


@dataclass
class Envelope:
    """A message and where it goes (RFC 5321 2.3.1: the envelope is not the header).

    *sender* is the reverse-path, ``""`` for the null sender; *local_users*
    are the canonical addresses of the local mailboxes it is delivered to,
    each once, in the order their recipients were accepted; *remote* the
    recipients on other servers, for the queue; *forward* the remote
    addresses local aliases (or SRS addresses) forward to, queued as a
    copy of their own with an SRS sender (:mod:`mailsrv.delivery.srs`).

    What the client asked on MAIL FROM travels with it: *ret* and *envid*
    (RFC 3461), *require_tls* (RFC 8689), *smtputf8* (RFC 6531: its
    addresses and header may be UTF-8); *requests* holds the NOTIFY and
    ORCPT of each recipient that gave any, by address as accepted;
    *forward_requests* what the copy asks for each forwarding target
    (:func:`~mailsrv.delivery.dsnrequest.passed_on`).
    """

    queue_id: str
    sender: str
    local_users: list[str] = field(default_factory=list)
    remote: list[str] = field(default_factory=list)
    forward: list[str] = field(default_factory=list)
    body: Body | None = None
    ret: str = ""
    envid: str = ""
    require_tls: bool = False
    smtputf8: bool = False
    requests: dict[str, RecipientRequest] = field(default_factory=dict)
    forward_requests: dict[str, RecipientRequest] = field(default_factory=dict)
    #: The recipients as the client named them (RCPT TO), each accepted one in order, before any alias.
    recipients: list[str] = field(default_factory=list)
    #: The folder the local users get it in (a policy check's choice: Junk), ``None`` for their INBOX.
    folder: str | None = None

    def add_local(self, users: "tuple[str, ...] | list[str]") -> None:
        """Add one recipient's mailboxes (an alias may name several; duplicates collapse)."""
        _add_new(self.local_users, users)

    def add_forward(self, addresses: "tuple[str, ...] | list[str]", request: RecipientRequest) -> None:
        """Add one recipient's forwarding targets, each asked *request* (duplicates collapse: the first wins)."""
        for address in addresses:
            self.forward_requests.setdefault(address, request)
        _add_new(self.forward, addresses)


def _add_new(items: list[str], new: "tuple[str, ...] | list[str]") -> None:
    for item in new:
        if item not in items:
            items.append(item)

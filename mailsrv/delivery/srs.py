"""The Sender Rewriting Scheme: forwarded mail leaves with an envelope sender of ours.

A forwarded message keeps its ``From:`` and body, but the receiver checks
SPF (RFC 7208) against the envelope sender, and our address is not in the
original sender's SPF record.  So the copy for an alias's remote target
is sent from ``SRS0=HHHH=TT=example.org=alice@<our domain>`` (the
"Guarded" scheme): HHHH is an HMAC of the rest under our secret, TT the
day it was made.  A bounce to that address comes back to us, and only
then, with a valid hash and a timestamp at most :data:`VALIDITY_DAYS`
old, is it routed on to ``alice@example.org``; anything else is refused,
so an SRS address cannot be forged into an open relay.

The secret is ``<data_dir>/srs-secret``, made (mode 0600) at the first
start; replacing it invalidates the addresses of bounces still on their
way.  The copy is ARC-sealed as the same domain (:mod:`mailsrv.dkim.arc`).
"""

from __future__ import annotations

import enum
import secrets
from typing import Iterable

import srslib

from mailsrv.store.writing import write_file

#: How long a rewritten address can be bounced to (the usual 21 days: longer than any queue keeps a message).
VALIDITY_DAYS = 21

_SECRET_BYTES = 32


class Invalid(enum.Enum):
    """Why an address that looks like ours is not."""

    HASH = "bad SRS hash"
    EXPIRED = "expired SRS address"
    SYNTAX = "malformed SRS address"


class SRSInvalid(Exception):
    """An ``SRS0=``/``SRS1=`` address of ours that does not verify; :attr:`reason` says why."""

    def __init__(self, reason: Invalid) -> None:
        super().__init__(reason.value)
        self.reason = reason


class Rewriter:
    """Rewrites senders of forwarded mail into our domain, and reverses them for bounces."""

    def __init__(self, secret: bytes, domains: Iterable[str]) -> None:
        self._srs = srslib.SRS(secret, validity_days=VALIDITY_DAYS)
        self._domains = tuple(domains)

    def forward(self, sender: str) -> str:
        """The envelope sender for forwarding mail from *sender*.

        The null sender stays null (a bounce is never bounced, RFC 5321
        4.5.5), and a sender in one of our domains needs no rewriting:
        our SPF record covers it.
        """
        if not sender or sender.rpartition("@")[2].lower() in self._domains:
            return sender
        return self._srs.forward(sender, self._domains[0])

    @staticmethod
    def is_srs(local_part: str) -> bool:
        """True when *local_part* claims to be a rewritten address (``SRS0=``/``SRS1=``, any case)."""
        return local_part[:5].upper() in ("SRS0=", "SRS1=")

    def reverse(self, address: str) -> str:
        """The original sender behind *address*; raises :class:`SRSInvalid` if it does not verify.

        Only call it for an address of one of our domains whose local part
        :meth:`is_srs`.
        """
        try:
            return self._srs.reverse(address)
        except srslib.InvalidHashError:
            raise SRSInvalid(Invalid.HASH) from None
        except srslib.InvalidTimestampError:
            raise SRSInvalid(Invalid.EXPIRED) from None
        except srslib.Error:
            raise SRSInvalid(Invalid.SYNTAX) from None


def load_secret(path: str) -> bytes:
    """The SRS secret in *path*, made there (random, mode 0600, fsynced) if it does not exist yet.

    Blocks: called once at the server start.  ``O_EXCL`` makes two servers
    starting on one data dir agree on one secret.
    """
    secret = secrets.token_hex(_SECRET_BYTES).encode("ascii")
    try:
        write_file(path, secret + b"\n")  # O_EXCL, mode 0600, fsynced
    except FileExistsError:
        with open(path, "rb") as f:
            secret = f.read().strip()
        if not secret:
            raise ValueError(f"{path}: the SRS secret file is empty; remove it to make a new one") from None
    return secret

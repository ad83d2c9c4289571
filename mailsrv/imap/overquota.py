"""Whether the logged-in user's quota (RFC 9208) has room for what APPEND or COPY would add.

Checked before anything is written, so a refused command changes nothing;
the usage is read in the store's executor.  MOVE needs no check: within
the user's one quota root it frees what it takes.  Two sessions adding
at once may both pass and overshoot by one command's worth, as Maildir++
quota does (it keeps no reservation); the next one is refused.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imap.responses import no

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection
    from mailsrv.store.maildirsize import Limits, Usage

OVER_QUOTA = b"[OVERQUOTA] Quota exceeded (mailbox full)"  # RFC 9208 4.3, RFC 5530 3


def limits_of(server: "Connection") -> "Limits":
    """The logged-in user's limits, current with the user file."""
    assert server.account is not None
    return server.ctx.directory.quota(server.account.user.address)


async def usage_of(server: "Connection") -> "Usage":
    """The logged-in user's usage against their limits (read off the reactor thread)."""
    assert server.account is not None
    return await server.account.user.quota_usage(limits_of(server))


async def require_room(server: "Connection", storage: int, messages: int) -> None:
    """``NO [OVERQUOTA]`` unless *storage* more octets in *messages* more messages fit (RFC 9208 4.3)."""
    if limits_of(server).unlimited:
        return
    if not (await usage_of(server)).admits(storage, messages):
        raise no(OVER_QUOTA)

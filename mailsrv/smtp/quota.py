"""The recipients' quota (``[quota]``, the user file): a full mailbox refuses mail before it is taken.

At RCPT each local user the recipient reaches is asked with the size the
client declared (RFC 1870 ``SIZE=``, else none): ``452 4.2.2`` while the
user is over quota (the sender retries, and the recipient can make room),
``552 5.2.2`` for a message larger than the whole quota, which no retry
can deliver.  After the data, with the size known, the same check for the
users still accepted: when none of them can take the message (and it goes
nowhere else), the reply is the refusal and nothing is stored.  Otherwise
the message is stored for every accepted user, also one it takes over
their limit: those were under quota at RCPT, and a 250 means stored for
all (Dovecot's ``quota_grace`` lets the last message overshoot in the
same way).  The usage is read in the store's executor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from mailsrv.smtp import replies
from mailsrv.smtp.replies import Reply

if TYPE_CHECKING:
    from mailsrv.context import ServerContext


async def refusal(ctx: "ServerContext", user: str, size: int) -> Reply | None:
    """Why *user*'s mailbox cannot take a message of *size* octets now; None when it can."""
    limits = ctx.directory.quota(user)
    if limits.unlimited:
        return None
    if not limits.admits(size):
        return replies.MAILBOX_TOO_SMALL(address=user)
    usage = await ctx.store.user(user).quota_usage(limits)
    return None if usage.admits(size) else replies.MAILBOX_FULL(address=user)


async def first_refusal(ctx: "ServerContext", users: Sequence[str], size: int) -> Reply | None:
    """At RCPT: the refusal of the first user of a recipient that cannot take the mail, if any."""
    for user in users:
        reply = await refusal(ctx, user, size)
        if reply is not None:
            return reply
    return None


async def refusal_of_all(ctx: "ServerContext", users: Sequence[str], size: int) -> Reply | None:
    """After the data: the refusal when no user can take the message, temporary if one may later."""
    found = []
    for user in users:
        reply = await refusal(ctx, user, size)
        if reply is None:
            return None
        found.append(reply)
    temporary = [reply for reply in found if reply.code < 500]
    return (temporary or found or [None])[0]

"""QUOTA (RFC 9208): one quota root per user, over all their folders, with STORAGE and MESSAGE.

The limits are the admin's (``[quota]`` and the user file, through
:meth:`mailsrv.accounts.directory.Directory.quota`); the usage is the
user's ``maildirsize`` (:meth:`mailsrv.store.UserStore.quota_usage`,
read and recalculated in the store's executor), into which the limits are
written, so Dovecot on the same Maildir enforces the same ones.  A user
without any limit has no quota root (RFC 9208 4.2.2 allows a mailbox
none).  SETQUOTA is refused: QUOTASET is not offered.

APPEND and COPY check the room first (:mod:`.overquota`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.folders import open_folder, quoted_name
from mailsrv.imap.overquota import limits_of, usage_of
from mailsrv.imap.responses import OK, Result, no
from mailsrv.imap.structure import encode

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection
    from mailsrv.store.maildirsize import Usage

#: RFC 9208 3.1, 5.1, 5.2.
CAPABILITIES = [b"QUOTA", b"QUOTA=RES-STORAGE", b"QUOTA=RES-MESSAGE"]
#: The name of the one root (Apple Mail shows no quota for an empty name).
ROOT = b"User quota"
_NO_SUCH_ROOT = b"[NONEXISTENT] No such quota root"  # RFC 9208 4.2.1
_NOT_SETTABLE = b"[NOPERM] Quota limits are set by the administrator"  # RFC 9208 4.2.3


def _quota_line(usage: "Usage") -> bytes:
    """``QUOTA root (STORAGE used limit MESSAGE used limit)``: only the limited resources (RFC 9208 5)."""
    resources = []
    if usage.limits.storage:  # RFC 9208 5.1: units of 1024 octets
        resources.append(b"STORAGE %d %d" % (usage.storage // 1024, usage.limits.storage // 1024))
    if usage.limits.messages:
        resources.append(b"MESSAGE %d %d" % (usage.messages, usage.limits.messages))
    return b"QUOTA " + encode(ROOT) + b" (" + b" ".join(resources) + b")"


async def do_GETQUOTAROOT(server: "Connection", args: Arguments) -> Result:
    """RFC 9208 4.2.2: the mailbox's roots (ours or none), then each root's QUOTA."""
    name = args.mailbox()
    args.end()
    folder = await open_folder(server, name, b"[NONEXISTENT] No such mailbox")
    if limits_of(server).unlimited:
        server.untagged(b"QUOTAROOT " + quoted_name(folder.name, server.modes.utf8))
    else:
        usage = await usage_of(server)
        server.untagged(b"QUOTAROOT " + quoted_name(folder.name, server.modes.utf8) + b" " + encode(ROOT))
        server.untagged(_quota_line(usage))
    return Result(OK, b"GETQUOTAROOT completed")


async def do_GETQUOTA(server: "Connection", args: Arguments) -> Result:
    """RFC 9208 4.2.1: the usage and limits of a root."""
    root = args.astring()
    args.end()
    if root != ROOT or limits_of(server).unlimited:
        raise no(_NO_SUCH_ROOT)
    server.untagged(_quota_line(await usage_of(server)))
    return Result(OK, b"GETQUOTA completed")


async def do_SETQUOTA(server: "Connection", args: Arguments) -> Result:
    """RFC 9208 4.2.3: understood and refused; only the admin sets limits."""
    args.astring()
    args.space()
    args.atom_list()
    args.end()
    raise no(_NOT_SETTABLE)


COMMANDS: dict[bytes, Callable[["Connection", Arguments], Awaitable[Result]]] = {
    b"GETQUOTAROOT": do_GETQUOTAROOT,
    b"GETQUOTA": do_GETQUOTA,
    b"SETQUOTA": do_SETQUOTA,
}

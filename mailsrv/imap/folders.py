"""The IMAP commands of the authenticated state: folders, STATUS, APPEND (RFC 3501 6.3).

Each handler takes the server and the command's :class:`~.arguments.Arguments`
and returns the tagged :class:`~.responses.Result`; store errors propagate
and are mapped once (:func:`.responses.store_error`), except where a command
wants another answer for a missing folder (APPEND and COPY: ``[TRYCREATE]``).
"""

from __future__ import annotations

import re
from functools import partial
from typing import TYPE_CHECKING, Awaitable, Callable, Sequence

from mailsrv.imap import condstore, listing, utf8accept
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.flags import SELECTABLE, normalize_flag
from mailsrv.imap.overquota import require_room
from mailsrv.imap.responses import (
    HAS_CHILDREN_REV2, OK, TRYCREATE, CommandError, Result, bad, no, store_error, syntax,
)
from mailsrv.imap.selection import Selection
from mailsrv.imap.structure import encode, quoted
from mailsrv.imap.syntax import encode_mailbox_name
from mailsrv.store import FolderHasChildren, NoSuchFolder, maildir, specialuse

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection
    from mailsrv.store import Folder

_STATUS_ITEMS = (
    b"MESSAGES", b"RECENT", b"UIDNEXT", b"UIDVALIDITY", b"UNSEEN", b"SIZE", b"DELETED", b"DELETED-STORAGE",
    b"HIGHESTMODSEQ",
)
#: The STATUS items that take a pass over every message.
_PER_MESSAGE = frozenset({b"UNSEEN", b"SIZE", b"DELETED", b"DELETED-STORAGE"})
#: RFC 9051 9: a quoted string holds TEXT-CHAR (no NUL, CR or LF) and UTF-8.
_QUOTABLE_UTF8 = re.compile(rb"[^\x00\r\n]{0,1000}\Z")
#: What LIST and STATUS offer beyond RFC 3501 (RFC 5258, 5819, 6154, 8438).
LIST_CAPABILITIES = [b"LIST-EXTENDED", b"LIST-STATUS", b"SPECIAL-USE", b"CREATE-SPECIAL-USE", b"STATUS=SIZE"]


def quoted_name(name: str, utf8: bool) -> bytes:
    """A folder name on the wire: modified UTF-7 (RFC 3501 5.1.3), quoted, or for *utf8* UTF-8.

    A UTF8=ACCEPT or IMAP4rev2 session gets its names in UTF-8 (RFC 6855 3, RFC 9051 5.1), quoted,
    as its QUOTED-CHAR allows (RFC 9051 9); a literal only for a name
    with a line break or NUL in it.
    """
    raw = encode_mailbox_name(name, utf8)
    return quoted(raw) if utf8 and _QUOTABLE_UTF8.match(raw) else encode(raw)


async def open_folder(server: "Connection", name: str, missing: bytes) -> "Folder":
    """The named folder, synced; ``NO missing`` if it does not exist."""
    assert server.account is not None
    try:
        return await server.account.open(name)
    except NoSuchFolder as e:
        raise store_error(e, missing) from None


def _permanent_flags(folder: "Folder", writeable: bool) -> bytes:
    """RFC 3501 7.1: ``\\*`` only while the folder can take another keyword."""
    if not writeable:
        return b"()"
    return SELECTABLE[:-1] + b" \\*)" if folder.can_add_keywords() else SELECTABLE


async def _select(server: "Connection", args: Arguments, writeable: bool) -> Result:
    """SELECT/EXAMINE with every response RFC 3501 6.3.1 lists, and RFC 7162's CONDSTORE and QRESYNC."""
    name = args.mailbox()
    resync = condstore.select_params(args, server.modes) if args.more() else None
    args.end()
    if server.selection is not None:
        server.untagged(b"OK [CLOSED] Previous mailbox closed")  # RFC 7162 3.2.11
    previous = server.release_selection()  # RFC 3501 6.3.1: even a failed SELECT leaves none selected
    try:
        folder = await open_folder(server, name, b"[NONEXISTENT] No such mailbox")
        selection = Selection(folder, writeable, server.updates_pending, server.modes)
    finally:
        if previous is not None:
            previous.close()
    server.select(selection)
    lines = [
        b"FLAGS " + SELECTABLE,
        b"OK [PERMANENTFLAGS " + _permanent_flags(folder, writeable) + b"] Flags permitted",
        b"%d EXISTS" % selection.exists,
    ]
    if server.modes.rev2:
        # RFC 9051 6.3.2: a LIST response names the mailbox; RECENT and UNSEEN are gone (2.3.2, 7.1).
        lines.append(b'LIST () "/" ' + quoted_name(folder.name, utf8=True))
    else:
        lines.append(b"%d RECENT" % selection.recent)
        unseen = selection.first_unseen()
        if unseen is not None:
            lines.append(b"OK [UNSEEN %d] First unseen" % unseen)
    lines += [
        b"OK [UIDVALIDITY %d] UIDs valid" % folder.uidvalidity,
        b"OK [UIDNEXT %d] Predicted next UID" % folder.uidnext,
        b"OK [HIGHESTMODSEQ %d] Highest" % folder.highest_modseq,  # RFC 7162 3.1.2.1
    ]
    server.write(b"".join(b"* " + line + b"\r\n" for line in lines))
    if resync is not None:
        condstore.resync(server, selection, resync)
    mode = b"[READ-WRITE] SELECT" if writeable else b"[READ-ONLY] EXAMINE"
    return Result(OK, mode + b" completed")


async def do_CREATE(server: "Connection", args: Arguments) -> Result:
    """RFC 3501 6.3.3, with RFC 6154 3's ``(USE (\\Archive ...))``."""
    name = args.mailbox()
    uses: frozenset[str] = frozenset()
    if args.more():
        args.space()
        uses = _create_uses(args)
    args.end()
    assert server.account is not None
    await server.account.create(name, uses, origin=server)
    return Result(OK, b"Mailbox created")


def _create_uses(args: Arguments) -> frozenset[str]:
    """``(USE (attr ...))`` (RFC 4466 create-param, RFC 6154 3); ``NO [USEATTR]`` for a use we lack."""
    if not args.expect(b"(USE "):
        raise syntax(b"Unknown CREATE parameter")
    uses = set()
    for flag in args.flag_list():
        use = specialuse.canonical(flag)
        if use is None:
            raise no(b"[USEATTR] Unsupported special-use attribute")  # RFC 6154 3
        uses.add(use)
    if not args.expect(b")"):
        raise syntax(b"Malformed CREATE parameters")
    return frozenset(uses)


async def do_DELETE(server: "Connection", args: Arguments) -> Result:
    """RFC 3501 6.3.4; deleting one's own selected folder just deselects it, as Dovecot does."""
    name = args.mailbox()
    args.end()
    assert server.account is not None
    selection = server.selection
    try:
        await server.account.user.delete_folder(name, origin=server)
    except FolderHasChildren:
        if server.modes.rev2:
            raise no(HAS_CHILDREN_REV2) from None
        raise
    if selection is not None and selection.deleted:
        server.deselect()
    return Result(OK, b"Mailbox deleted")


async def do_RENAME(server: "Connection", args: Arguments) -> Result:
    """RFC 3501 6.3.5, subfolders included."""
    old = args.mailbox()
    args.space()
    new = args.mailbox()
    args.end()
    assert server.account is not None
    await server.account.user.rename_folder(old, new, origin=server)
    return Result(OK, b"Mailbox renamed")


async def _subscription(server: "Connection", args: Arguments, subscribe: bool) -> Result:
    """SUBSCRIBE and UNSUBSCRIBE (RFC 3501 6.3.6-7)."""
    name = args.mailbox()
    args.end()
    assert server.account is not None
    user = server.account.user
    await (user.subscribe(name, origin=server) if subscribe else user.unsubscribe(name, origin=server))
    return Result(OK, b"Subscribed" if subscribe else b"Unsubscribed")


async def _lsub(server: "Connection", args: Arguments) -> Result:
    """LSUB (RFC 3501 6.3.9): subscribed names, existing or not, and ``\\Noselect`` parents for ``%``."""
    reference = args.list_mailbox()
    args.space()
    pattern = args.list_mailbox()
    args.end()
    assert server.account is not None
    names = await server.account.subscribed(reference, pattern)
    utf8 = server.modes.utf8
    server.write(b"".join(
        b"* LSUB (" + (b"\\Noselect" if parent else b"") + b') "/" ' + quoted_name(n, utf8) + b"\r\n"
        for n, parent in names
    ))
    return Result(OK, b"LSUB completed")


async def do_LIST(server: "Connection", args: Arguments) -> Result:
    """LIST (RFC 3501 6.3.8, RFC 5258, RFC 6154, RFC 5819) with ``/`` and RFC 3348 child flags."""
    command = listing.parse_list(args)
    if command.status is not None:
        _check_status_items(command.status)
    assert server.account is not None
    if not command.extended and not command.patterns[0]:
        # RFC 3501 6.3.8: an empty pattern asks for the hierarchy delimiter.
        server.untagged(b'LIST (\\Noselect) "/" ""')
        return Result(OK, b"LIST completed")
    for entry in await listing.entries(server.account, command):
        attributes = " ".join(entry.attributes).encode()
        name = quoted_name(entry.name, server.modes.utf8)
        server.untagged(b"LIST (" + attributes + b') "/" ' + name + listing.childinfo(entry))
        if command.status is not None and entry.selectable:
            await _send_status(server, entry.name, command.status, missing_ok=True)
    return Result(OK, b"LIST completed")


async def do_NAMESPACE(server: "Connection", args: Arguments) -> Result:
    """RFC 2342: one personal namespace, no shared or other users' folders."""
    args.end()
    server.untagged(b'NAMESPACE (("" "/")) NIL NIL')
    return Result(OK, b"NAMESPACE completed")


async def do_STATUS(server: "Connection", args: Arguments) -> Result:
    """STATUS (RFC 3501 6.3.10) straight from the folder, no SELECT."""
    name = args.mailbox()
    args.space()
    wanted = [item.upper() for item in args.atom_list()]
    args.end()
    _check_status_items(wanted)
    if b"HIGHESTMODSEQ" in wanted:
        condstore.enabled_by(server)  # RFC 7162 3.1.8
    await _send_status(server, name, wanted)
    return Result(OK, b"STATUS completed")


def _check_status_items(wanted: list[bytes]) -> None:
    unknown = [item for item in wanted if item not in _STATUS_ITEMS]
    if unknown:
        raise bad(b"Unknown STATUS item " + unknown[0][:20])


async def _send_status(server: "Connection", name: str, wanted: list[bytes], missing_ok: bool = False) -> None:
    """``* STATUS name (...)`` for the items *wanted*; with *missing_ok* nothing for a folder gone meanwhile."""
    try:
        folder = await open_folder(server, name, b"[NONEXISTENT] No such mailbox")  # synced
    except CommandError:
        if missing_ok:
            return  # RFC 5819 2: LIST went on; the folder vanished between listing and STATUS
        raise
    selection = server.selection

    def recent() -> int:
        return selection.recent if selection is not None and selection.folder is folder else folder.recent_count()

    server.untagged(b"STATUS " + quoted_name(folder.name, server.modes.utf8) + b" " + status_data(folder, wanted, recent))


def status_data(folder: "Folder", wanted: Sequence[bytes], recent: Callable[[], int]) -> bytes:
    """``(item n ...)`` of a STATUS response for the *wanted* items, in that order, each worked out only if asked.

    STATUS's, and NOTIFY's for a watched folder (RFC 5465 5.1-5.3), which
    asks for a few cheap items after every change: a pass over every
    message only for the items that need one.
    """
    infos = folder.messages() if _PER_MESSAGE.intersection(wanted) else []
    deleted = [i for i in infos if "\\Deleted" in i.flags]
    values: dict[bytes, Callable[[], int]] = {
        b"MESSAGES": lambda: folder.count,
        b"RECENT": recent,
        b"UIDNEXT": lambda: folder.uidnext,
        b"UIDVALIDITY": lambda: folder.uidvalidity,
        b"UNSEEN": lambda: sum(1 for i in infos if "\\Seen" not in i.flags),
        b"SIZE": lambda: sum(i.size for i in infos),  # RFC 8438 2: the octets of every message, as RFC822.SIZE counts
        b"DELETED": lambda: len(deleted),  # RFC 9051 6.3.11, which RFC 9208 5.2 requires with MESSAGE
        # RFC 9208 4.4: what an EXPUNGE would free of STORAGE, in its units (the quota counts disk octets).
        b"DELETED-STORAGE": lambda: sum(maildir.sizes_from_key(i.key)[0] or i.size for i in deleted) // 1024,
        b"HIGHESTMODSEQ": lambda: folder.highest_modseq,  # RFC 7162 3.1.6
    }
    return b"(" + b" ".join(b"%s %d" % (item, values[item]()) for item in wanted) + b")"


async def do_APPEND(server: "Connection", args: Arguments) -> Result:
    """APPEND (RFC 3501 6.3.11): byte-exact, durable before the OK, ``[APPENDUID]`` (RFC 4315 3).

    RFC 6855 4's ``UTF8`` item and 8-bit header rule are :func:`.utf8accept.append_message`'s.
    """
    name = args.mailbox()
    args.space()
    flags: list[str] = []
    if args.peek() == b"(":
        flags = args.flag_list()
        args.space()
    internaldate = args.date_time()
    if internaldate is not None:
        args.space()
    body = await utf8accept.append_message(server, args)
    args.end()
    folder = await open_folder(server, name, TRYCREATE)
    if body.size == 0:
        # POP3 cannot list an empty message, so the two protocols would
        # disagree on the mailbox; Dovecot refuses it in these words.
        raise no(b"Can't save a zero byte message")
    await require_room(server, body.size, 1)
    uid = await folder.append(body, [normalize_flag(f) for f in flags], internaldate)
    return Result(OK, b"[APPENDUID %d %d] APPEND completed" % (folder.uidvalidity, uid))


COMMANDS: dict[bytes, Callable[["Connection", Arguments], Awaitable[Result]]] = {
    b"SELECT": partial(_select, writeable=True),  # RFC 3501 6.3.1
    b"EXAMINE": partial(_select, writeable=False),  # RFC 3501 6.3.2
    b"CREATE": do_CREATE,
    b"DELETE": do_DELETE,
    b"RENAME": do_RENAME,
    b"SUBSCRIBE": partial(_subscription, subscribe=True),  # RFC 3501 6.3.6
    b"UNSUBSCRIBE": partial(_subscription, subscribe=False),  # RFC 3501 6.3.7
    b"LIST": do_LIST,
    b"LSUB": _lsub,
    b"NAMESPACE": do_NAMESPACE,
    b"STATUS": do_STATUS,
    b"APPEND": do_APPEND,
}

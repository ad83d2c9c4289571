"""The IMAP commands of the selected state (RFC 3501 6.4) and their UID forms.

FETCH streams: each message is rendered as pieces (:mod:`.fetch`), body
spans are read from the stored file a chunk at a time, and the loop waits
for the client to read (:meth:`CommandPump.drain`) before producing more,
so ``FETCH 1:* BODY.PEEK[]`` from a client that does not read holds one
chunk, not the mailbox.  A message expunged by another session before its
file could be opened is left out and the FETCH answers ``NO
[EXPUNGEISSUED]`` (RFC 2180 4.1.2); once opened, its content is served.
SEARCH, SORT and THREAD are in :mod:`.searching`.  Wherever a sequence
set is read, ``$`` names the saved search result (RFC 5182 2.1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Awaitable, Callable

from twisted.logger import Logger
from twisted.mail import imap4

from mailsrv.imap import condstore, fetch, msgcache
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.candidates import Candidates
from mailsrv.imap.fetchatt import parse_fetch_items
from mailsrv.imap.folders import open_folder
from mailsrv.imap.overquota import require_room
from mailsrv.imap.responses import (
    EXPUNGE_ISSUED, NO, OK, READ_ONLY, TRYCREATE, Result, bad, no, syntax,
)
from mailsrv.imap.esearch import saved_set
from mailsrv.imap.searching import search_command, sort_command, thread_command
from mailsrv.imap.sequences import uid_set
from mailsrv.store import MessageGone

if TYPE_CHECKING:
    from twisted.internet.defer import Deferred

    from mailsrv.imap.selection import Selection
    from mailsrv.store import Folder
    from mailsrv.imap.connection import Connection

log = Logger()

#: Messages read from their files in a row before a FETCH yields to the reactor anyway.
_PER_TURN = 200


def _selection(server: "Connection") -> "Selection":
    assert server.selection is not None
    return server.selection


def _check_range(selection: "Selection", messages: imap4.MessageSet, uid: bool) -> None:
    """RFC 3501 9 (seq-number): a number above EXISTS, or ``*`` in an empty mailbox, is BAD.

    UIDs that do not exist are simply not there (RFC 3501 6.4.8).
    """
    if uid:
        return
    count = selection.exists
    numbers = [n for pair in messages.ranges for n in pair]  # None is "*"
    if any(count == 0 if n is None else n > count for n in numbers):
        raise bad(b"Invalid messageset: no such message")


def _messages(server: "Connection", args: Arguments, uid: bool) -> tuple[imap4.MessageSet, bool]:
    """A command's sequence set, and whether it is one of UIDs.

    ``$`` is the saved result (RFC 5182 2.1), kept as UIDs: it names the
    same messages in FETCH and UID FETCH, and may be empty.
    """
    if args.expect(b"$"):
        return saved_set(_selection(server).saved), True
    return args.sequence_set(), uid


async def fetch_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """FETCH (RFC 3501 6.4.5); non-PEEK body fetches set \\Seen; RFC 7162's CHANGEDSINCE and VANISHED.

    The messages go a slice at a time (:meth:`Selection.slices`), each
    slice's views built, its ``\\Seen`` set and its responses sent in one
    reactor turn, so other sessions are served between slices.
    """
    messages, by_uid = _messages(server, args, uid)
    args.space()
    items = parse_fetch_items(args)
    modifiers = condstore.fetch_modifiers(args, uid, server)
    args.end()
    selection = _selection(server)
    _check_range(selection, messages, by_uid)
    if any(item.name == "MODSEQ" for item in items):
        condstore.enabled_by(server)  # RFC 7162 3.1.8
    if modifiers.changedsince is not None:  # RFC 7162 3.1.4: only what changed, with its MODSEQ
        items = fetch.with_item(items, "MODSEQ")
    if modifiers.vanished:  # RFC 7162 3.2.6
        vanished = condstore.vanished_since(selection, modifiers.changedsince or 0, messages)
        if vanished:
            server.untagged(b"VANISHED (EARLIER) " + vanished)
    sets_seen = selection.writeable and any(item.sets_seen for item in items)
    if sets_seen:
        items = fetch.with_item(items, "FLAGS")
        if server.modes.condstore:  # RFC 7162 3.1.4: the new flags come with their modseq
            items = fetch.with_item(items, "MODSEQ")
    complete = True
    for n, pairs in enumerate(selection.slices(messages, by_uid)):
        if n:
            await server.yield_turn()
        views, missing = selection.views(pairs)
        if modifiers.changedsince is None:
            complete = complete and not missing
        else:  # expunged elsewhere: the EXPUNGE or VANISHED owed after this command tells of them
            views = [(seq, view) for seq, view in views if view.modseq > modifiers.changedsince]
        if sets_seen:
            views = await _mark_seen(selection, views)
        if not await send_fetch(server, views, items, uid):
            complete = False
    if not complete:
        return Result(NO, EXPUNGE_ISSUED)
    return Result(OK, b"FETCH completed")


async def send_fetch(server: "Connection", views: list[tuple[int, fetch.View]], items: list, uid: bool) -> bool:
    """The FETCH responses for *views*; False when some were expunged before their files could be read.

    FETCH's, and NOTIFY's for the new messages of the selected mailbox (RFC 5465 5.2).
    """
    if fetch.needs(items) is fetch.Need.NOTHING:
        return await _fetch_known(server, views, items, uid)
    return await _fetch_all(server, views, items, uid)


async def _fetch_known(
    server: "Connection", views: list[tuple[int, fetch.View]], items: list, uid: bool,
    cached: "dict[int, dict[str, bytes]] | None" = None,
) -> bool:
    """Responses that need no message file (FLAGS, UID, sizes, dates, cached ENVELOPE...): one write.

    ``UID FETCH 1:* (FLAGS)`` of 100,000 messages spent most of its time
    in a write, a drain and a coroutine per message.  With *cached* (UID ->
    the cache's values), a message missing there was expunged before its
    file could be read: it is left out, and the answer is False.
    """
    complete = True
    pieces: list[bytes] = []
    for seq, view in views:
        entry = None if cached is None else cached.get(view.uid)
        if cached is not None and entry is None:
            complete = False
            continue
        pieces.append(fetch.render_known(seq, view, items, uid, entry))
    await server.drain()
    server.write(b"".join(pieces))
    return complete


async def _fetch_all(server: "Connection", views: list[tuple[int, fetch.View]], items: list, uid: bool) -> bool:
    """Send every message's response, :data:`_PER_TURN` at a time; False when some were expunged first.

    ENVELOPE, BODYSTRUCTURE and BODY come from the user's message cache,
    one trip to the search pool per batch (:func:`.msgcache.fetch_items`),
    the next batch asked for while this one is sent; when the cache answers
    every item that needs a file, a batch goes out in one write.
    """
    folder = _selection(server).folder
    columns = sorted({fetch.CACHED_ITEMS[item.name] for item in items if item.name in fetch.CACHED_ITEMS})
    cache = folder.cache if columns else None
    need = fetch.needs(items, cached=cache is not None)
    batches = [views[start : start + _PER_TURN] for start in range(0, len(views), _PER_TURN)]

    def cached(batch: list[tuple[int, fetch.View]]) -> "Deferred[dict[int, dict[str, bytes]]] | None":
        if cache is None or not batch:
            return None
        candidates = Candidates.of_pairs(folder, batch)
        return server.ctx.workers.search.run(msgcache.fetch_items, cache, candidates, columns)

    complete = True
    coming = cached(batches[0]) if batches else None
    for n, batch in enumerate(batches, 1):
        answers = await coming if coming is not None else None
        coming = cached(batches[n]) if n < len(batches) else None
        if answers is not None and need is fetch.Need.NOTHING:
            complete = await _fetch_known(server, batch, items, uid, answers) and complete
        else:
            for seq, view in batch:
                await server.drain()
                entry = None if answers is None else answers.get(view.uid)
                if answers is not None and entry is None:
                    complete = False  # its file was gone before it could be read
                elif not await _fetch_one(server, seq, view, items, uid, need, entry):
                    complete = False
        if n < len(batches):
            await server.yield_turn()
    return complete


async def _mark_seen(selection: "Selection", views: list[tuple[int, fetch.View]]) -> list[tuple[int, fetch.View]]:
    """Set ``\\Seen`` on the messages that lack it; the views with their new flags."""
    changes = [(v.uid, v.flags | {"\\Seen"}) for _, v in views if "\\Seen" not in v.flags]
    if not changes:
        return views
    stored = await selection.set_flags(changes)
    return [(seq, stored.get(v.uid, v)) for seq, v in views]


async def _fetch_one(
    server: "Connection", seq: int, view: fetch.View, items: list, uid: bool, need: fetch.Need,
    cached: dict[str, bytes] | None = None,
) -> bool:
    """Send one message's response; False when it was expunged before it could be read."""
    try:
        stored = await _selection(server).folder.open_message(view.uid)
    except MessageGone:
        return False
    with stored:
        header = fetch.read_header(stored.file) if need is fetch.Need.HEADER else None
        whole = fetch.read_whole(stored.file) if need is fetch.Need.WHOLE else None
        for piece in fetch.render(seq, view, items, uid, header, whole, cached):
            if isinstance(piece, bytes):
                server.write(piece)
                continue
            for chunk in fetch.span_chunks(stored.file, piece):
                server.write(chunk)
                await server.drain()
    return True


async def store_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """STORE (RFC 3501 6.4.6) and RFC 7162 3.1.3's UNCHANGEDSINCE; refused in a mailbox opened with EXAMINE."""
    messages, by_uid = _messages(server, args, uid)
    args.space()
    unchanged_since = condstore.unchanged_since(args, server)
    item = args.atom().upper()
    args.space()
    flags = args.flags()
    args.end()
    selection = _selection(server)
    _check_range(selection, messages, by_uid)
    if not selection.writeable:
        raise no(READ_ONLY)
    silent = item.endswith(b".SILENT")
    item = item.removesuffix(b".SILENT")
    if item not in (b"FLAGS", b"+FLAGS", b"-FLAGS"):  # RFC 3501 9: store-att-flags
        raise bad(b"Invalid STORE data item")
    mode = {b"+": 1, b"-": -1}.get(item[:1], 0)
    changed, gone, modified = await selection.store(messages, flags, mode, by_uid, unchanged_since)
    if not silent or server.modes.condstore:
        for seq, view in changed:
            # RFC 3501 6.4.8: UID STORE responses include the UID.
            server.untagged(selection.flags_update(seq, view, with_uid=uid, silent=silent))
    if modified:  # RFC 7162 3.1.3
        numbers = sorted(u if uid else seq for seq, u in modified)
        return Result(OK, b"[MODIFIED " + uid_set(numbers) + b"] Conditional STORE failed")
    if gone:
        return Result(NO, EXPUNGE_ISSUED)
    return Result(OK, b"STORE completed")


async def _copy(
    server: "Connection", args: Arguments, uid: bool, adds: bool = True
) -> tuple["Selection", "Folder", list[tuple[int, int]]]:
    """COPY's and MOVE's common half: the messages copied durably, ``(source UID, new UID)`` pairs.

    A copy that *adds* to the user's quota usage must fit it (RFC 9208 4.3).
    """
    messages, by_uid = _messages(server, args, uid)
    args.space()
    name = args.mailbox()
    args.end()
    selection = _selection(server)
    _check_range(selection, messages, by_uid)
    target = await open_folder(server, name, TRYCREATE)
    await server.sync()  # copying out of a folder deleted meanwhile would "succeed" empty
    chosen = selection.select(messages, by_uid)
    if adds:
        present = selection.views(chosen)[0]  # wire sizes: at least what the copies take on disk
        await require_room(server, sum(view.size for _, view in present), len(present))
    pairs = await selection.folder.copy([u for _, u in chosen], target)
    learner = server.ctx.spam_learner
    if learner is not None and server.account is not None:  # into or out of Junk teaches rspamd
        learner.copied(server.account.user, selection.folder, target, [new for _, new in pairs])
    return selection, target, pairs


def _copyuid(target: "Folder", pairs: list[tuple[int, int]]) -> bytes:
    """``[COPYUID ...] `` for *pairs*, or nothing when none was copied (a uid-set needs a UID)."""
    if not pairs:
        return b""
    source, copies = uid_set([s for s, _ in pairs]), uid_set([d for _, d in pairs])
    return b"[COPYUID %d %s %s] " % (target.uidvalidity, source, copies)


async def copy_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """COPY (RFC 3501 6.4.7): ``[TRYCREATE]`` when the target is missing, ``[COPYUID]`` (RFC 4315 3)."""
    _, target, pairs = await _copy(server, args, uid)
    return Result(OK, _copyuid(target, pairs) + b"COPY completed")


async def move_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """MOVE (RFC 6851 3.1): copy durably, then expunge what was copied, never the rest.

    The copies are fsynced and have their UIDs before a source file is
    removed, so a failure anywhere leaves every message in the source, or
    in both folders, never in neither.  RFC 6851 3.3: ``[COPYUID]`` goes in
    an untagged OK before the EXPUNGE responses.
    """
    if not _selection(server).writeable:
        raise no(READ_ONLY)  # the originals could not be expunged
    selection, target, pairs = await _copy(server, args, uid, adds=False)  # one quota root: it frees what it takes
    if pairs:
        server.untagged(b"OK " + _copyuid(target, pairs) + b"Moved")
        for line in await selection.remove([s for s, _ in pairs]):
            server.untagged(line)
    return Result(OK, b"MOVE completed")


async def expunge_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """EXPUNGE (RFC 3501 6.4.3) and UID EXPUNGE (RFC 4315 2.1)."""
    messages = args.sequence_set() if uid else None
    args.end()
    selection = _selection(server)
    if not selection.writeable:
        raise no(READ_ONLY)
    await server.sync()
    for line in await selection.expunge(messages):
        server.untagged(line)
    if server.modes.qresync:  # RFC 7162 3.2.7: the client learns the modseq of what it just did
        return Result(OK, b"[HIGHESTMODSEQ %d] EXPUNGE completed" % selection.folder.highest_modseq)
    return Result(OK, b"EXPUNGE completed")


async def do_CLOSE(server: "Connection", args: Arguments) -> Result:
    """CLOSE (RFC 3501 6.4.2): silent expunge unless EXAMINEd, then deselect."""
    args.end()
    selection = _selection(server)
    if selection.writeable:
        await server.sync()
        await selection.expunge()
    server.deselect()
    return Result(OK, b"CLOSE completed")


async def do_UNSELECT(server: "Connection", args: Arguments) -> Result:
    """UNSELECT (RFC 3691 2): CLOSE without the expunge."""
    args.end()
    server.deselect()
    return Result(OK, b"UNSELECT completed")


async def do_CHECK(server: "Connection", args: Arguments) -> Result:
    """CHECK (RFC 3501 6.4.1): the store is always durable; just resync."""
    args.end()
    await server.sync()
    return Result(OK, b"CHECK completed")


_UID_COMMANDS: dict[bytes, Callable[..., Awaitable[Result]]] = {
    b"FETCH": fetch_command,
    b"STORE": store_command,
    b"SEARCH": search_command,
    b"SORT": sort_command,
    b"THREAD": thread_command,
    b"COPY": copy_command,
    b"MOVE": move_command,
    b"EXPUNGE": expunge_command,
}


async def do_UID(server: "Connection", args: Arguments) -> Result:
    """UID COPY/FETCH/STORE/SEARCH (RFC 3501 6.4.8), UID EXPUNGE (RFC 4315 2.1), UID MOVE (RFC 6851 3.2),
    UID SORT and UID THREAD (RFC 5256 3, 4)."""
    command = args.atom().upper()
    handler = _UID_COMMANDS.get(command)
    if handler is None:
        raise syntax(b"Unknown UID command")
    if not args.more():
        if command == b"EXPUNGE":
            raise bad(b"UID EXPUNGE needs a UID set; EXPUNGE takes no arguments")
        raise syntax(b"Missing argument")
    args.space()
    return await handler(server, args, uid=True)


COMMANDS: dict[bytes, Callable[["Connection", Arguments], Awaitable[Result]]] = {
    **_UID_COMMANDS,  # each also runs without UID
    b"CLOSE": do_CLOSE,
    b"UNSELECT": do_UNSELECT,
    b"CHECK": do_CHECK,
    b"UID": do_UID,
}

"""SEARCH (RFC 3501 6.4.4, RFC 4731 RETURN, RFC 5182 SAVE), SORT and THREAD (RFC 5256).

All three read a search program, run it off the reactor thread in the
search pool (:func:`.search.run_search`) and answer with numbers; SORT
and THREAD then read the header fields they order by
(:func:`.sortfields.message_fields`, once per matching message; none for
a SORT by ARRIVAL or SIZE alone) and order
them in the same trip to the pool, so the reactor thread only formats
the answer.  Header keys, BODY/TEXT and the SORT fields are answered from
the user's message cache where it can (:class:`.msgcache.Lookup`).
"""

from __future__ import annotations

from itertools import repeat
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

from mailsrv.imap import condstore, thread
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.candidates import Candidates
from mailsrv.imap.esearch import ReturnOptions, read_return
from mailsrv.imap.fetch import View
from mailsrv.imap.msgcache import Lookup, header_sets
from mailsrv.imap.responses import OK, CommandError, Result, bad, no, syntax
from mailsrv.imap.search import (
    CONTENT, READS_FILES, HeaderTests, Message, SearchError, compile_search, parse_search, run_search,
)
from mailsrv.imap.sort import Hit, needs_fields, read_criteria, sort_hits
from mailsrv.imap.sortfields import UNREAD, message_fields

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection
    from mailsrv.imap.selection import Selection

#: The charsets search strings may be in (RFC 3501 6.4.4: US-ASCII at least).
CHARSETS = (b"UTF-8", b"US-ASCII")
#: THREAD algorithms (RFC 5256 3, 4), as advertised.
THREAD_ALGORITHMS: dict[bytes, Callable[[Sequence[Hit], bool], list[thread.Node]]] = {
    b"ORDEREDSUBJECT": thread.ordered_subject,
    b"REFERENCES": thread.references,
}
#: A SEARCH that reads no message file runs on the reactor thread up to
#: this many messages (a few milliseconds), where a trip to the search pool
#: would cost more than the search itself; bigger folders go to the pool.
INLINE_LIMIT = 2000
CAPABILITIES = [b"ESEARCH", b"SEARCHRES", b"SORT"] + [b"THREAD=" + name for name in THREAD_ALGORITHMS]


def _selection(server: "Connection") -> "Selection":
    assert server.selection is not None
    return server.selection


def _invalid_search(error: SearchError) -> CommandError:
    return bad(b"Invalid search: " + str(error).encode("ascii", "replace"))


def _charset(server: "Connection", args: Arguments) -> bytes:
    """The charset of SORT and THREAD, required there (RFC 5256 3), and the space after it.

    After ``ENABLE UTF8=ACCEPT`` the strings are UTF-8 whatever it says, so any other is BAD
    (RFC 6855 3, erratum 4029).
    """
    charset = args.astring()
    if server.modes.utf8_accept and charset.upper() != b"UTF-8":
        raise bad(b"Only CHARSET UTF-8 after ENABLE UTF8=ACCEPT")
    if not args.more():
        raise syntax(b"Search criteria missing")
    args.space()
    return charset


async def _matching(
    server: "Connection", args: Arguments, charset: bytes | None, then: Callable[[list[Message]], Any] = list,
    used: set[bytes] | None = None,
) -> Any:
    """*then* applied to the messages the rest of *args* matches, both in the search pool.

    *used* collects the keys that change the response (``MODSEQ``).  A
    plain SEARCH (*then* is ``list``) that reads no file is answered from
    the session's views alone, without a Message per message; so is one
    whose content keys are all FROM, TO, CC, BCC or SUBJECT, once the
    message cache gave each test's keys (:func:`.msgcache.header_sets`).
    """
    try:
        query = parse_search(args.rest())
    except SearchError as e:
        raise _invalid_search(e) from None
    if charset is not None and charset.upper() not in CHARSETS:
        raise no(b"[BADCHARSET (" + b" ".join(CHARSETS) + b")] Unsupported charset")
    selection = _selection(server)
    await server.sync()
    count = selection.exists
    used = set() if used is None else used
    headers = HeaderTests()
    try:
        matches = compile_search(query, count, selection.uid_of(count) if count else 0, selection.saved, used, headers)
    except SearchError as e:
        raise _invalid_search(e) from None
    views = selection.all_views()
    if then is list and CONTENT not in used:
        if len(views) <= INLINE_LIMIT:
            return _flag_hits(views, matches)
        return await server.ctx.workers.search.run(lambda: _flag_hits(views, matches))
    candidates = Candidates(selection.folder, views)
    cancelled = lambda: server.closing  # noqa: E731
    cache = selection.folder.cache
    by_key = then is list and READS_FILES not in used and cache is not None

    def job() -> Any:
        if by_key:
            assert cache is not None
            answers = header_sets(cache, candidates, headers.wanted, cancelled)
            if answers is not None:
                headers.answers.update(answers)
                return _flag_hits(views, matches)
        messages = candidates.messages()
        if cache is None:
            return then(run_search(messages, matches, cancelled))
        lookup = Lookup(cache, messages, cancelled)
        for message in messages:
            message.cache = lookup
        try:
            return then(run_search(messages, matches, cancelled))
        finally:
            # The messages and their lookup refer to each other: once the cycle is
            # broken, reference counting frees them at once, not a later collection.
            for message in messages:
                message.cache = None

    return await server.ctx.workers.search.run(job)


class Found(NamedTuple):
    """A message a plain SEARCH found, as much of it as the answer needs."""

    seq: int
    uid: int
    modseq: int


def _flag_hits(views: list[tuple[int, View]], matches: Callable[[int, Any], bool]) -> list[Found]:
    """The views *matches* accepts (the program reads no file, or only :class:`HeaderTests`' answers)."""
    return [Found(seq, v.uid, v.modseq) for seq, v in views if matches(seq, v)]


def _with_fields(hits: list[Message]) -> list[Hit]:
    if hits and hits[0].cache is not None:
        hits[0].cache.sorting(hits)
    return [(message, message_fields(message)) for message in hits]


def _without_fields(hits: list[Message]) -> list[Hit]:
    """For criteria that never look at the fields (:func:`.sort.needs_fields`): none read, :data:`UNREAD` each."""
    return list(zip(hits, repeat(UNREAD)))


async def search_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """SEARCH; ``* SEARCH`` even with no match, ``* ESEARCH`` when RETURN asks (RFC 4731 3.1).

    An IMAP4rev2 session has no ``* SEARCH``: no RETURN means ``RETURN (ALL)`` (RFC 9051 6.4.4).
    """
    if not args.more():
        raise syntax(b"Missing search criteria")  # RFC 3501 6.4.4: at least one key
    options = read_return(args)
    if options is None and server.modes.rev2:
        options = ReturnOptions(frozenset())
    charset = None
    if args.expect(b"CHARSET "):
        if server.modes.utf8_accept:
            raise bad(b"No CHARSET after ENABLE UTF8=ACCEPT: strings are UTF-8")  # RFC 6855 3
        charset = args.astring()
        if not args.more():
            raise syntax(b"search criteria missing")
        args.space()
    selection = _selection(server)
    used: set[bytes] = set()
    try:
        hits = await _matching(server, args, charset, used=used)
    except BaseException:
        if options is not None and options.save:
            selection.saved = frozenset()  # RFC 5182 2.1: a failed SEARCH with SAVE empties $
        raise
    numbers = [m.uid if uid else m.seq for m in hits]
    modseqs = None
    if b"MODSEQ" in used:
        condstore.enabled_by(server)  # RFC 7162 3.1.8
        modseqs = [m.modseq for m in hits]
    if options is None:
        words = [b"SEARCH"] + [b"%d" % n for n in numbers]
        if modseqs:  # RFC 7162 3.1.5: the highest modseq of the messages found
            words.append(b"(MODSEQ %d)" % max(modseqs))
        server.untagged(b" ".join(words))
        return Result(OK, b"SEARCH completed")
    if options.save:
        kept = set(options.saved(numbers))
        selection.saved = frozenset(m.uid for m, n in zip(hits, numbers) if n in kept)
    response = options.response(server.tag, uid, numbers, modseqs)
    if response is not None:
        server.untagged(response)
    return Result(OK, b"SEARCH completed" + (b", result saved" if options.save else b""))


async def sort_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """SORT (RFC 5256 3): ``* SORT`` with the matching messages in the order asked."""
    criteria = read_criteria(args)
    args.space()
    charset = _charset(server, args)
    paired = _with_fields if needs_fields(criteria) else _without_fields
    hits = await _matching(server, args, charset, lambda found: sort_hits(paired(found), criteria))
    server.untagged(b" ".join([b"SORT"] + [b"%d" % (m.uid if uid else m.seq) for m, _ in hits]))
    return Result(OK, b"SORT completed")


async def thread_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """THREAD (RFC 5256 3, 4): ``* THREAD`` with the matching messages' threads."""
    algorithm = THREAD_ALGORITHMS.get(args.atom().upper())
    if algorithm is None:
        raise bad(b"Unknown THREAD algorithm")
    args.space()
    charset = _charset(server, args)
    data = await _matching(server, args, charset, lambda found: thread.render(algorithm(_with_fields(found), uid)))
    server.untagged(b"THREAD " + data if data else b"THREAD")
    return Result(OK, b"THREAD completed")

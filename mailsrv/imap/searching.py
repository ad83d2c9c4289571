"""SEARCH (RFC 3501 6.4.4, RFC 4731 RETURN, RFC 5182 SAVE), SORT and THREAD (RFC 5256).

All three read a search program, run it off the reactor thread in the
search pool (:func:`.search.run_search`) and answer with numbers; SORT
and THREAD then read the header fields they order by (none for a SORT
by ARRIVAL or SIZE alone: from the message cache in one query when the
search read no file, :class:`.msgcache.FoundFields`, else
:func:`.sortfields.message_fields` per matching message) and order them
in the same trip to the pool, so the reactor thread only makes the
session's views, a slice per turn, and formats the answer.  Header keys,
BODY/TEXT and the SORT fields are answered from the user's message cache
where it can (:class:`.msgcache.Lookup`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from mailsrv.imap import condstore, thread
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.candidates import Candidates
from mailsrv.imap.esearch import ReturnOptions, read_return
from mailsrv.imap.hits import Hits
from mailsrv.imap.msgcache import FoundFields, Lookup, header_sets, text_sets
from mailsrv.imap.responses import OK, CommandError, Result, bad, no, syntax
from mailsrv.imap.search import (
    CONTENT, READS_FILES, KeySetTests, Message, SearchError, compile_search, parse_search, run_search,
)
from mailsrv.imap.selection import SLICE
from mailsrv.imap.sort import Hit, read_criteria, sort_order
from mailsrv.imap.sortfields import FieldSource, MessageFields, message_fields
from mailsrv.store.bulk import collector_paused

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


#: What SORT and THREAD do with the hits, in the search pool: the hits, and where their header
#: fields come from (read only if the answer needs them).
Then = Callable[[Hits, FieldSource], Any]


async def _matching(
    server: "Connection", args: Arguments, charset: bytes | None, then: Then | None = None,
    used: set[bytes] | None = None,
) -> Any:
    """The messages the rest of *args* matches (*then* applied to them), found in the search pool.

    *used* collects the keys that change the response (``MODSEQ``).  A
    search that reads no file is answered from the session's views alone,
    without a :class:`~.search.Message` per message (the views are
    enough); so is one whose content keys are all FROM, TO, CC, BCC,
    SUBJECT, BODY or TEXT, once the message cache gave each test's keys
    (:func:`.msgcache.header_sets`, :func:`.msgcache.text_sets`).  The views of a big folder are made
    a slice per reactor turn (:meth:`.Selection.view_slices`).
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
    keyed = KeySetTests()
    try:
        matches = compile_search(query, count, selection.uid_of(count) if count else 0, selection.saved, used, keyed)
    except SearchError as e:
        raise _invalid_search(e) from None
    from_views = CONTENT not in used
    if then is None and from_views and count <= INLINE_LIMIT:
        hits = Hits()
        for seqs, views in selection.view_slices():
            hits.gather(seqs, views, matches)
        return hits
    candidates = Candidates(selection.folder)
    for n, (seqs, views) in enumerate(selection.view_slices()):
        if n:
            await server.yield_turn()
        candidates.add(seqs, views)
    cancelled = lambda: server.closing  # noqa: E731
    cache = selection.folder.cache
    by_key = READS_FILES not in used and cache is not None

    def found(hits: Hits) -> Any:
        if then is None:
            return hits
        return then(hits, FoundFields(cache, candidates, hits, cancelled))

    def job() -> Any:
        if from_views:
            return found(Hits().gather(candidates.seqs, candidates.views, matches))
        if by_key:
            assert cache is not None
            answers = header_sets(cache, candidates, keyed.fields, cancelled) if keyed.fields else {}
            texts = text_sets(cache, candidates, keyed.texts, cancelled) if keyed.texts and answers is not None else {}
            if answers is not None and texts is not None:
                keyed.answers.update(answers)
                keyed.answers.update(texts)
                return found(Hits().gather(candidates.seqs, candidates.views, matches))
        # A Message per candidate, 100,000 of them, would set off collections of the
        # whole heap that hold the GIL, and so every session, a tenth of a second
        # each; they hold no cycle but the one broken below, so the collector waits,
        # and run_search collects the young objects now and then.
        with collector_paused():
            messages = candidates.messages()
            if cache is not None:
                lookup = Lookup(cache, messages, cancelled)
                for message in messages:
                    message.cache = lookup
            try:
                return _finish(run_search(messages, matches, cancelled), then)
            finally:
                # The messages and their lookup refer to each other: once the cycle is
                # broken, reference counting frees them at once, not a later collection;
                # a slice at a time, as freeing 100,000 in one call holds the GIL throughout.
                for message in messages:
                    message.cache = None
                while messages:
                    del messages[-SLICE:]

    return await server.ctx.workers.search.run(job)


class _ReadFields(FieldSource):
    """The fields of messages a search read: from their lookup in the message cache, else their files."""

    def __init__(self, messages: list[Message]) -> None:
        self._messages = messages

    def fields(self) -> Iterator[MessageFields]:
        if self._messages and self._messages[0].cache is not None:
            self._messages[0].cache.sorting(self._messages)
        return (message_fields(message) for message in self._messages)


def _finish(messages: list[Message], then: Then | None) -> Any:
    """The hits of the messages a search read, *then* applied."""
    hits = Hits()
    for message in messages:
        hits.add(message.seq, message)
    return hits if then is None else then(hits, _ReadFields(messages))


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
    numbers = hits.numbers(uid)
    modseqs = None
    if b"MODSEQ" in used:
        condstore.enabled_by(server)  # RFC 7162 3.1.8
        modseqs = hits.modseqs
    if options is None:
        words = [b"SEARCH"] + [b"%d" % n for n in numbers]
        if modseqs:  # RFC 7162 3.1.5: the highest modseq of the messages found
            words.append(b"(MODSEQ %d)" % max(modseqs))
        server.untagged(b" ".join(words))
        return Result(OK, b"SEARCH completed")
    if options.save:
        kept = set(options.saved(numbers))
        selection.saved = frozenset(u for u, n in zip(hits.uids, numbers) if n in kept)
    response = options.response(server.tag, uid, numbers, modseqs)
    if response is not None:
        server.untagged(response)
    return Result(OK, b"SEARCH completed" + (b", result saved" if options.save else b""))


async def sort_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """SORT (RFC 5256 3): ``* SORT`` with the matching messages in the order asked.

    The pool gives back the response itself, the numbers in order (100,000
    of them are 20 ms of formatting that the reactor is spared); a SORT by
    ARRIVAL or SIZE alone reads no header field, and one by header keys
    reads those keys alone (:func:`.sort.sort_order`).
    """
    criteria = read_criteria(args)
    args.space()
    charset = _charset(server, args)

    def ordered(hits: Hits, source: FieldSource) -> bytes:
        numbers = hits.numbers(uid)
        return b" ".join([b"SORT"] + [b"%d" % numbers[i] for i in sort_order(hits, criteria, source)])

    server.untagged(await _matching(server, args, charset, ordered))
    return Result(OK, b"SORT completed")


async def thread_command(server: "Connection", args: Arguments, uid: bool = False) -> Result:
    """THREAD (RFC 5256 3, 4): ``* THREAD`` with the matching messages' threads."""
    algorithm = THREAD_ALGORITHMS.get(args.atom().upper())
    if algorithm is None:
        raise bad(b"Unknown THREAD algorithm")
    args.space()
    charset = _charset(server, args)

    def threads(hits: Hits, source: FieldSource) -> bytes:
        # The nodes link both ways: made with the collector paused and unlinked at the end, none is
        # ever walked (reading the header fields makes no cycle).
        with collector_paused():
            roots = algorithm(list(zip(hits.numbered(), source.fields())), uid)
            try:
                return thread.render(roots)
            finally:
                thread.unlink(roots)

    data = await _matching(server, args, charset, threads)
    server.untagged(b"THREAD " + data if data else b"THREAD")
    return Result(OK, b"THREAD completed")

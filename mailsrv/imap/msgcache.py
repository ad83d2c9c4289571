"""What IMAP keeps in the user's message cache (:mod:`mailsrv.store.cache`), and how it reads it.

Per Maildir key: the ENVELOPE, BODYSTRUCTURE and BODY responses as sent,
the fields SORT and THREAD compare (:func:`.sortfields.dump_fields`), and
the decoded header fields SEARCH compares (FROM, TO, CC, BCC, SUBJECT, as
:func:`.search.decoded_header` gives them); and in the full-text table the
header and decoded body texts BODY and TEXT search.  Every value is made by
the same function the uncached path uses, from the same octets, so answers
are the same either way.

Everything here blocks and runs in the search pool.  Rows are made when a
message is first parsed, by whichever FETCH, SEARCH, SORT or THREAD needs
them; the full-text table is filled by the first BODY or TEXT search that
finds messages missing from it, :data:`INDEX_BATCH` messages per
transaction.  A message whose file is gone (expunged meanwhile) is never
written: a key can live on in another folder (COPY's hard links), and an
empty row would lie about it there.  When the cache fails, the answers here
are None and the caller reads the message instead.

A SEARCH whose content keys are all header keys FROM ... SUBJECT, BODY
or TEXT is answered as key sets (:func:`header_sets`, :func:`text_sets`:
one query per key), so it makes no Message for a message whose row
exists or whose texts are indexed; FETCH makes one only for a message
whose row lacks what it asks (:func:`fetch_items`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator, Sequence

from mailsrv.imap.candidates import Candidates
from mailsrv.imap.hits import Hits
from mailsrv.imap.search import Message, decoded_body, decoded_header, head_text
from mailsrv.imap.sortfields import (
    FieldSource, MessageFields, dump_fields, header_fields, key_getter, load_fields, message_fields,
)
from mailsrv.imap.structure import body_structure, encode, envelope
from mailsrv.message.mime import Entity
from mailsrv.store.cache import HEADER_FIELD_COLUMNS, SORT_KEY_COLUMNS, MessageCache

#: SEARCH's header keys (field name) -> the column holding their decoded text.
HEADER_FIELDS = dict(zip(("from", "to", "cc", "bcc", "subject"), HEADER_FIELD_COLUMNS))
#: Messages parsed and added to the full-text table per transaction.
INDEX_BATCH = 100
#: Rows made before they are stored: a first SORT of 100,000 messages held all of them until
#: the end (tens of MiB, and containers the cyclic collector walked over and over).
PUT_BATCH = 1000


def _utf8(text: str) -> bytes:
    """Text as the cache compares it: UTF-8, so a substring of the text is a substring of the octets."""
    return text.encode("utf-8", "surrogatepass")


def _envelope(message: Message) -> dict[str, object]:
    return {"envelope": encode(envelope(Entity(message.header)))}


#: The :class:`.MessageFields` SORT compares -> the column the cache keeps each in.
_SORT_KEYS = dict(zip(("from_key", "to_key", "cc_key", "subject_key", "sent"), SORT_KEY_COLUMNS))
#: The column whose value says a row has the sort keys: ``s_sent`` may be NULL (an undated message).
_SORT_MARK = "s_from"


def _fields(message: Message) -> dict[str, object]:
    """The SORT and THREAD fields, and apart from them the keys SORT compares (``s_sent`` NULL: no usable date)."""
    fields, dated = header_fields(message.header)
    row: dict[str, object] = {column: getattr(fields, name) for name, column in _SORT_KEYS.items()}
    if not dated:
        row["s_sent"] = None
    row["fields"] = dump_fields(fields, dated)
    return row


def _header_fields(message: Message) -> dict[str, object]:
    """The decoded header fields, and which of them the message has (an absent one matches nothing)."""
    row: dict[str, object] = {}
    present = 0
    for bit, (name, column) in enumerate(HEADER_FIELDS.items()):
        value = decoded_header(message.header, name)
        if value is not None:
            present |= 1 << bit
        row[column] = b"" if value is None else _utf8(value)
    row["h_present"] = present
    return row


def _structure(message: Message) -> dict[str, object]:
    entity = message.entity
    return {"bodystructure": encode(body_structure(entity, True)), "body": encode(body_structure(entity, False))}


#: Columns made together: the first column of each group (never NULL once made) -> how they are made.
#: The header's groups read the header section only; the structure reads the whole message.  The sort
#: keys are a group of their own (a file an earlier release wrote has ``fields`` without them), made
#: with the fields.
_GROUPS: dict[str, Callable[[Message], dict[str, object]]] = {
    "envelope": _envelope, "fields": _fields, "h_present": _header_fields, "bodystructure": _structure,
    "s_from": _fields,
}
#: Each column -> its group.
_GROUP_OF = {"envelope": "envelope", "fields": "fields", "bodystructure": "bodystructure", "body": "bodystructure",
             "h_present": "h_present", **{column: "h_present" for column in HEADER_FIELD_COLUMNS},
             **{column: _SORT_MARK for column in SORT_KEY_COLUMNS}}


def filled(
    cache: MessageCache, keys: Sequence[str], columns: Sequence[str], message_at: Callable[[int], Message],
    cancelled: Callable[[], bool] = lambda: False,
) -> tuple[dict[str, tuple], bool]:
    """Key -> the values of *columns* for *keys*, the missing groups made from the messages' files and stored.

    ``message_at(i)`` is the message of ``keys[i]``, asked for only when
    its row lacks a group, and what is made is stored :data:`PUT_BATCH`
    rows at a time.  A message whose file is gone is left out.  Also
    says whether all that was made was stored (a failed cache still gives the
    values).  Values are tuples, the cache's own where nothing was missing:
    a search over 100,000 messages holds one small tuple per message, no more.
    """
    groups = sorted({_GROUP_OF[column] for column in columns})
    wanted = list(columns) + [group for group in groups if group not in columns]
    marks = [wanted.index(group) for group in groups]
    found = cache.get(keys, wanted)
    out: dict[str, tuple] = {}
    fresh: dict[str, dict[str, object]] = {}
    stored = True
    for index, key in enumerate(keys):
        values = found.get(key)
        if values is None or any(values[i] is None for i in marks):
            if cancelled():
                continue
            missing = groups if values is None else [g for g, i in zip(groups, marks) if values[i] is None]
            message = message_at(index)
            made: dict[str, object] = {}
            for make in dict.fromkeys(_GROUPS[group] for group in missing):
                made.update(make(message))
            message.__dict__.pop("header", None)
            message.__dict__.pop("entity", None)
            if message.missing:
                continue
            fresh[key] = made
            if len(fresh) >= PUT_BATCH:
                stored = cache.put(fresh) and stored
                fresh = {}
            old = values or (None,) * len(wanted)
            values = tuple(made.get(column, old[i]) for i, column in enumerate(wanted))
        out[key] = values if len(values) == len(columns) else values[: len(columns)]
    if fresh:
        stored = cache.put(fresh) and stored
    return out, stored


def fetch_items(cache: MessageCache, candidates: Candidates, columns: Sequence[str]) -> dict[int, dict[str, bytes]]:
    """UID -> column -> value, for FETCH (see :func:`filled`); a Message only for a message the cache lacks."""
    out, _ = filled(cache, candidates.keys(), columns, candidates.message)
    return {view.uid: dict(zip(columns, out[view.key])) for view in candidates.views if view.key in out}


def header_sets(
    cache: MessageCache, candidates: Candidates, wanted: Iterable[tuple[str, str]], cancelled: Callable[[], bool],
) -> dict[tuple[str, str], set[str]] | None:
    """For each ``(field, needle)`` of *wanted*: the keys whose decoded field holds the needle.

    The rows every candidate lacks are made first (its Message made and
    parsed for that alone); a message gone meanwhile has none, and so
    passes no test, as it would when read (an empty message has no
    field).  One query per test after that, none per message.  None when
    the cache cannot answer for every candidate: the caller reads them.
    """
    keys = candidates.keys()
    lacking = cache.lacking("h_present", keys)
    if lacking is None:
        return None
    if lacking:
        _, stored = filled(cache, [keys[i] for i in lacking], ("h_present",),
                           lambda index: candidates.message(lacking[index]), cancelled)
        if not stored or cancelled():
            return None
    answers: dict[tuple[str, str], set[str]] = {}
    for name, needle in wanted:
        found = cache.matching(HEADER_FIELDS[name], _utf8(needle))
        if found is None:
            return None
        answers[name, needle] = found
    return answers


def text_sets(
    cache: MessageCache, candidates: Candidates, wanted: Iterable[tuple[str, bool]], cancelled: Callable[[], bool],
) -> dict[tuple[str, bool], set[str]] | None:
    """For each ``(needle, with_header)`` of *wanted*: the keys whose texts hold the needle (BODY; TEXT with the header).

    The candidates missing from the full-text table are indexed first, a
    Message made and dropped for each of those alone (a SEARCH BODY of an
    indexed folder of 100,000 messages used to make all 100,000, some 60
    MiB at once); one whose file is gone passes no test, as when read.
    One query per test after that.  None when the cache cannot answer for
    every candidate: the caller reads them.
    """
    keys = candidates.keys()
    missing = cache.unindexed(keys)
    if missing is None:
        return None
    if missing:
        todo = set(missing)
        gone: set[str] = set()
        made = (candidates.message(index) for index, key in enumerate(keys) if key in todo)
        stored = cache.index(_texts_of(made, cancelled, gone))
        if cancelled() or not todo <= stored | gone:
            return None
    answers: dict[tuple[str, bool], set[str]] = {}
    for needle, with_header in wanted:
        found = _texts_holding(cache, needle, with_header)
        if found is None:
            return None
        answers[needle, with_header] = found
    return answers


def _texts_holding(cache: MessageCache, needle: str, with_header: bool) -> set[str] | None:
    """The indexed keys whose body (and header, *with_header*) texts hold *needle*; None if the cache failed."""
    def confirm(head: str, body: str) -> bool:
        return needle in body or (with_header and needle in head)

    return cache.texts_matching("head body" if with_header else "body", needle, confirm)


def _texts_of(
    messages: Iterable[Message], cancelled: Callable[[], bool], gone: set[str] | None = None,
) -> Iterator[list[tuple[str, str, str]]]:
    """The full-text rows of *messages*, :data:`INDEX_BATCH` at a time, until cancelled.

    Each message's parse is dropped once its texts are made.  The keys of
    messages whose file is gone are added to *gone*.
    """
    seen: set[str] = set()
    batch: list[tuple[str, str, str]] = []
    for message in messages:
        if cancelled():
            return
        entity = message.entity
        texts = (message.key, head_text(entity.header), decoded_body(entity.raw))
        message.__dict__.pop("entity", None)
        if message.missing:
            if gone is not None:
                gone.add(message.key)
        elif message.key not in seen:
            batch.append(texts)
            seen.add(message.key)
        if len(batch) >= INDEX_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class FoundFields(FieldSource):
    """The fields of messages a search found from their views alone (no Message made for the search).

    One query for all of them; a Message is made only for a message
    whose row lacks what is asked (for every one when there is no cache).
    Once *cancelled*, it stops short.
    """

    def __init__(self, cache: MessageCache | None, candidates: Candidates, hits: Hits,
                 cancelled: Callable[[], bool]) -> None:
        self._cache = cache
        self._candidates = candidates
        self._hits = hits
        self._cancelled = cancelled
        self._position: dict[int, int] = {}

    def _message(self, index: int) -> Message:
        """The *index*-th hit as a Message."""
        if not self._position:
            self._position.update((seq, n) for n, seq in enumerate(self._candidates.seqs))
        return self._candidates.message(self._position[self._hits.seqs[index]])

    def _rows(self, columns: Sequence[str]) -> Iterator[tuple[int, tuple | None]]:
        """Each hit's index and its values of *columns*; None where the cache has none."""
        hits = self._hits
        values = {} if self._cache is None else filled(self._cache, hits.keys, columns, self._message,
                                                        self._cancelled)[0]
        for index, key in enumerate(hits.keys):
            row = values.get(key)
            if row is None and self._cancelled():
                return
            yield index, row

    def fields(self) -> Iterator[MessageFields]:
        dates = self._hits.internaldates
        for index, row in self._rows(("fields",)):
            yield message_fields(self._message(index)) if row is None else load_fields(row[0], dates[index])

    def columns(self, names: Sequence[str]) -> list[list]:
        """The keys from their own columns, a list each (an undated message's ``sent`` is its internal date,
        RFC 5256 2.2); the rows that lack them made from the messages, as :func:`filled` makes them."""
        if self._cache is None:
            return super().columns(names)
        wanted = [_SORT_KEYS[name] for name in names]
        asked = wanted if _SORT_MARK in wanted else wanted + [_SORT_MARK]
        found = self._cache.columns(self._hits.keys, asked)
        if found is None:  # the cache failed: every message is read
            return super().columns(names)
        lacking = [i for i, value in enumerate(found[asked.index(_SORT_MARK)]) if value is None]
        if lacking:
            keys = self._hits.keys
            rows, _ = filled(self._cache, [keys[i] for i in lacking], asked,
                             lambda n: self._message(lacking[n]), self._cancelled)
            get = key_getter(names)
            for i in lacking:
                row = rows.get(keys[i])
                if row is None:
                    if self._cancelled():
                        found = [column[:i] for column in found]
                        break
                    row = get(message_fields(self._message(i)))  # the names' values: the mark is not returned
                for column, value in zip(found, row):
                    column[i] = value
        if "sent" in names:
            at = names.index("sent")
            found[at] = [date if sent is None else sent for sent, date in zip(found[at], self._hits.internaldates)]
        return found[: len(names)]


def _filled_for(
    cache: MessageCache, messages: Sequence[Message], columns: Sequence[str], cancelled: Callable[[], bool],
) -> tuple[dict[str, tuple], bool]:
    """:func:`filled` for messages already made (a search's)."""
    return filled(cache, [m.key for m in messages], columns, messages.__getitem__, cancelled)


class Lookup:
    """What one SEARCH, SORT or THREAD learns from the cache, for all of its messages at once.

    The first question of a kind fills the cache for every message of the
    search (parsing those it lacks) and asks SQLite once; the answers for
    each message are then set lookups.  Each method answers None where the
    cache cannot tell (it failed, or the message could not be read): the
    caller then reads the message itself.
    """

    def __init__(self, cache: MessageCache, messages: Sequence[Message], cancelled: Callable[[], bool]) -> None:
        self._cache = cache
        self._messages = messages
        self._cancelled = cancelled
        self._rows: set[str] | None = None  # keys with a row
        self._indexed: set[str] | None = None  # keys in the full-text table
        self._headers: dict[tuple[str, str], set[str] | None] = {}
        self._texts: dict[tuple[str, bool], set[str] | None] = {}
        self._fields: dict[str, tuple] | None = None
        self._sorted: Sequence[Message] = messages

    def sorting(self, hits: Sequence[Message]) -> None:
        """SORT or THREAD asks for the fields of these messages only (the ones the search matched)."""
        self._sorted = hits

    def _with_rows(self) -> set[str]:
        """The keys whose header fields are cached, once every message that lacked them was parsed."""
        if self._rows is None:
            out, stored = _filled_for(self._cache, self._messages, ("h_present",), self._cancelled)
            self._rows = set(out) if stored else set()
        return self._rows

    def header_has(self, message: Message, name: str, needle: str) -> bool | None:
        """Whether the decoded *name* fields of *message* hold *needle* (FROM, TO ... SUBJECT, HEADER)."""
        column = HEADER_FIELDS.get(name)
        if column is None or message.key not in self._with_rows():
            return None
        if (column, needle) not in self._headers:
            self._headers[column, needle] = self._cache.matching(column, _utf8(needle))
        keys = self._headers[column, needle]
        return None if keys is None else message.key in keys

    def _with_texts(self) -> set[str]:
        """The keys in the full-text table, once the messages missing there were added."""
        if self._indexed is None:
            keys = [m.key for m in self._messages]
            missing = self._cache.unindexed(keys)
            if missing is None:
                self._indexed = set()
                return self._indexed
            wanted = set(missing)
            todo = [m for m in self._messages if m.key in wanted]
            self._indexed = (set(keys) - wanted) | self._cache.index(_texts_of(todo, self._cancelled))
        return self._indexed

    def text_has(self, message: Message, needle: str, with_header: bool) -> bool | None:
        """BODY (*with_header* False) or TEXT: whether the message's texts hold *needle*."""
        if message.key not in self._with_texts():
            return None
        if (needle, with_header) not in self._texts:
            self._texts[needle, with_header] = _texts_holding(self._cache, needle, with_header)
        keys = self._texts[needle, with_header]
        return None if keys is None else message.key in keys

    def fields(self, message: Message) -> MessageFields | None:
        """The SORT and THREAD fields of *message*."""
        if self._fields is None:
            self._fields = _filled_for(self._cache, self._sorted, ("fields",), self._cancelled)[0]
        values = self._fields.get(message.key)
        return None if values is None else load_fields(values[0], message.internaldate)

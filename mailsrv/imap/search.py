"""SEARCH keys (RFC 3501 6.4.4) compiled into a predicate over messages, and run.

Written because Twisted's search compares ``str`` headers with ``bytes``
keys (SUBJECT/FROM/... answer ``BAD``), searches only undecoded bodies, and
filters five messages per reactor turn on the reactor thread
(docs/twisted-notes.rst, "IMAP: SEARCH").  Text keys here are
case-insensitive substring matches on decoded text (RFC 2047 headers,
transfer-encoded and charset-encoded bodies), as 6.4.4 asks.

:func:`run_search` evaluates the predicate in the search thread pool, one
message at a time (a file is opened only when a key needs its content, and
dropped before the next), so a TEXT search over 30,000 messages neither
stalls other sessions nor holds the mailbox in memory.
"""

from __future__ import annotations

import datetime
import email
import email.utils
import gc
import re
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterator, Sequence

from dataclasses import dataclass
from functools import cached_property

from twisted.mail import imap4

from mailsrv.imap.command import Literal
from mailsrv.imap.fetch import read_header
from mailsrv.imap.responses import CommandError
from mailsrv.imap.sequences import parse_sequence_set
from mailsrv.imap.subject import decode_words
from mailsrv.imap.syntax import read_quoted
from mailsrv.message.headers import header_lines
from mailsrv.message.mime import Entity
from mailsrv.message.wire import to_wire

if TYPE_CHECKING:
    from mailsrv.imap.msgcache import Lookup


@dataclass
class Message:
    """One message as SEARCH tests it; its file is read only when a key needs the content.

    *path* and *find* locate the stored file from the search thread: *find*
    looks again when the file was renamed (a flag change) since the snapshot.
    *key* is its Maildir unique key and *cache* what the user's message
    cache knows of the messages searched with it (:mod:`.msgcache`);
    *missing* is set once a read found the file gone (expunged).
    """

    seq: int
    uid: int
    flags: frozenset[str]
    size: int
    internaldate: float
    path: str
    find: Callable[[], "str | None"]
    modseq: int = 0
    key: str = ""
    cache: "Lookup | None" = None
    missing: bool = False

    @cached_property
    def entity(self) -> Entity:
        """The parsed message (wire form); empty if it was expunged meanwhile."""
        return Entity(to_wire(self._read(lambda f: f.read())))

    @cached_property
    def header(self) -> bytes:
        """The wire-form header section alone (SORT, THREAD); empty if the message was expunged."""
        return self._read(read_header)

    def _read(self, read: Callable[[BinaryIO], bytes]) -> bytes:
        """*read* applied to the open file, found again if it was renamed; empty if it is gone."""
        path: str | None = self.path
        for moved in (False, True):
            if moved:
                path = self.find()
            if path is None:
                break
            try:
                with open(path, "rb") as f:
                    return read(f)
            except FileNotFoundError:
                continue
        self.missing = True
        return b""


#: A predicate over one message: (sequence number, message) -> matches.
Predicate = Callable[[int, Message], bool]

_SEQSET = re.compile(rb"[0-9*:,]+\Z")
#: Messages a search parses between two collections of the young objects (:func:`run_search`).
YOUNG_EVERY = 2000
_FLAG_KEYS = {
    b"ANSWERED": ("\\Answered", True), b"UNANSWERED": ("\\Answered", False),
    b"DELETED": ("\\Deleted", True), b"UNDELETED": ("\\Deleted", False),
    b"DRAFT": ("\\Draft", True), b"UNDRAFT": ("\\Draft", False),
    b"FLAGGED": ("\\Flagged", True), b"UNFLAGGED": ("\\Flagged", False),
    b"SEEN": ("\\Seen", True), b"UNSEEN": ("\\Seen", False),
    b"RECENT": ("\\Recent", True), b"OLD": ("\\Recent", False),
}
_HEADER_KEYS = {b"FROM": "from", b"TO": "to", b"CC": "cc", b"BCC": "bcc", b"SUBJECT": "subject"}
#: How deeply parentheses, NOT and OR may nest, together.  Deeper programs
#: are BAD: real clients stay far below, and the compiled predicate
#: recurses once per level when it runs.
MAX_DEPTH = 64
_ATOM_END = re.compile(rb"[ ()]")
#: Noted in a compiled program's *used* keys when it reads message files
#: (header or body keys); a program without it needs only what the
#: folder's snapshot holds (flags, size, dates, UIDs, modseqs).
CONTENT = b"CONTENT"
_CONTENT_KEYS = {*_HEADER_KEYS, b"HEADER", b"BODY", b"TEXT", b"SENTBEFORE", b"SENTON", b"SENTSINCE"}
#: Noted with :data:`CONTENT` when a content key is not one of :class:`KeySetTests`' (SENT*,
#: HEADER of another field): the program then reads messages one by one.
READS_FILES = b"READS_FILES"
_INDEXED_FIELDS = frozenset(_HEADER_KEYS.values())


class KeySetTests:
    """The content tests of one program that are answerable as sets of Maildir keys.

    FROM, TO, CC, BCC and SUBJECT from the message cache's decoded header
    fields, BODY and TEXT from its full-text table.  The compiled program
    notes each ``(field, needle)`` it tests in *fields* and each ``(needle,
    with_header)`` in *texts*.  Once *answers* holds, for every one of them,
    the keys of the messages that pass it (:func:`.msgcache.header_sets`
    and :func:`.msgcache.text_sets`, one query each), the program tests a
    message by its key alone, and can run over the session's views without
    reading a file or making a :class:`Message` per message.
    """

    def __init__(self) -> None:
        self.fields: set[tuple[str, str]] = set()
        self.texts: set[tuple[str, bool]] = set()
        #: ``(field, needle)`` or ``(needle, with_header)`` -> the keys passing that test.
        self.answers: dict[tuple[str, str] | tuple[str, bool], set[str]] = {}


class SearchError(ValueError):
    """A malformed search program; answered with BAD."""


class SearchParser:
    """Splits SEARCH arguments into tokens, a parenthesized list as a list.

    Replaces Twisted's ``parseNestedParens``, whose ``collapseStrings``
    recurses once per parenthesis (RecursionError at about 1000), which
    mishandles ``\\"`` after ``\\\\`` and cannot ask for a literal.  This one
    loops, caps the nesting at :data:`MAX_DEPTH`, and stops at a literal
    announcement so the server can ask for the octets (RFC 3501 7.5) and
    feed them back with :meth:`add_literal`.
    """

    def __init__(self) -> None:
        self._stack: list[list[Any]] = [[]]

    def feed(self, line: bytes) -> None:
        """Tokenize *line* (text between literals; the command reader took their announcements)."""
        pos, end = 0, len(line)
        while pos < end:
            char = line[pos : pos + 1]
            if char == b" ":
                pos += 1
            elif char == b"(":
                if len(self._stack) > MAX_DEPTH:
                    raise SearchError("search program nested too deeply")
                self._stack.append([])
                pos += 1
            elif char == b")":
                if len(self._stack) == 1:
                    raise SearchError("unbalanced parentheses")
                inner = self._stack.pop()
                self._stack[-1].append(inner)
                pos += 1
            elif char == b'"':
                try:
                    value, pos = read_quoted(line, pos)
                except CommandError as e:
                    raise SearchError(str(e)) from None
                self._stack[-1].append(value)
            else:
                match = _ATOM_END.search(line, pos)
                stop = match.start() if match else end
                self._stack[-1].append(line[pos:stop])
                pos = stop

    def add_literal(self, data: bytes) -> None:
        """The octets of the literal :meth:`feed` asked for: one string token."""
        self._stack[-1].append(data)

    def result(self) -> list[Any]:
        """The tokens, once the whole command has been fed."""
        if len(self._stack) != 1:
            raise SearchError("unbalanced parentheses")
        if not self._stack[0]:
            raise SearchError("search criteria missing")  # RFC 3501 6.4.4: at least one key
        return self._stack[0]


def _text(value: bytes) -> str:
    """A search string as text to compare, case-folded."""
    return value.decode("utf-8", "replace").casefold()


def decoded_header(header: bytes, name: str) -> str | None:
    """All *name* fields of a wire-form header section, RFC 2047-decoded and case-folded.

    None when there is no such field, so that an empty search string
    matches exactly the messages that have the field (RFC 3501 6.4.4).
    """
    values = []
    for field, raw in header_lines(header):
        if field == name:
            value = raw.split(b":", 1)[1].decode("utf-8", "replace")
            values.append(decode_words(re.sub(r"\r?\n(?=[ \t])", "", value).strip()))
    return "\n".join(values).casefold() if values else None


def _has_text(message: Message, name: str, needle: str) -> bool:
    if message.cache is not None:
        found = message.cache.header_has(message, name, needle)
        if found is not None:
            return found
    value = decoded_header(message.entity.header, name)
    return value is not None and needle in value


def head_text(header: bytes) -> str:
    """The header section as TEXT compares it: undecoded, case-folded."""
    return _text(header)


def decoded_body(raw: bytes) -> str:
    """The text of every text part of a message, decoded, case-folded.

    Parsed with the ``compat32`` policy: the default policy builds a header
    object for every field it is asked for, which made this three times
    slower, and only each part's type, charset and transfer encoding are needed.
    """
    texts = []
    for part in email.message_from_bytes(raw).walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True) or b""
        try:
            texts.append(payload.decode(part.get_content_charset() or "us-ascii", "replace"))
        except LookupError:  # a charset Python does not know
            texts.append(payload.decode("utf-8", "replace"))
    return "\n".join(texts).casefold()


def _body_has(message: Message, needle: str, with_header: bool) -> bool:
    """BODY (*with_header* False) or TEXT: *needle* in the decoded body, or in the header too."""
    if message.cache is not None:
        found = message.cache.text_has(message, needle, with_header)
        if found is not None:
            return found
    if with_header and needle in head_text(message.entity.header):
        return True
    return needle in decoded_body(message.entity.raw)


def _date(token: bytes) -> datetime.date:
    """``1-Feb-1994`` (RFC 3501 9 date) to a date."""
    try:
        return datetime.datetime.strptime(token.decode("ascii"), "%d-%b-%Y").date()
    except (UnicodeDecodeError, ValueError):
        raise SearchError("bad date") from None


def _internal_day(message: Message) -> datetime.date:
    return datetime.datetime.fromtimestamp(message.internaldate, datetime.timezone.utc).date()


def _sent_day(message: Message) -> datetime.date | None:
    """The Date header's own calendar day, ignoring its time zone (6.4.4)."""
    value = message.entity.get("date")
    try:
        return email.utils.parsedate_to_datetime(value).date() if value else None
    except (TypeError, ValueError):
        return None


def _compare(day_of: Callable[[Message], datetime.date | None], op: str, day: datetime.date) -> Predicate:
    def check(seq: int, m: Message) -> bool:
        d = day_of(m)
        if d is None:
            return False
        return d < day if op == "before" else d == day if op == "on" else d >= day

    return check


class _Compiler:
    """Recursive descent over the tokens of :class:`SearchParser`.

    *depth* counts the enclosing parentheses, NOTs and ORs; past
    :data:`MAX_DEPTH` the program is refused, which bounds the recursion
    both here and in the predicate built.
    """

    def __init__(
        self, tokens: Sequence[Any], last_seq: int, last_uid: int, saved: frozenset[int], depth: int = 0,
        used: set[bytes] | None = None, keyed: KeySetTests | None = None,
    ) -> None:
        if depth > MAX_DEPTH:
            raise SearchError("search program nested too deeply")
        self.tokens: Iterator[Any] = iter(tokens)
        self.last_seq = last_seq
        self.last_uid = last_uid
        self.saved = saved
        self.depth = depth
        #: Keys the program uses that change the response (MODSEQ: RFC 7162 3.1.5)
        #: or how it must run (:data:`CONTENT`).
        self.used = set() if used is None else used
        self.keyed = KeySetTests() if keyed is None else keyed

    def arg(self) -> bytes:
        token = next(self.tokens, None)
        if not isinstance(token, bytes):
            raise SearchError("search key argument missing")
        return token

    def number(self) -> int:
        token = self.arg()
        if not token.isdigit() or len(token) > 10:  # RFC 3501 9: number is 32-bit
            raise SearchError("number expected")
        return int(token)

    def all(self) -> Predicate:
        keys = []
        for token in self.tokens:
            keys.append(self.key(token))
        if not keys:
            raise SearchError("empty search program")
        if len(keys) == 1:
            return keys[0]
        return lambda seq, m: all(k(seq, m) for k in keys)

    def operand(self) -> Predicate:
        """The key a NOT or OR applies to, one level deeper."""
        token = next(self.tokens, None)
        if token is None:
            raise SearchError("search key missing")
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise SearchError("search program nested too deeply")
            return self.key(token)
        finally:
            self.depth -= 1

    def _set(self, token: bytes, last: int) -> imap4.MessageSet:
        try:
            wanted = parse_sequence_set(token)
        except CommandError:
            raise SearchError("bad sequence set") from None
        wanted.last = last
        return wanted

    def key(self, token: Any) -> Predicate:  # noqa: C901 - one branch per RFC key
        if isinstance(token, list):
            return _Compiler(
                token, self.last_seq, self.last_uid, self.saved, self.depth + 1, self.used, self.keyed,
            ).all()
        upper = token.upper()
        if token == b"$":  # RFC 5182 2.1: the saved result, as a sequence set
            return self._saved()
        if _SEQSET.match(token):
            seqs = self._set(token, self.last_seq)
            return lambda seq, m: seq in seqs
        if upper == b"ALL":
            return lambda seq, m: True
        if upper in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[upper]
            return lambda seq, m: (flag in m.flags) == present
        if upper == b"NEW":
            return lambda seq, m: "\\Recent" in m.flags and "\\Seen" not in m.flags
        if upper in (b"KEYWORD", b"UNKEYWORD"):
            keyword, present = self.arg().decode("ascii", "replace"), upper == b"KEYWORD"
            return lambda seq, m: (keyword in m.flags) == present
        if upper in _CONTENT_KEYS:
            self.used.add(CONTENT)
        if upper in _HEADER_KEYS:
            return self._header(_HEADER_KEYS[upper], _text(self.arg()))
        if upper == b"HEADER":
            name = self.arg().decode("ascii", "replace").lower()
            return self._header(name, _text(self.arg()))
        if upper in (b"BODY", b"TEXT"):
            return self._text(_text(self.arg()), upper == b"TEXT")
        if upper in _CONTENT_KEYS:
            self.used.add(READS_FILES)
        if upper in (b"LARGER", b"SMALLER"):
            size, larger = self.number(), upper == b"LARGER"
            return lambda seq, m: m.size > size if larger else m.size < size
        if upper in (b"BEFORE", b"ON", b"SINCE"):
            return _compare(_internal_day, upper.decode().lower(), _date(self.arg()))
        if upper in (b"SENTBEFORE", b"SENTON", b"SENTSINCE"):
            return _compare(_sent_day, upper[4:].decode().lower(), _date(self.arg()))
        if upper == b"UID":
            token = self.arg()
            if token == b"$":
                return self._saved()
            uids = self._set(token, self.last_uid)
            return lambda seq, m: m.uid in uids
        if upper == b"MODSEQ":
            return self._modseq()
        if upper == b"NOT":
            inner = self.operand()
            return lambda seq, m: not inner(seq, m)
        if upper == b"OR":
            left, right = self.operand(), self.operand()
            return lambda seq, m: left(seq, m) or right(seq, m)
        raise SearchError("unknown search key")

    def _header(self, name: str, needle: str) -> Predicate:
        """*needle* in the decoded *name* fields: by the message's key once :class:`KeySetTests` has the answer."""
        if name not in _INDEXED_FIELDS:
            self.used.add(READS_FILES)
            return lambda seq, m: _has_text(m, name, needle)
        self.keyed.fields.add((name, needle))
        return self._by_key((name, needle), lambda m: _has_text(m, name, needle))

    def _text(self, needle: str, with_header: bool) -> Predicate:
        """BODY (*with_header* False) or TEXT: by the message's key once :class:`KeySetTests` has the answer."""
        self.keyed.texts.add((needle, with_header))
        return self._by_key((needle, with_header), lambda m: _body_has(m, needle, with_header))

    def _by_key(self, test: tuple[str, str] | tuple[str, bool], read: Callable[[Any], bool]) -> Predicate:
        """*test* answered by the key sets of :class:`KeySetTests` when it has them, else by *read* (the message)."""
        answers = self.keyed.answers

        def check(seq: int, m: Any) -> bool:
            if answers:
                return m.key in answers[test]
            return read(m)

        return check

    def _saved(self) -> Predicate:
        saved = self.saved
        return lambda seq, m: m.uid in saved

    def _modseq(self) -> Predicate:
        """``MODSEQ [entry-name entry-type-req] n`` (RFC 7162 3.1.5): changed at *n* or later.

        Flags have no modseqs of their own here, so the entry (a flag's
        ``"/flags/..."`` name) narrows nothing: the message's modseq is
        every flag's.
        """
        token = self.arg()
        if token.lower().startswith(b"/flags/"):
            if self.arg().lower() not in (b"priv", b"shared", b"all"):
                raise SearchError("bad MODSEQ entry type")
            token = self.arg()
        if not token.isdigit() or int(token) >= 2**63:
            raise SearchError("mod-sequence expected")
        self.used.add(b"MODSEQ")
        least = int(token)
        return lambda seq, m: m.modseq >= least


def compile_search(
    query: Sequence[Any], last_seq: int, last_uid: int, saved: frozenset[int] = frozenset(),
    used: set[bytes] | None = None, keyed: KeySetTests | None = None,
) -> Predicate:
    """A predicate for the search program *query* (raises :class:`SearchError`).

    *last_seq* and *last_uid* give ``*`` its meaning in sequence and UID
    sets, *saved* (UIDs) gives ``$`` its meaning (RFC 5182 2.1); *used*
    collects the keys that change the response (``MODSEQ``, RFC 7162 3.1.5)
    and notes :data:`CONTENT` when the program reads message files
    (:data:`READS_FILES` too unless *keyed* can answer every content key).
    """
    return _Compiler(query, last_seq, last_uid, saved, used=used, keyed=keyed).all()


def parse_search(parts: Sequence[Any]) -> list[Any]:
    """The search program from a command's remaining text and literals (RFC 3501 6.4.4)."""
    parser = SearchParser()
    for part in parts:
        if isinstance(part, Literal):
            assert part.data is not None
            parser.add_literal(part.data)
        else:
            parser.feed(part)
    return parser.result()


def run_search(messages: Sequence[Message], matches: Predicate, cancelled: Callable[[], bool]) -> list[Message]:
    """The messages *matches* accepts, in order; stops early once *cancelled* says so.

    Runs in the search pool: it touches nothing but the messages' files.
    Each message's parsed content is dropped as soon as it was tested.
    """
    hits = []
    parsed = 0
    for message in messages:
        if cancelled():
            break
        if matches(message.seq, message):
            hits.append(message)
        if message.__dict__.pop("entity", None) is not None:
            parsed += 1
            if not parsed % YOUNG_EVERY:
                gc.collect(0)  # whatever parsing left in a cycle, while the caller keeps the collector paused
    return hits

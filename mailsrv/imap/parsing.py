"""Reading IMAP commands: lines, tags, arguments, and one command at a time.

Twisted's ``IMAP4Server`` both parses commands and carries them out; its
parsing is where most of its defects are (see ``TWISTED-NOTES.md``
section 3).  This module is the reading half, as a base class the
command handlers in :mod:`.server` inherit, so those handlers see only
well-formed arguments and the rules for the wire live in one place:

* Commands run one at a time, so replies and unsolicited updates never
  interleave with a command still in progress; lines received meanwhile
  wait (and the socket is paused if too many wait).
* Lines up to ``limits.imap_max_line_length`` (Twisted drops the connection
  past 16 KiB); longer ones get BAD.  APPEND literals over
  ``limits.imap_max_literal_size`` are refused before the ``+``.
* Arguments are parsed by our own dispatcher and parsers (``syntax.py``,
  ``search.SearchParser``): tags and command names must be 7-bit atoms,
  literal sizes plain digits, quoted strings unescape ``\\"``/``\\\\``,
  mailbox names canonical modified UTF-7 (else ``NO [CANNOT]``), SEARCH
  nesting is capped; errors never echo Python reprs or log tracebacks.

The dispatch tables themselves (``<state>_<COMMAND>``) stay with the
handlers they name, in :mod:`.server`; they refer to the ``arg_*``/``opt_*``
parsers defined here.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Callable

from twisted.internet import defer
from twisted.logger import Logger
from twisted.mail import imap4
from twisted.mail.imap4 import IMAP4Server
from twisted.python.failure import Failure

from mailsrv.config import Config
from mailsrv.imap.mailbox import parse_sequence_set
from mailsrv.imap.search import SearchError, SearchParser
from mailsrv.imap.syntax import is_atom, is_tag, literal_size, mailbox_name, read_quoted

log = Logger()

#: Commands that use sequence numbers: no EXPUNGE may follow them
#: (RFC 3501 7.4.1), unless given as UID commands.
_NO_EXPUNGE_AFTER = frozenset({b"FETCH", b"STORE", b"SEARCH", b"COPY"})
#: Lines queued behind a running command before we stop reading the socket.
_MAX_QUEUED_LINES = 1000
#: RFC 3501 9: partial = "<" number "." nz-number ">" (it follows a "]").
_PARTIAL = re.compile(rb"\]<([^>]*)>")
_PARTIAL_SPEC = re.compile(rb"[0-9]+\.[1-9][0-9]*")


def reply_text(error: Exception) -> bytes:
    """An exception's message for a reply: printable ASCII, never a ``b'...'`` repr."""
    text = error.args[0] if error.args else ""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    return re.sub(r"[^ -~]", "?", str(text))[:200].encode("ascii")


class CommandParser(IMAP4Server):
    """The reading half of an IMAP connection; :class:`.server.IMAPServer` is the rest.

    The subclass provides ``config`` (for the literal limit) and the two
    hooks below, which belong to the selected mailbox: the updates owed
    before a tagged reply, and ending the session when the selected
    folder was deleted (``True`` if *error* meant that).
    """

    config: Config
    _flush_updates: Callable[[bool], None]
    _selected_gone: Callable[[BaseException], bool]

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lines: deque[bytes] = deque()
        self._running: tuple[bytes, bytes, bool] | None = None
        self._pumping = False
        self._discarding = False
        self._reparse = False
        self._command_tag: bytes | None = None

    # -- reading lines: limits and one command at a time ---------------------------

    def dataReceived(self, data: bytes) -> None:
        """Line splitting, plus the tail of an over-long line thrown away."""
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            self._discarding = False
            data = data[end + 1 :]
        super().dataReceived(data)
        while self._reparse:
            self._reparse = False
            super().dataReceived(b"")

    def lineLengthExceeded(self, line: bytes) -> None:
        """BAD for a line over the limit; the connection survives (not so in Twisted)."""
        tag = line.split(b" ", 1)[0]
        self.sendBadResponse(tag if 0 < len(tag) <= 64 else None, b"Command line too long")
        end = line.find(b"\n")
        if end < 0:
            self._discarding = True
        else:
            self._buffer = line[end + 1 :]  # what followed the long line
            self._reparse = True

    def lineReceived(self, line: bytes) -> None:
        """Queue the line; it runs when no other command is running."""
        self._lines.append(line)
        if len(self._lines) > _MAX_QUEUED_LINES:
            self.pauseProducing()
        self._pump()

    def _pump(self) -> None:
        if self._pumping:
            return
        self._pumping = True
        try:
            # A running command may itself wait for a line (an AUTHENTICATE
            # response, IDLE's DONE, a literal): those go through.
            while self._lines and (self._running is None or self.parseState != "command"):
                super().lineReceived(self._lines.popleft())
        finally:
            self._pumping = False
        if self.paused and len(self._lines) < _MAX_QUEUED_LINES // 2:
            self.resumeProducing()

    def parse_command(self, line: bytes) -> Any:
        """Check tag and command name, and remember the tag for replies sent
        while arguments are parsed.

        RFC 3501 9: both are 7-bit (a command name is an atom); Twisted
        decodes the name as ASCII and answers other bytes with ``* BAD
        Server error`` and a traceback.
        """
        words = line.split(None, 2)
        self._command_tag = words[0] if words else None
        if words and not is_tag(words[0]):
            self.sendBadResponse(None, b"Invalid tag")  # nothing we may echo as a tag
            return None
        if len(words) > 1 and not is_atom(words[1]):
            self.sendBadResponse(words[0], b"Invalid command name")
            return None
        return super().parse_command(line)

    def dispatchCommand(self, tag: bytes, cmd: bytes, rest: bytes | None, uid: int | None = None) -> None:
        """Parse the arguments of *cmd*, then run it (Twisted's, minus its faults).

        Twisted's dispatcher puts ``repr()`` of the client's bytes into its
        BAD texts and answers any other exception a parser raises with
        ``BAD Server error: <text>`` and a traceback in the log.  Here
        syntax errors get a plain BAD (RFC 3501 7.1.5), bad mailbox names
        ``NO [CANNOT]``, and only real faults are logged.
        """
        entry = self.lookupCommand(cmd)
        if entry is None:
            self.sendBadResponse(tag, b"Unsupported command")
            return
        self._parse_arguments(tag, entry[0], [self, tag], list(entry[1:]), rest or b"", uid)

    def _parse_arguments(
        self, tag: bytes, handler: Callable[..., Any], args: list[Any], parsers: list[Any], line: bytes,
        uid: int | None,
    ) -> None:
        """Run the dispatch table's parsers over *line*, then the handler.

        A parser returns ``(value, rest)``, or a Deferred of that when it
        must first ask for a literal; parsing resumes when it fires.
        """
        try:
            while parsers:
                parser = parsers.pop(0)
                if not callable(parser):
                    args.append(parser)  # a constant argument from the table
                    continue
                parsed = parser(self, line)
                if isinstance(parsed, defer.Deferred):
                    parsed.addCallback(self._parsed_later, tag, handler, args, parsers, uid)
                    parsed.addErrback(self._refuse, tag)
                    return
                value, line = parsed
                args.append(value)
            if line:
                raise imap4.IllegalClientResponse("Too many arguments")
            if uid is None:
                handler(*args)
            else:
                handler(*args, uid=uid)
        except Exception:
            self._refuse(Failure(), tag)

    def _parsed_later(
        self, parsed: tuple[Any, bytes], tag: bytes, handler: Callable[..., Any], args: list[Any],
        parsers: list[Any], uid: int | None,
    ) -> None:
        value, line = parsed
        args.append(value)
        self._parse_arguments(tag, handler, args, parsers, line, uid)

    def _refuse(self, failure: Failure, tag: bytes) -> None:
        """The tagged answer to a command whose parsing or handler raised."""
        error = failure.value
        if isinstance(error, imap4.IllegalMailboxEncoding):
            self.sendNegativeResponse(tag, b"[CANNOT] Invalid mailbox name")  # RFC 3501 5.1.3
        elif isinstance(error, imap4.IllegalClientResponse):
            self.sendBadResponse(tag, b"Illegal syntax: " + reply_text(error))
        elif isinstance(error, imap4.IllegalOperation):
            self.sendNegativeResponse(tag, b"Illegal operation: " + reply_text(error))
        else:
            log.failure("imap command failed", failure)
            self.sendBadResponse(tag, b"Server error")

    def lookupCommand(self, cmd: bytes) -> Any:
        """Wrap each handler so the session knows a command is running."""
        entry = super().lookupCommand(cmd)
        if entry is None:
            return None
        handler = entry[0]

        def run(server: CommandParser, tag: bytes, *args: Any, **kwargs: Any) -> Any:
            server._running = (tag, cmd, bool(kwargs.get("uid")))
            try:
                return handler(server, tag, *args, **kwargs)
            except (imap4.IllegalClientResponse, imap4.IllegalOperation, imap4.IllegalMailboxEncoding):
                raise  # _refuse answers these with a tagged BAD/NO
            except Exception as e:
                if server._selected_gone(e):
                    return None
                log.failure("imap command {cmd} failed", cmd=cmd)
                server.sendBadResponse(tag, b"Server error")

        return (run,) + tuple(entry[1:])

    def _tagged(self, state: bytes, tag: bytes | None, message: bytes) -> None:
        """A tagged reply: owed updates first, then the next queued command."""
        finishing = tag is not None and self._running is not None and tag == self._running[0]
        if finishing:
            assert self._running is not None
            _, cmd, uid = self._running
            self._flush_updates(allow_expunge=uid or cmd not in _NO_EXPUNGE_AFTER)
        self._respond(state, tag, message)
        if finishing:
            self._running = None
            self._pump()

    def sendPositiveResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        self._tagged(b"OK", tag, message)

    def sendNegativeResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        self._tagged(b"NO", tag, message)

    def sendBadResponse(self, tag: bytes | None = None, message: bytes = b"") -> None:
        self._tagged(b"BAD", tag, message)

    def sendContinuationRequest(self, msg: bytes = b"Ready for additional command text") -> None:
        """``+ text``: RFC 3501 9 requires the space even for an empty challenge."""
        self.sendLine(b"+ " + (msg or b""))

    # -- arguments: the parsers the dispatch tables name ------------------------------

    def _fileLiteral(self, size: int) -> defer.Deferred[Any]:
        """Refuse an APPEND literal over the limit before asking for it."""
        if size > self.config.limits.imap_max_literal_size:
            # RFC 3501 7.5: a NO instead of "+" tells the client not to send
            # the literal; RFC 7889/4469 name the code.  The command ends
            # here, so the Deferred Twisted waits on is never fired.
            self.sendNegativeResponse(self._command_tag, b"[TOOBIG] Message too large")
            return defer.Deferred()
        return super()._fileLiteral(size)

    def arg_astring(self, line: bytes, final: bool = False) -> Any:
        """An astring (RFC 3501 9): quoted, literal or atom.

        Twisted ends a quoted string at the first ``"`` even after a
        backslash and keeps the backslashes; here ``\\"`` and ``\\\\`` are
        unescaped.  A literal's size must be plain digits (``{-1}`` is BAD).
        """
        line = line.strip()
        if not line:
            raise imap4.IllegalClientResponse("Missing argument")
        if line[:1] == b'"':
            value, end = read_quoted(line)
            rest = line[end:]
            if rest[:1] not in (b"", b" "):
                raise imap4.IllegalClientResponse("Missing space after quoted string")
            return value, rest[1:]
        if line[:1] == b"{":
            size = literal_size(line)
            if final and not size:
                return b"", b""  # as Twisted (twisted #9207)
            return self._stringLiteral(size)
        value, _, rest = line.partition(b" ")
        return value, rest

    def arg_mailbox(self, line: bytes) -> Any:
        """A mailbox name: an astring in canonical modified UTF-7 (RFC 3501 5.1.3).

        Checked before Twisted's ``_parseMbox`` sees it, which logs a
        traceback for raw 8-bit or broken ``&...-`` names.
        """
        parsed = self.arg_astring(line)
        if isinstance(parsed, defer.Deferred):
            return parsed.addCallback(lambda result: (mailbox_name(result[0]), result[1]))
        return mailbox_name(parsed[0]), parsed[1]

    def arg_literal(self, line: bytes) -> Any:
        """APPEND's message literal: ``{number}``, number = 1*DIGIT (RFC 3501 9)."""
        if not line:
            raise imap4.IllegalClientResponse("Missing argument")
        return self._fileLiteral(literal_size(line))

    def arg_plist(self, line: bytes) -> tuple[list[Any], bytes]:
        """A flat parenthesized list; a malformed one is BAD, not a server error."""
        try:
            return super().arg_plist(line)
        except (imap4.MismatchedNesting, imap4.MismatchedQuoting):
            raise imap4.IllegalClientResponse("Malformed list") from None

    def opt_charset(self, line: bytes) -> Any:
        """SEARCH's ``[CHARSET SP astring]``, then at least one key (RFC 3501 6.4.4, 9).

        Twisted slices ``None`` (a TypeError) for a bare ``SEARCH``.
        """
        if not line:
            raise imap4.IllegalClientResponse("Missing search criteria")
        if line[:8].upper() == b"CHARSET ":
            return self.arg_astring(line[8:])
        return None, line

    def arg_searchkeys(self, line: bytes) -> Any:
        """Search keys as nested token lists, depth-capped (``SearchParser``)."""
        return self._more_search_keys(SearchParser(), line)

    def _more_search_keys(self, parser: SearchParser, line: bytes) -> Any:
        """Feed *line*; if it ends in a literal, ask for it and go on after it."""
        try:
            size = parser.feed(line)
            if size is None:
                return parser.result(), b""
        except SearchError as e:
            raise imap4.IllegalClientResponse(str(e)) from None

        def literal(result: tuple[bytes, bytes]) -> Any:
            data, rest = result
            parser.add_literal(data)
            return self._more_search_keys(parser, rest)

        return self._stringLiteral(size).addCallback(literal)

    def arg_seqset(self, line: bytes) -> tuple[imap4.MessageSet, bytes]:
        """A sequence set, parsed in linear time (see ``parse_sequence_set``)."""
        token, _, rest = line.partition(b" ")
        return parse_sequence_set(token), rest

    def arg_fetchatt(self, line: bytes) -> tuple[list[Any], bytes]:
        """FETCH items, checked where Twisted's parser is lax (RFC 3501 9).

        Its errors are bare exceptions quoting the client's bytes; it takes
        ``<-1.5>`` as a partial and ``HEADER.FIELDS ()`` as a header list.
        """
        try:
            items, rest = super().arg_fetchatt(line)
        except imap4.IllegalClientResponse:
            raise
        except Exception:
            raise imap4.IllegalClientResponse("Invalid FETCH attribute") from None
        if any(not _PARTIAL_SPEC.fullmatch(m.group(1)) for m in _PARTIAL.finditer(line)):
            raise imap4.IllegalClientResponse("Invalid partial")  # "<" number "." nz-number ">"
        for item in items:
            header = getattr(item, "header", None)
            # header-list = "(" header-fld-name *(SP header-fld-name) ")".
            # Twisted gives a plain HEADER the fields () and a list a list.
            if header is not None and isinstance(header.fields, list) and not header.fields:
                raise imap4.IllegalClientResponse("Empty header list")
        return items, rest

    def opt_uidset(self, line: bytes) -> tuple[imap4.MessageSet | None, bytes]:
        """The UID set of UID EXPUNGE; EXPUNGE alone has none."""
        if not line:
            return None, line
        return self.arg_seqset(line)

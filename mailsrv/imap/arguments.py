"""Parsing a command's arguments (RFC 3501 9) from its text and literals.

:class:`Arguments` is a cursor over a :class:`~mailsrv.imap.command.Command`'s
parts; each method reads one grammar element and raises a ``BAD`` (or, for
a mailbox name, ``NO [CANNOT]``) :class:`~mailsrv.imap.responses.CommandError`
when it is not there.  The whole command was read before parsing starts,
so nothing here waits for input.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from twisted.mail import imap4

from mailsrv.imap.command import Command, Literal, Part
from mailsrv.imap.responses import syntax
from mailsrv.imap.sequences import parse_sequence_set
from mailsrv.imap.syntax import mailbox_name, read_quoted
from mailsrv.message.body import Body

# astring = 1*ASTRING-CHAR / string: ATOM-CHAR plus "]".
_ASTRING_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~\x80-\xff]+")
# list-mailbox = 1*list-char / string: ASTRING-CHAR plus the wildcards.
_LIST_ATOM = re.compile(rb"[!#$%&'*+,\-./0-9:;<=>?@A-Z\[\]^_`a-z|}~\x80-\xff]+")
_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
# flag = "\" atom (system flags and \*) / keyword atom.
_FLAG = re.compile(rb"\\?[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
_SEQUENCE_SET = re.compile(rb"[0-9:*,]+")
_DATE_TIME = re.compile(rb'"([ 0-9]\d-[A-Za-z]{3}-\d{4} \d\d:\d\d:\d\d [+-]\d{4})"')


class Arguments:
    """The arguments of one command, read left to right."""

    def __init__(self, command: Command, utf8: bool = False) -> None:
        self._parts: list[Part] = list(command.parts)
        #: Mailbox names and quoted strings are UTF-8, not modified UTF-7 (RFC 6855 3, RFC 9051 5.1).
        self._utf8 = utf8
        self._index = 0
        self._pos = 0

    # -- position ------------------------------------------------------------

    @property
    def _text(self) -> bytes:
        part = self._parts[self._index]
        return part if isinstance(part, bytes) else b""

    def _at_literal(self) -> bool:
        """True when the next element is a literal (the text before it is used up)."""
        return (
            self._pos >= len(self._text)
            and self._index + 1 < len(self._parts)
            and isinstance(self._parts[self._index + 1], Literal)
        )

    def _take_literal(self) -> Literal:
        literal = self._parts[self._index + 1]
        assert isinstance(literal, Literal)
        self._index += 2
        self._pos = 0
        return literal

    def space(self) -> None:
        """The single SP between two arguments."""
        if self._pos < len(self._text) and self._text[self._pos : self._pos + 1] == b" ":
            self._pos += 1
            return
        raise syntax(b"Missing argument")

    def more(self) -> bool:
        """Whether anything follows (a space and another argument)."""
        return self._pos < len(self._text) or self._index + 1 < len(self._parts)

    def peek(self, count: int = 1) -> bytes:
        """The next *count* octets of text, not consumed."""
        return self._text[self._pos : self._pos + count]

    def end(self) -> None:
        """Nothing may follow the last argument (RFC 3501 9)."""
        if self.more():
            raise syntax(b"Too many arguments")

    def expect(self, text: bytes) -> bool:
        """Consume *text* (case-insensitively) if it comes next; whether it did."""
        if self._text[self._pos : self._pos + len(text)].upper() == text.upper():
            self._pos += len(text)
            return True
        return False

    def token(self, pattern: re.Pattern[bytes]) -> bytes | None:
        """The text *pattern* matches next, consumed; ``None`` if it does not match."""
        return self._match(pattern)

    def _match(self, pattern: re.Pattern[bytes]) -> bytes | None:
        match = pattern.match(self._text, self._pos)
        if match is None:
            return None
        self._pos = match.end()
        return match.group(0)

    # -- elements ------------------------------------------------------------

    def atom(self) -> bytes:
        """An atom (RFC 3501 9)."""
        value = self._match(_ATOM)
        if value is None:
            raise syntax(b"Missing argument")
        return value

    def astring(self) -> bytes:
        """An astring: atom-like, quoted or literal (RFC 3501 9)."""
        return self._string(_ASTRING_ATOM)

    def _string(self, atom: re.Pattern[bytes]) -> bytes:
        if self._at_literal():
            literal = self._take_literal()
            if literal.data is None:
                raise syntax(b"Literal too large")
            if literal.binary:  # RFC 3516 4.4: only APPEND's message
                raise syntax(b"literal8 is not a string")
            return literal.data
        if self.peek() == b'"':
            value, self._pos = read_quoted(self._text, self._pos)
            if self._utf8 and not value.isascii():
                try:
                    value.decode("utf-8")  # strict: no overlong forms, no surrogates
                except UnicodeDecodeError:
                    raise syntax(b"Invalid UTF-8 in a quoted string") from None  # RFC 6855 3: MUST be BAD
            return value
        value = self._match(atom)
        if value is None:
            raise syntax(b"Missing argument")
        return value

    def value(self) -> bytes | None:
        """A METADATA value: nstring or literal8 (RFC 5464 5), ``None`` for NIL."""
        if self._at_literal():
            literal = self._take_literal()
            if literal.data is None:
                raise syntax(b"Literal too large")
            return literal.data
        if self.peek() == b'"':
            return self._string(_ASTRING_ATOM)
        if self.expect(b"NIL"):
            return None
        raise syntax(b"Value expected")

    def mailbox(self) -> str:
        """A mailbox name (astring; modified UTF-7, RFC 3501 5.1.3, or UTF-8, RFC 6855 3 and RFC 9051 5.1)."""
        return mailbox_name(self.astring(), self._utf8)

    def list_mailbox(self) -> str:
        """A LIST/LSUB pattern, wildcards allowed (RFC 3501 6.3.8)."""
        return mailbox_name(self._string(_LIST_ATOM), self._utf8)

    def number(self) -> int:
        """A number (RFC 3501 9: 32-bit unsigned)."""
        value = self.atom()
        if not value.isdigit() or int(value) > 0xFFFFFFFF:
            raise syntax(b"Number expected")
        return int(value)

    def mod_sequence(self) -> int:
        """A mod-sequence-valzer (RFC 7162 7): a number from 0 up to 2^63 - 1."""
        value = self.atom()
        if not value.isdigit() or int(value) >= 2**63:
            raise syntax(b"Mod-sequence expected")
        return int(value)

    def sequence_set(self) -> imap4.MessageSet:
        """A sequence set (RFC 3501 9), parsed in linear time."""
        token = self._match(_SEQUENCE_SET)
        if token is None or (self._pos < len(self._text) and self._text[self._pos : self._pos + 1] != b" "):
            raise syntax(b"bad message number")
        return parse_sequence_set(token)

    def flag_list(self) -> list[str]:
        """``(flag ...)``, possibly empty (RFC 3501 9 flag-list)."""
        if self.peek() != b"(":
            raise syntax(b"Flag list expected")
        self._pos += 1
        flags: list[str] = []
        while self.peek() != b")":
            if flags:
                self.space()
            flag = self._match(_FLAG)
            if flag is None:
                raise syntax(b"Invalid flag list")
            flags.append(flag.decode("ascii"))
        self._pos += 1
        return flags

    def flags(self) -> list[str]:
        """STORE's flags: a flag list, or flags without parentheses (RFC 3501 9)."""
        if self.peek() == b"(":
            return self.flag_list()
        flags = []
        while True:
            flag = self._match(_FLAG)
            if flag is None:
                raise syntax(b"Flags expected")
            flags.append(flag.decode("ascii"))
            if self.peek() != b" ":
                return flags
            self.space()

    def atom_list(self) -> list[bytes]:
        """``(atom ...)``, at least one (STATUS items, RFC 3501 6.3.10)."""
        if self.peek() != b"(":
            raise syntax(b"List expected")
        self._pos += 1
        items = [self.atom()]
        while self.peek() == b" ":
            self.space()
            items.append(self.atom())
        if self.peek() != b")":
            raise syntax(b"Malformed list")
        self._pos += 1
        return items

    def date_time(self) -> float | None:
        """An optional APPEND date-time ``"17-Jul-1996 02:44:25 -0700"`` (RFC 3501 9), as epoch."""
        match = _DATE_TIME.match(self._text, self._pos)
        if match is None:
            return None
        try:
            value = datetime.datetime.strptime(match.group(1).decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
        except ValueError:
            raise syntax(b"Invalid date-time") from None
        self._pos = match.end()
        return value.timestamp()

    def message(self) -> Body:
        """APPEND's message literal, as a body (RFC 3501 6.3.11)."""
        if not self._at_literal():
            raise syntax(b"Message literal expected")
        literal = self._take_literal()
        if literal.body is not None:
            return literal.body
        assert literal.data is not None
        return Body.from_wire(literal.data)

    def rest(self) -> list[Any]:
        """Everything left, as text and literal octets in order (SEARCH keys)."""
        out: list[Any] = []
        while True:
            text = self._text[self._pos :]
            if text:
                out.append(text)
            self._pos = len(self._text)
            if not self._at_literal():
                return out
            literal = self._take_literal()
            if literal.data is None:
                raise syntax(b"Literal too large")
            out.append(Literal(data=literal.data))

"""Reading one IMAP command: its lines and the literals between them (RFC 3501 7.5).

A command is a line, or several when it carries literals: ``{n}`` at the end
of a line announces n octets that follow the server's ``+`` continuation,
after which the command goes on on the next line.  The whole command is
read before it is parsed, so the argument parsers (:mod:`.arguments`) never
wait for input, and the limits are applied while reading, before a ``+``
invites more:

* a command line over ``limits.imap_max_line_length`` is BAD (Twisted drops
  the connection past 16 KiB, which large UID sets from real clients reach);
* the literals of a command other than APPEND count towards that same
  limit, so no command but APPEND holds more than one line's worth;
* APPEND's message literal may be up to ``limits.imap_max_literal_size``,
  is refused with ``NO [TOOBIG]`` before the ``+`` when larger (RFC 7889
  names the code), and goes into a :class:`~mailsrv.message.body.BodyWriter`
  that spools it to disk past ``limits.spool_threshold``.

LITERAL+ (RFC 7888 3): ``{n+}`` is a non-synchronising literal, sent
without waiting for ``+``.  The same limits hold; one past them cannot be
refused before it arrives, so its octets (and the rest of the command,
with any further non-synchronising literals) are read and dropped, and the
command ends ``BAD [TOOBIG]``: the next line read is the client's next
command, never the middle of a literal.  Past :data:`DRAIN_FACTOR` times
``limits.imap_max_literal_size`` reading on is not worth it (a client can
announce 100 GB and send nothing): the answer is the same BAD, then BYE,
and the connection is closed.

BINARY (RFC 3516 4.4): APPEND's message may be a literal8, ``~{n}`` or
``~{n+}``, under the same limits, and so may a SETMETADATA value (RFC 5464
5); they are the only literals that may carry NUL octets (RFC 3501 9: CHAR8
excludes NUL), so a NUL in any other literal makes the command BAD once it
is read whole.  The store keeps messages
with LF line ends (:mod:`mailsrv.message.wire`), which gives back a
literal8 octet for octet unless it holds a bare LF: such content is
refused with ``NO [UNKNOWN-CTE]``, as RFC 3516 4.4 asks of a mailbox that
cannot store it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailsrv.imap.command import Command, Literal, Part
from mailsrv.imap.responses import BAD, CommandError, bad, no, syntax
from mailsrv.message.body import Body, BodyWriter
from mailsrv.message.wire import BARE_LF

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection

# RFC 3501 9: literal = "{" number "}" CRLF; RFC 7888 8 adds "+" for a
# non-synchronising literal, RFC 3516 4.4 "~" for a literal8.  A sign or more
# than 20 digits is no size we read.
_LITERAL = re.compile(rb"(?P<binary>~?)\{(?P<size>[0-9]{1,20})(?P<plus>\+?)\}\Z")
_ANY_LITERAL = re.compile(rb"\{[^{}]*\}\Z")
#: The commands whose literals may be literal8 (RFC 3516 4.4 APPEND, RFC 5464 5 SETMETADATA values).
_LITERAL8_COMMANDS = frozenset({b"APPEND", b"SETMETADATA"})
#: A refused non-synchronising literal up to this many times the largest literal is read past.
DRAIN_FACTOR = 2


async def read_command(server: "Connection", tag: bytes, name: bytes, rest: bytes) -> Command:
    """The whole command whose first line was ``tag NAME rest``, literals read."""
    limits = server.ctx.config.limits
    appending = name == b"APPEND"
    parts: list[Part] = []
    refusal: CommandError | None = None
    budget = limits.imap_max_line_length - len(tag) - len(name) - len(rest)
    text = rest
    try:
        while _ANY_LITERAL.search(text):
            match = _LITERAL.search(text)
            if match is None:
                raise syntax(b"Invalid literal")
            binary, size, synchronising = bool(match["binary"]), int(match["size"]), not match["plus"]
            parts.append(text[: match.start()])
            if binary and name not in _LITERAL8_COMMANDS:
                await _refuse_literal(server, size, synchronising, syntax(b"literal8 is for APPEND and SETMETADATA"))
            octets = Octets(binary, message=appending)
            if appending and size > budget:
                if size > limits.imap_max_literal_size:
                    await _refuse_literal(server, size, synchronising, no(b"[TOOBIG] Message too large"))
                parts.append(Literal(body=await _read_body(server, size, synchronising, octets), binary=binary))
            else:
                budget -= size
                if budget < 0:
                    await _refuse_literal(server, size, synchronising, bad(b"Command too long"))
                what = b"data" if appending else b"text"
                data = await _read_bytes(server, size, what, synchronising)
                octets.check(data)
                parts.append(Literal(data=data, binary=binary))
            refusal = refusal or octets.refusal()
            line = await server.read_line()
            if not isinstance(line, bytes):
                raise bad(b"Command line too long")
            budget -= len(line)
            if budget < 0:
                raise bad(b"Command too long")
            text = line
        if refusal is not None:
            raise refusal
    except CommandError:
        Command(tag, name, parts).discard()
        raise
    parts.append(text)
    return Command(tag, name, parts)


class Octets:
    """What a literal's octets allow, checked as they arrive (a chunk at a time).

    A literal may not hold NUL unless it is a literal8; a literal8 message
    may not hold a bare LF, which the store would not give back as it came.
    """

    def __init__(self, binary: bool, message: bool = True) -> None:
        self.binary = binary
        #: A message goes to the store, which keeps LF line ends; a METADATA value is kept as it came.
        self.message = message
        self.nul = False
        self.bare_lf = False
        self._last = b""

    def check(self, chunk: bytes) -> None:
        """Look at the next *chunk* of the literal."""
        self.nul = self.nul or b"\0" in chunk
        if self.binary and self.message and not self.bare_lf and chunk:
            self.bare_lf = BARE_LF.search(self._last + chunk) is not None
            self._last = chunk[-1:]

    def refusal(self) -> CommandError | None:
        """The error the command ends with once it is read, or ``None``."""
        if self.nul and not self.binary:
            return bad(b"NUL octet in a literal, use a literal8 (RFC 3516)")
        if self.bare_lf:
            return no(b"[UNKNOWN-CTE] Binary content with a bare LF cannot be stored")
        return None


async def _refuse_literal(server: "Connection", size: int, synchronising: bool, error: CommandError) -> None:
    """End the command with *error* for a literal over the limits; never returns.

    A synchronising literal is refused before its ``+`` (RFC 3501 7.5), so
    the client does not send it.  A non-synchronising one is on its way:
    it and the rest of the command are read and dropped first, and the
    answer is ``BAD [TOOBIG]`` (RFC 7888 4, RFC 4469 names the code).
    """
    if synchronising:
        raise error
    if size > DRAIN_FACTOR * server.ctx.config.limits.imap_max_literal_size:
        raise CommandError(BAD, b"[TOOBIG] Literal too large", hang_up=True)
    await server.read_octets(size, _drop)
    while True:
        line = await server.read_line()
        match = _LITERAL.search(line) if isinstance(line, bytes) else None
        if match is None or not match["plus"]:
            break  # the command's last line (or a synchronising literal we never invite)
        await server.read_octets(int(match["size"]), _drop)
    raise bad(b"[TOOBIG] Literal too large")


def _drop(data: bytes) -> None:
    """Where the octets of a refused literal go."""


def _invite(server: "Connection", synchronising: bool, text: bytes) -> None:
    """The ``+`` continuation a synchronising literal waits for (RFC 3501 7.5); none for ``{n+}``."""
    if synchronising:
        server.continue_request(text)


async def _read_bytes(server: "Connection", size: int, what: bytes, synchronising: bool) -> bytes:
    _invite(server, synchronising, b"Ready for %d octets of %s" % (size, what))
    got = bytearray()
    await server.read_octets(size, got.extend)
    return bytes(got)


async def _read_body(server: "Connection", size: int, synchronising: bool, octets: Octets) -> Body:
    config = server.ctx.config
    writer = BodyWriter(config.spool_dir, config.limits.spool_threshold)
    _invite(server, synchronising, b"Ready for %d octets of data" % size)

    def write(chunk: bytes) -> None:
        octets.check(chunk)
        writer.write(chunk)

    try:
        await server.read_octets(size, write)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()

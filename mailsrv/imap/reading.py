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
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from mailsrv.imap.command import Command, Literal, Part
from mailsrv.imap.responses import CommandError, bad, no, syntax
from mailsrv.message.body import Body, BodyWriter

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection

# RFC 3501 9: literal = "{" number "}" CRLF; a sign, LITERAL+'s "+" (not
# advertised) or more than 20 digits is no size we read.
_LITERAL = re.compile(rb"\{([0-9]{1,20})\}\Z")
_ANY_LITERAL = re.compile(rb"\{[^{}]*\}\Z")


async def read_command(server: "Connection", tag: bytes, name: bytes, rest: bytes) -> Command:
    """The whole command whose first line was ``tag NAME rest``, literals read."""
    limits = server.ctx.config.limits
    appending = name == b"APPEND"
    parts: list[Part] = []
    budget = limits.imap_max_line_length - len(tag) - len(name) - len(rest)
    text = rest
    try:
        while _ANY_LITERAL.search(text):
            match = _LITERAL.search(text)
            if match is None:
                raise syntax(b"Invalid literal")
            size = int(match.group(1))
            parts.append(text[: match.start()])
            if appending and size > budget:
                if size > limits.imap_max_literal_size:
                    # RFC 3501 7.5: a NO instead of "+" tells the client not to send it.
                    raise no(b"[TOOBIG] Message too large")
                parts.append(Literal(body=await _read_body(server, size)))
            else:
                budget -= size
                if budget < 0:
                    raise bad(b"Command too long")
                parts.append(Literal(data=await _read_bytes(server, size, b"data" if appending else b"text")))
            line = await server.read_line()
            if not isinstance(line, bytes):
                raise bad(b"Command line too long")
            budget -= len(line)
            if budget < 0:
                raise bad(b"Command too long")
            text = line
    except CommandError:
        Command(tag, name, parts).discard()
        raise
    parts.append(text)
    return Command(tag, name, parts)


async def _read_bytes(server: "Connection", size: int, what: bytes) -> bytes:
    server.continue_request(b"Ready for %d octets of %s" % (size, what))
    got = bytearray()
    await server.read_octets(size, got.extend)
    return bytes(got)


async def _read_body(server: "Connection", size: int) -> Body:
    config = server.ctx.config
    writer = BodyWriter(config.spool_dir, config.limits.spool_threshold)
    server.continue_request(b"Ready for %d octets of data" % size)
    try:
        await server.read_octets(size, writer.write)
    except BaseException:
        writer.abort()
        raise
    return writer.finish()

"""The ID command (RFC 2971): the client says who it is, the server answers in kind.

Clients send it to learn the server's name (Apple Mail, Outlook and K-9
tailor their behaviour to it) and to tell theirs, which is worth a log
line when a user reports a client problem.  The client's list is bounded
as RFC 2971 3.3 bounds it (30 pairs, 30-octet names, 1024-octet values);
more is ``BAD``, and what is logged is printable ASCII only.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from twisted.logger import Logger

import mailsrv
from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import OK, Result, bad, syntax
from mailsrv.imap.structure import encode

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection

log = Logger()

#: RFC 2971 3.3.
MAX_PAIRS = 30
MAX_FIELD = 30
MAX_VALUE = 1024

#: What we say about ourselves (RFC 2971 3.3 field names); the version only to a logged-in user,
#: so that an unauthenticated scanner cannot pick exploits by release (RFC 2971 7).
SERVER_ID = (("name", "mailsrv"), ("vendor", "mailsrv"))
VERSION = ("version", mailsrv.__version__)


def parse_id_list(args: Arguments) -> dict[str, str | None]:
    """``NIL`` or ``("field" value ...)`` (RFC 2971 4), within the RFC's size bounds."""
    if args.expect(b"NIL"):
        return {}
    if args.peek() != b"(":
        raise syntax(b"ID expects NIL or a parenthesised list")
    args.expect(b"(")
    fields: dict[str, str | None] = {}
    while not args.expect(b")"):
        if fields:
            args.space()
        if len(fields) >= MAX_PAIRS:
            raise bad(b"Too many ID fields (RFC 2971 allows 30)")
        field = args.astring()
        args.space()
        value = None if args.expect(b"NIL") else args.astring()
        if len(field) > MAX_FIELD or (value is not None and len(value) > MAX_VALUE):
            raise bad(b"ID field or value too long")
        fields[_printable(field)] = None if value is None else _printable(value)
    return fields


def _printable(value: bytes) -> str:
    """A client's octets fit for a log line."""
    return re.sub(r"[^ -~]", "?", value.decode("ascii", "replace"))


async def do_ID(server: "Connection", args: Arguments) -> Result:
    """RFC 2971 3.1: valid in every state; the server always answers ``* ID``."""
    fields = parse_id_list(args)
    args.end()
    if fields:
        log.info("IMAP client ID {client_id}", client_id=fields, client_ip=server.session.peer_ip)
    ours = SERVER_ID if server.account is None else (SERVER_ID[0], VERSION, *SERVER_ID[1:])
    server.untagged(b"ID " + encode([part for pair in ours for part in pair]))
    return Result(OK, b"ID completed")

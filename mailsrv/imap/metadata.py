"""METADATA (RFC 5464): GETMETADATA and SETMETADATA on the server and on mailboxes.

Entry names are checked here, the grammar's part (3.2: ``/private`` or
``/shared`` first, no ``*``, ``%``, control or non-ASCII character, no
``//``, no trailing ``/``; invalid is BAD), and compared in lower case
(3.2); the store keeps them (:mod:`mailsrv.store.metadata`), per user,
with the limits of ``[imap] metadata_*`` checked under its lock.

Who may do what, with no ACL (3.3) and one user per Maildir: a user's
mailbox entries, private and shared, are theirs to read and set; so are
their private server entries.  The server's shared entries are the
admin's, so they are read-only (3.3 lets a server restrict them, and says
NO); the one we have is ``/shared/admin``, ``mailto:`` the postmaster of
the first local domain (RFC 5321 4.5.1 makes that address exist).
Private entries are supported everywhere, so ``[METADATA NOPRIVATE]`` is
never owed.  GETMETADATA answers NIL for an entry asked for by name that
is not set, as Dovecot and Cyrus do, so the METADATA response the command
requires (4.2) always comes; ``/private`` and ``/shared`` themselves name
only the trees below them (DEPTH).  Unsolicited METADATA responses (4.4)
go only to a session that asked NOTIFY for them (:mod:`.notifications`):
``ENABLE METADATA`` is not offered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Awaitable, Callable

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.folders import quoted_name
from mailsrv.imap.responses import OK, Result, bad, no, syntax
from mailsrv.imap.structure import encode
from mailsrv.imap.syntax import is_atom
from mailsrv.store import metadata
from mailsrv.store.metadata import SERVER, MetadataTooLarge, MetadataTooMany

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection

CAPABILITIES = [b"METADATA"]  # RFC 5464 1: server and mailbox entries (METADATA-SERVER is implied)
#: RFC 5464 3.2: "/" then components of printable ASCII but "*" and "%" (space allowed: 0x00-0x19 are out).
_ENTRY = re.compile(r"/(?:private|shared)(?:/[ -$&-)+-.0-~]+)*\Z")
_ROOTS = frozenset({"/private", "/shared"})
_DEPTHS = {b"0": 0, b"1": 1, b"INFINITY": None}


@dataclass(frozen=True)
class Options:
    """GETMETADATA's options (RFC 5464 4.2.1, 4.2.2); *depth* ``None`` is infinity."""

    maxsize: int | None = None
    depth: int | None = 0


def entry_name(raw: bytes, setting: bool) -> str:
    """An entry name (RFC 5464 3.2) in lower case; BAD if invalid.

    One to be set needs two components, four under ``vendor/`` (3.2); the
    bare ``/private`` and ``/shared`` may be asked for, as trees.
    """
    name = raw.decode("ascii", "replace").lower()
    components = name.split("/")[1:]
    valid = _ENTRY.match(name) is not None and raw.isascii()
    if valid and setting:
        valid = len(components) >= (4 if components[1:2] == ["vendor"] else 2)
    if not valid:
        raise bad(b"Invalid entry name")
    return name


def _options(args: Arguments) -> Options:
    """``(MAXSIZE n DEPTH d)``, either or both, any order (RFC 5464 5); unknown ones are BAD."""
    maxsize: int | None = None
    depth: int | None = 0
    while True:
        option = args.atom().upper()
        args.space()
        if option == b"MAXSIZE":
            maxsize = args.number()
        elif option == b"DEPTH":
            value = args.atom().upper()
            if value not in _DEPTHS:
                raise syntax(b"DEPTH is 0, 1 or infinity")
            depth = _DEPTHS[value]
        else:
            raise bad(b"Unknown GETMETADATA option")
        if args.expect(b")"):
            return Options(maxsize, depth)
        args.space()


def _entries(args: Arguments) -> list[str]:
    """``entry`` or ``(entry ...)`` (RFC 5464 5 entries)."""
    if not args.expect(b"("):
        return [entry_name(args.astring(), setting=False)]
    names = [entry_name(args.astring(), setting=False)]
    while not args.expect(b")"):
        args.space()
        names.append(entry_name(args.astring(), setting=False))
    return names


def matching(stored: metadata.Entries, wanted: list[str], depth: int | None) -> dict[str, bytes | None]:
    """Each wanted entry (NIL if not set) and, to *depth*, the set entries below it (RFC 5464 4.2.2)."""
    found: dict[str, bytes | None] = {}
    for name in wanted:
        if name not in _ROOTS:
            found[name] = stored.get(name)
        if depth == 0:
            continue
        prefix = name + "/"
        for below in sorted(stored):
            if below.startswith(prefix) and (depth is None or "/" not in below[len(prefix):]):
                found[below] = stored[below]
    return found


def _server_entries(server: "Connection") -> metadata.Entries:
    """The server's own read-only shared entries (RFC 5464 3.2.1.1)."""
    domains = server.ctx.config.domains
    return {"/shared/admin": b"mailto:postmaster@" + domains[0].encode("idna")} if domains else {}


def _entry(name: str) -> bytes:
    """An entry name on the wire: an atom as in RFC 5464's examples, quoted if it has a space or the like."""
    raw = name.encode("ascii")
    return raw if is_atom(raw) else encode(raw)


def _value(value: bytes | None) -> bytes:
    """A value on the wire: NIL, a string, or a literal8 when it holds NUL (RFC 5464 5 value)."""
    if value is not None and b"\0" in value:
        return b"~{%d}\r\n" % len(value) + value
    return encode(value)


async def do_GETMETADATA(server: "Connection", args: Arguments) -> Result:
    """RFC 5464 4.2, with MAXSIZE (``[METADATA LONGENTRIES n]``) and DEPTH."""
    options = Options()
    if args.expect(b"("):  # no mailbox name starts with "(" unquoted: these are the options
        options = _options(args)
        args.space()
    name = args.mailbox()  # "" (SERVER): the server's entries (RFC 5464 4.1)
    args.space()
    wanted = _entries(args)
    args.end()
    assert server.account is not None
    stored = await server.account.user.annotations(name)
    if name == SERVER:
        stored = {**stored, **_server_entries(server)}
    found = matching(stored, wanted, options.depth)
    limit = options.maxsize
    too_long = [len(v) for v in found.values() if v is not None and limit is not None and len(v) > limit]
    shown = [(entry, value) for entry, value in found.items() if value is None or limit is None or len(value) <= limit]
    if shown:
        pairs = b" ".join(_entry(entry) + b" " + _value(value) for entry, value in shown)
        server.untagged(b"METADATA " + quoted_name(name, server.modes.utf8) + b" (" + pairs + b")")
    if too_long:
        return Result(OK, b"[METADATA LONGENTRIES %d] GETMETADATA completed" % max(too_long))  # RFC 5464 4.2.1
    return Result(OK, b"GETMETADATA completed")


async def do_SETMETADATA(server: "Connection", args: Arguments) -> Result:
    """RFC 5464 4.3: all entries or none; NO with ``[METADATA MAXSIZE n]`` or ``[METADATA TOOMANY]``."""
    name = args.mailbox()
    args.space()
    if not args.expect(b"("):
        raise syntax(b"Entry list expected")
    changes: dict[str, bytes | None] = {}
    while True:
        entry = entry_name(args.astring(), setting=True)
        args.space()
        changes[entry] = args.value()
        if args.expect(b")"):
            break
        args.space()
    args.end()
    if name == SERVER and any(entry.startswith("/shared/") for entry in changes):
        raise no(b"Server's shared entries are read-only")  # RFC 5464 3.3
    assert server.account is not None
    config = server.ctx.config.imap
    limits = metadata.Limits(config.metadata_max_value_size, config.metadata_max_entries,
                             config.metadata_max_total_size)
    try:
        await server.account.user.annotate(name, changes, limits, origin=server)
    except MetadataTooLarge as e:
        raise no(b"[METADATA MAXSIZE %d] Value too large" % e.args[0]) from None
    except MetadataTooMany:
        raise no(b"[METADATA TOOMANY] Too many entries") from None
    return Result(OK, b"SETMETADATA completed")


COMMANDS: dict[bytes, Callable[["Connection", Arguments], Awaitable[Result]]] = {
    b"GETMETADATA": do_GETMETADATA,
    b"SETMETADATA": do_SETMETADATA,
}

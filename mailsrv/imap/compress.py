"""COMPRESS=DEFLATE (RFC 4978): the rest of the connection in raw DEFLATE.

The command only checks its argument and the state; the streams themselves
are :mod:`mailsrv.net.deflate`'s, switched on in the pump
(:meth:`~mailsrv.net.pump.CommandPump.start_deflate`) right after the
tagged ``OK`` went out uncompressed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import OK, Result, bad, no

if TYPE_CHECKING:
    from mailsrv.imap.server import IMAPServer

CAPABILITIES = [b"COMPRESS=DEFLATE"]


async def do_COMPRESS(server: "IMAPServer", args: Arguments) -> Result | None:
    """RFC 4978 3: ``OK`` uncompressed, then DEFLATE from the next octet in both directions."""
    mechanism = args.atom().upper()
    args.end()
    if mechanism != b"DEFLATE":
        raise bad(b"Unknown compression mechanism")
    if server.deflate is not None:
        raise no(b"[COMPRESSIONACTIVE] DEFLATE is already active")
    # Updates owed go before the tagged OK, in clear like it.
    server.finish(server.tag, Result(OK, b"DEFLATE active"))
    server.start_deflate()
    return None


COMMANDS = {b"COMPRESS": do_COMPRESS}

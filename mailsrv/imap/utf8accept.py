"""UTF8=ACCEPT (RFC 6855): what APPEND takes from a session that did, or did not, enable it.

The rest of the extension is a session mode (:mod:`.modes`): UTF-8 mailbox
names and quoted strings (:mod:`.arguments`, :func:`.folders.quoted_name`)
and no CHARSET in SEARCH (:mod:`.searching`).  Here is APPEND (RFC 6855 4):
a session that enabled it sends a message with UTF-8 header fields as the
``UTF8 (literal8)`` data item, stored as it came.  A session that did not
enable it may still APPEND a message with 8-bit octets in its header, as a
plain literal: RFC 6855 4 would answer NO, but that refuses the old mail
(raw Latin-1 or UTF-8 subjects) a migration with mbsync or imapsync
uploads from a server that accepted it, and Dovecot stores it; refusing
mail a client already holds helps no one.  An IMAP4rev2 session needs no
item either (RFC 9051 6.3.12 has none).

Messages already stored go out unchanged to every session, also to one
that never enabled UTF-8: RFC 6855 7 leaves it to the server to downgrade
or not, and a rewritten copy would break signatures and differ between
POP3 and IMAP.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import bad, syntax
from mailsrv.message.body import Body

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection

CAPABILITIES = [b"UTF8=ACCEPT"]  # RFC 6855 3


async def append_message(server: "Connection", args: Arguments) -> Body:
    """APPEND's message: a literal, or ``UTF8 (literal8)`` once UTF8=ACCEPT is on (RFC 6855 4).

    The item's literal may also be a plain ``{n}`` one: the octets are the same.  A refused
    message's spool file goes with the command (:meth:`~.command.Command.discard`).
    """
    if not args.expect(b"UTF8 ("):
        return args.message()
    if not server.modes.utf8_accept:
        raise bad(b"APPEND's UTF8 item needs ENABLE UTF8=ACCEPT")
    body = args.message()
    if not args.expect(b")"):
        raise syntax(b"Missing ) after the UTF8 message")
    return body

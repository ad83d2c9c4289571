"""UTF8=ACCEPT (RFC 6855): what APPEND takes from a session that did, or did not, enable it.

The rest of the extension is a session mode (:mod:`.modes`): UTF-8 mailbox
names and quoted strings (:mod:`.arguments`, :func:`.folders.quoted_name`)
and no CHARSET in SEARCH (:mod:`.searching`).  Here is APPEND (RFC 6855 4):
a session that enabled it sends a message with UTF-8 header fields as the
``UTF8 (literal8)`` data item, stored as it came; a session that did not
(IMAP4rev1 without the mode) may not APPEND 8-bit octets in a header, and
is answered NO.  An IMAP4rev2 session may, without the item (RFC 9051
6.3.12 has none).

Messages already stored go out unchanged to every session, also to one
that never enabled UTF-8: RFC 6855 7 leaves it to the server to downgrade
or not, and a rewritten copy would break signatures and differ between
POP3 and IMAP.  The header is found on the disk form (LF line ends, see
:mod:`mailsrv.message.wire`), a block at a time, off the reactor thread
when the body was spooled.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.imap.arguments import Arguments
from mailsrv.imap.responses import bad, no, syntax
from mailsrv.message.body import Body

if TYPE_CHECKING:
    from mailsrv.imap.connection import Connection

CAPABILITIES = [b"UTF8=ACCEPT"]  # RFC 6855 3
#: RFC 6855 4: the refusal of an 8-bit header from a session that did not enable UTF-8.
EIGHT_BIT_HEADER = b"Message has 8-bit header fields; ENABLE UTF8=ACCEPT and use APPEND's UTF8 item"
_BLOCK = 64 * 1024


async def append_message(server: "Connection", args: Arguments) -> Body:
    """APPEND's message: a literal, or ``UTF8 (literal8)`` once UTF8=ACCEPT is on (RFC 6855 4).

    The item's literal may also be a plain ``{n}`` one: the octets are the same.  A refused
    message's spool file goes with the command (:meth:`~.command.Command.discard`).
    """
    if not args.expect(b"UTF8 ("):
        body = args.message()
        if not server.modes.utf8 and await _has_8bit_header(server, body):
            raise no(EIGHT_BIT_HEADER)
        return body
    if not server.modes.utf8_accept:
        raise bad(b"APPEND's UTF8 item needs ENABLE UTF8=ACCEPT")
    body = args.message()
    if not args.expect(b")"):
        raise syntax(b"Missing ) after the UTF8 message")
    return body


async def _has_8bit_header(server: "Connection", body: Body) -> bool:
    if body.in_memory:
        return eight_bit_header(body)
    return await server.ctx.workers.disk.run(eight_bit_header, body)


def eight_bit_header(body: Body) -> bool:
    """Whether an octet over 127 comes before the empty line that ends the header (RFC 5322 2.1)."""
    previous = b"\n"  # a message that starts with an empty line has an empty header
    with body.open() as f:
        while block := f.read(_BLOCK):
            data = previous + block
            end = data.find(b"\n\n")
            if not (data if end < 0 else data[:end]).isascii():
                return True
            if end >= 0:
                return False
            previous = block[-1:]
    return False

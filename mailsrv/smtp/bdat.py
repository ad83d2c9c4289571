"""BDAT (RFC 3030 2, CHUNKING; RFC 3030 3, BINARYMIME): the message in chunks of announced size.

``BDAT <size> [LAST]`` is followed by exactly *size* octets, read raw
(:mod:`.chunks`).  What RFC 3030 2 asks and how it is kept here:

* the octets of a chunk are read before its reply, whatever the reply:
  without a transaction (503), without recipients (554), over the size
  limit (552) they are read and thrown away, so the next command is found
  where the client put it (pipelined chunks, RFC 3030 4.2, included);
* every chunk but the last gets ``250 <n> octets received``; ``LAST`` ends
  the data as DATA's final dot does (:func:`.transaction.end_of_data`:
  the checks, our trace headers, the store's fsync, then the one reply);
* the RFC 1870 size is the sum of the chunks: the chunk that takes it over
  ``limits.max_message_size`` fails the transaction with 552 (the client
  must send no more chunks; any it pipelined get 503, their octets read);
* a size that is not a number leaves no way to find the chunk's end, and
  one past :data:`DRAIN_FACTOR` times the limit is not worth reading
  (a client can announce 10^20 octets and send nothing): the reply is the
  error, then 421 and the connection is closed;
* a bare LF cannot be stored as it came (:mod:`.chunks`): 554 at LAST,
  as DATA answers it (RFC 5321 2.3.8), or for BINARYMIME, whose content
  may hold any octet, a 554 saying the store cannot keep it.

While a chunk's octets arrive the idle timeout counts from the last
progress, as for a DATA body (:mod:`mailsrv.net.pump`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailsrv.message.body import BodyType
from mailsrv.smtp import replies, transaction
from mailsrv.smtp.chunks import ChunkedBody
from mailsrv.smtp.replies import Reply

if TYPE_CHECKING:
    from mailsrv.smtp.connection import Connection, Transaction

#: A chunk announced larger than this many times the message size limit is not read, the connection closes.
DRAIN_FACTOR = 2
USAGE = "BDAT size [LAST]"


def parse(rest: bytes) -> tuple[int, bool] | None:
    """``(size, last)`` of the arguments ``chunk-size [SP "LAST"]`` (RFC 3030 2), or ``None``."""
    words = rest.split()
    if not 1 <= len(words) <= 2 or not words[0].isdigit():
        return None
    if len(words) == 2 and words[1].upper() != b"LAST":
        return None
    return int(words[0]), len(words) == 2


async def bdat(server: "Connection", rest: bytes) -> Reply:
    """One BDAT command and its chunk; see the module docstring."""
    host = server.ctx.config.hostname
    request = parse(rest)
    if request is None:
        server.answer(replies.SYNTAX(usage=USAGE))
        return replies.BDAT_UNREADABLE(host=host)
    size, last = request
    limit = server.ctx.config.limits.max_message_size
    current = server.transaction
    refusal = _refusal(current, size, limit)
    if size > DRAIN_FACTOR * limit:
        server.answer(await _refuse(server, refusal or replies.SIZE_EXCEEDED, size))
        return replies.CHUNK_TOO_BIG(host=host)
    if refusal is not None:
        await server.read_octets(size, _ignore)
        return await _refuse(server, refusal, size)
    assert current is not None
    chunks = current.chunks
    if chunks is None:
        chunks = current.chunks = ChunkedBody(transaction.start_body(server, current))
    await server.read_octets(size, chunks.write)
    if not last:
        return replies.CHUNK_RECEIVED(octets=size)
    return await transaction.end_of_data(server, current, chunks.size, _body_error(current, chunks))


def _refusal(current: "Transaction | None", size: int, limit: int) -> Reply | None:
    """Why this chunk is not taken (its octets are read all the same), or ``None``."""
    if current is None:
        return replies.NEED_MAIL
    if not current.recipients:
        return replies.NO_RECIPIENTS  # RFC 5321 3.3, as for DATA
    if _received(current) + size > limit:
        return replies.SIZE_EXCEEDED  # RFC 1870 6.3
    return None


async def _refuse(server: "Connection", refusal: Reply, size: int) -> Reply:
    """*refusal*; a 552 also ends the transaction (RFC 3030 2: the client sends no more chunks)."""
    current = server.transaction
    if current is not None and refusal == replies.SIZE_EXCEEDED:
        return await transaction.end_of_data(server, current, _received(current) + size, refusal)
    return refusal


def _received(current: "Transaction") -> int:
    """Octets of the transaction's chunks so far."""
    return current.chunks.size if current.chunks is not None else 0


def _body_error(current: "Transaction", chunks: ChunkedBody) -> Reply | None:
    """The error the complete body ends with, or ``None``."""
    if not chunks.bare_lf:
        return None
    if current.params.body is BodyType.BINARY_MIME:
        return replies.BINARY_BARE_LF
    return replies.BARE_LF  # RFC 5321 2.3.8


def _ignore(piece: bytes) -> None:
    """Octets of a chunk that is refused: read and dropped."""

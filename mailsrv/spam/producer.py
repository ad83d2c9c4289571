"""A message file as an HTTP request body, read a block at a time in a worker pool.

A spooled body or a stored message may be 50 MiB: read whole, it would
sit in memory for the length of the scan, and read on the reactor thread
it would stall every session while the disk answers.  :class:`FileProducer`
is an ``IBodyProducer`` for Twisted's HTTP client that reads the next block
in an executor only when the connection wants more (it is paused while the
socket is full), so one scan holds one block.  *edits* change the stream
as :meth:`mailsrv.message.body.Body.splice` changes a body, without a copy
of the file: the header fields the checks before the scan added go in below
our Return-Path, the ones they remove (a forged Authentication-Results) are
left out, so the scanner sees the message as it will be stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable, Sequence

from twisted.internet import defer
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

if TYPE_CHECKING:
    from twisted.internet.interfaces import IConsumer

    from mailsrv.workers import Executor

#: Octets read from the file at a time.
BLOCK = 64 * 1024


@implementer(IBodyProducer)
class FileProducer:
    """The first *size* octets of the file *opener* opens (in *executor*), changed by *edits*.

    *edits* are ``(offset, removed, data)`` in the order of the file, not
    overlapping: at *offset* (of the file), *removed* octets are left out
    and *data* is sent instead, as :meth:`~mailsrv.message.body.Body.splice` takes them.

    The file is opened when the request starts and closed when it ends,
    whichever way (the connection failed, the request was cancelled).
    """

    def __init__(
        self, opener: Callable[[], BinaryIO], size: int, executor: "Executor",
        edits: Sequence[tuple[int, int, bytes]] = (),
    ) -> None:
        self._opener = opener
        self._size = size
        self._executor = executor
        self._edits = tuple(edits)
        self.length = size + sum(len(data) - removed for _, removed, data in self._edits)
        self._paused: defer.Deferred[None] | None = None
        self._stopped = False

    def startProducing(self, consumer: "IConsumer") -> "defer.Deferred[None]":
        """Write the whole stream to *consumer*; fires when it is written (never after :meth:`stopProducing`)."""
        done: defer.Deferred[None] = defer.Deferred()

        async def produce() -> None:
            try:
                await self._produce(consumer)
            except Exception as e:  # an unreadable file: the HTTP client fails the request
                if not self._stopped:
                    done.errback(e)
            else:
                if not self._stopped:
                    done.callback(None)

        defer.Deferred.fromCoroutine(produce())
        return done

    async def _produce(self, consumer: "IConsumer") -> None:
        file = await self._executor.run(self._opener)
        try:
            position = 0  # in the file
            for offset, removed, data in (*self._edits, (self._size, 0, b"")):
                while position < offset:
                    block = await self._executor.run(_read_at, file, position, min(BLOCK, offset - position))
                    if not block:
                        raise OSError(f"the message file ended {self._size - position} octets early")
                    position += len(block)
                    if not await self._write(consumer, block):
                        return
                if data and not await self._write(consumer, data):
                    return
                position += removed
        finally:
            file.close()

    async def _write(self, consumer: "IConsumer", data: bytes) -> bool:
        """Write *data* once the connection wants it; False when the request ended meanwhile."""
        if self._paused is not None:
            await self._paused
        if self._stopped:
            return False
        consumer.write(data)
        return True

    def pauseProducing(self) -> None:
        """The connection is full: write nothing until :meth:`resumeProducing`."""
        if self._paused is None:
            self._paused = defer.Deferred()

    def resumeProducing(self) -> None:
        """Go on writing."""
        paused, self._paused = self._paused, None
        if paused is not None:
            paused.callback(None)

    def stopProducing(self) -> None:
        """The request ended early: write no more, close the file."""
        self._stopped = True
        self.resumeProducing()


def _read_at(file: BinaryIO, offset: int, size: int) -> bytes:
    """At most *size* octets of *file* from *offset* (blocking: in the executor)."""
    file.seek(offset)
    return file.read(size)

"""A message file as an HTTP request body, read a block at a time in a worker pool.

A spooled body or a stored message may be 50 MiB: read whole, it would
sit in memory for the length of the scan, and read on the reactor thread
it would stall every session while the disk answers.  :class:`FileProducer`
is an ``IBodyProducer`` for Twisted's HTTP client that reads the next block
in an executor only when the connection wants more (it is paused while the
socket is full), so one scan holds one block.  *insert* puts octets the
file lacks at an offset (the header fields the checks before the scan
added, below our Return-Path) into the stream.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, Callable

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
    """The first *size* octets of the file *opener* opens (in *executor*), with *insert* spliced in.

    The file is opened when the request starts and closed when it ends,
    whichever way (the connection failed, the request was cancelled).
    """

    def __init__(
        self, opener: Callable[[], BinaryIO], size: int, executor: "Executor", insert: tuple[int, bytes] = (0, b""),
    ) -> None:
        self._opener = opener
        self._size = size
        self._executor = executor
        self._insert_at, self._inserted = insert
        self.length = size + len(self._inserted)
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
            position = 0
            while position < self._size and not self._stopped:
                if position == self._insert_at and self._inserted:
                    consumer.write(self._inserted)
                end = self._insert_at if position < self._insert_at else self._size
                block = await self._executor.run(file.read, min(BLOCK, end - position))
                if not block:
                    raise OSError(f"the message file ended {self._size - position} octets early")
                position += len(block)
                if self._paused is not None:
                    await self._paused
                if self._stopped:
                    return
                consumer.write(block)
            if position == self._insert_at and self._inserted and not self._stopped:
                consumer.write(self._inserted)  # at the very end (an empty file)
        finally:
            file.close()

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

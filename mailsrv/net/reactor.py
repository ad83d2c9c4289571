"""The server's reactor: Twisted's epoll reactor that sends a reply before it polls.

Twisted's transports buffer every ``write()`` and ask the reactor to watch
the socket for writability; the next poll reports it writable (a socket with
room always is), the data goes out, and the transport asks to stop watching.
Each reply costs two ``epoll_ctl`` calls and a poll wake-up besides its
``send``, all on the reactor thread, and each of those system calls gives up
the GIL to whichever pool thread wants it.  Under an SMTP delivery load that
was an eighth of the reactor thread's time (docs/twisted-notes.rst, "Every
write waits for the poller").

:class:`PromptWriteReactor` gives a descriptor that starts writing one
``doWrite()`` before the next poll instead: when the socket takes all of it,
as it almost always does, the descriptor stops writing again and the poller
never hears of it.  A descriptor that still has data after that attempt (a
full socket buffer, a connection still being made) is watched by epoll as
Twisted would watch it.  Writes made in one reactor turn leave in one send.
"""

from __future__ import annotations

import sys
from select import EPOLLOUT

from twisted.internet.epollreactor import EPollReactor
from twisted.internet.interfaces import IWriteDescriptor
from twisted.python import log


class PromptWriteReactor(EPollReactor):
    """Writes what descriptors buffered during a turn before polling, watching only those that could not."""

    def __init__(self) -> None:
        #: Descriptors that started writing since the last poll, in order (a dict as an ordered set).
        self._prompt_due: dict[IWriteDescriptor, None] = {}
        #: Descriptors this reactor asked epoll to watch for writability.
        self._prompt_watched: set[IWriteDescriptor] = set()
        #: The descriptor whose prompt write runs now, and whether it stopped writing during it.
        #: (Every name here has the ``_prompt_`` prefix: the base classes' own attributes are many.)
        self._prompt_writer: IWriteDescriptor | None = None
        self._prompt_finished = False
        super().__init__()

    def addWriter(self, writer: IWriteDescriptor) -> None:
        """Try *writer* before the next poll (a no-op for one being tried or watched already)."""
        if writer is self._prompt_writer:
            self._prompt_finished = False
        elif writer not in self._prompt_watched:
            self._prompt_due[writer] = None

    def removeWriter(self, writer: IWriteDescriptor) -> None:
        """Forget *writer*, whether it waits for its prompt write or for epoll."""
        if writer is self._prompt_writer:
            self._prompt_finished = True
        self._prompt_due.pop(writer, None)
        if writer in self._prompt_watched:
            self._prompt_watched.discard(writer)
            super().removeWriter(writer)

    def getWriters(self) -> list[IWriteDescriptor]:
        """The watched descriptors and those waiting for their prompt write."""
        return super().getWriters() + [writer for writer in self._prompt_due if writer not in self._prompt_watched]

    def removeAll(self) -> list:
        """Forget every descriptor, those waiting for a prompt write too (reactor shutdown)."""
        due = [writer for writer in self._prompt_due if writer not in self._prompt_watched]
        self._prompt_due.clear()
        self._prompt_watched.clear()
        removed = super().removeAll()
        return removed + [writer for writer in due if writer not in removed]

    def doPoll(self, timeout: float | None) -> None:
        """Write for each due descriptor, then poll; no waiting when writing queued more work."""
        if self._prompt_due:
            self._write_due()
            sooner = 0 if self._prompt_due else self.timeout()  # a write may have scheduled a call
            if sooner is not None and (timeout is None or sooner < timeout):
                timeout = sooner
        super().doPoll(timeout)

    doIteration = doPoll

    def _write_due(self) -> None:
        """One ``doWrite()`` per due descriptor; those that still want writing are watched by epoll.

        Each is taken out of the due set as its turn comes, not all at once: a
        write may end another connection of the same turn, whose
        ``removeWriter`` then finds it still there and takes it out.  Those
        that start writing meanwhile stay due for the next turn.
        """
        for writer in list(self._prompt_due):
            if writer not in self._prompt_due:
                continue  # stopped writing since the turn began
            del self._prompt_due[writer]
            self._prompt_writer, self._prompt_finished = writer, False
            try:
                log.callWithLogger(writer, self._doReadOrWrite, writer, writer.fileno(), EPOLLOUT)
                if not self._prompt_finished and writer.fileno() != -1:
                    self._watch(writer)
            finally:
                self._prompt_writer = None

    def _watch(self, writer: IWriteDescriptor) -> None:
        self._prompt_watched.add(writer)
        super().addWriter(writer)


def install() -> None:
    """Install :class:`PromptWriteReactor` as the global reactor."""
    from twisted.internet.main import installReactor

    installReactor(PromptWriteReactor())


def install_unless_chosen() -> None:
    """Install :class:`PromptWriteReactor` unless a reactor is installed already (``twistd --reactor``, a test)."""
    if "twisted.internet.reactor" not in sys.modules:
        install()

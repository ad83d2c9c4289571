"""Every open connection, and closing them all when the server stops, with a word to each.

On SIGTERM the listeners stop accepting first (:mod:`mailsrv.service`),
then :meth:`OpenSessions.close_all` asks every session to leave
(:meth:`~mailsrv.net.pump.CommandPump.leave_when_idle`): one waiting for a
command is told at once (SMTP ``421 4.3.2``, IMAP ``* BYE``, POP3 ``-ERR``)
and closed; one running a command, such as a message arriving in DATA,
finishes it (the message is stored and gets its ``250``) and is told then.
Whatever still runs when the grace period is over is told and closed
anyway, and a client that does not even read that is cut off a moment
later, so the process always exits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

if TYPE_CHECKING:
    from mailsrv.net.pump import CommandPump

log = Logger()

#: Seconds a connection told to close may take to go before it is cut off.
LINGER = 2.0


class OpenSessions:
    """The sessions of every listener that have not ended yet."""

    def __init__(self) -> None:
        self._open: set["CommandPump"] = set()
        self._waiters: list[Deferred[bool]] = []
        self._observers: list[Callable[[bool, "CommandPump"], None]] = []
        self._handshake_observers: list[Callable[["CommandPump"], None]] = []
        self.stopping = False

    def observe(self, observer: Callable[[bool, "CommandPump"], None]) -> None:
        """Call *observer* with ``(True, session)`` when a connection opens and ``(False, session)`` when it ends.

        Every connection of every listener passes here, which makes it the
        one place connections are counted (:mod:`mailsrv.http.metrics`).
        """
        self._observers.append(observer)

    def observe_handshakes(self, observer: Callable[["CommandPump"], None]) -> None:
        """Call *observer* with the session whenever one finishes its TLS handshake."""
        self._handshake_observers.append(observer)

    def handshake(self, session: "CommandPump") -> None:
        """*session* finished its TLS handshake."""
        for observer in self._handshake_observers:
            observer(session)

    def __len__(self) -> int:
        return len(self._open)

    def __iter__(self) -> "Iterator[CommandPump]":
        """The open sessions now (a copy: metrics read them while sessions come and go)."""
        return iter(list(self._open))

    def add(self, session: "CommandPump") -> None:
        """A connection opened (one accepted while stopping is asked to leave at once)."""
        self._open.add(session)
        for observer in self._observers:
            observer(True, session)
        if self.stopping:
            session.leave_when_idle()

    def discard(self, session: "CommandPump") -> None:
        """A connection ended."""
        if session in self._open:
            for observer in self._observers:
                observer(False, session)
        self._open.discard(session)
        if not self._open:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                waiter.callback(True)

    async def close_all(self, grace: float, clock: IReactorTime) -> None:
        """Ask every session to leave; after *grace* seconds close the rest, whatever they do."""
        self.stopping = True
        if not self._open:
            return
        log.info("shutting down: {count} open sessions told to leave; up to {grace} s for commands in progress",
                 count=len(self._open), grace=grace)
        for session in list(self._open):
            session.leave_when_idle()
        if await self._until_empty(grace, clock):
            return
        log.warn("shutting down: {count} sessions still busy after {grace} s; closing them",
                 count=len(self._open), grace=grace)
        for session in list(self._open):
            session.leave()
        if not await self._until_empty(LINGER, clock):
            for session in list(self._open):
                session.transport.abortConnection()
            # Their ended() runs a reactor turn later, and may still need the worker pools.
            await self._until_empty(LINGER, clock)

    def _until_empty(self, timeout: float, clock: IReactorTime) -> "Deferred[bool]":
        """Fires with True once no connection is open, or with False after *timeout* seconds."""
        if not self._open:
            return succeed(True)
        waiter: Deferred[bool] = Deferred(lambda d: self._waiters.remove(d))
        self._waiters.append(waiter)
        return waiter.addTimeout(timeout, clock, onTimeoutCancel=lambda result, timeout: False)

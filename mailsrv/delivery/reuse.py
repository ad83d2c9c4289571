"""SMTP sessions kept open after a transaction, for the next message to the same destination.

A queue run sends many messages to the same few destinations, and a new
connection per message costs a TCP and a TLS handshake on both sides,
the most expensive part of a small message.  RFC 5321 3.3 lets one
session carry any number of transactions, so after one ends well the
session is parked here under its destination for up to
:data:`IDLE_TIME` seconds; the next message for that destination takes
it, sends ``RSET`` (RFC 5321 4.1.1.5) to check it is alive, and carries
on without a handshake; on a peer that offers PIPELINING the ``RSET``
goes in one group with ``MAIL`` and ``RCPT`` (RFC 2920 3.1), so reuse
adds no round trip either.  Postfix's connection cache does the same.

A parked session counts against no slot and opens nothing: a new
connection is only made when no session is parked for the destination,
so the connections open to one destination never exceed the transactions
allowed to it at once; and before a new connection is made, parked
sessions to other destinations beyond the slots free are ended
(:meth:`IdleSessions.evict`, oldest first), so that the connections open
in all never exceed ``[delivery] max_connections`` either.  A session is not parked once it is older than
:data:`MAX_AGE`, so that DNS and policy changes reach long queue runs,
and the peer closing a parked session only drops it from here.

A message for a destination whose session is busy with another message
waits for it a moment (:data:`HANDOFF_WAIT`, :meth:`IdleSessions.handed`):
the session is handed over as it would be parked.  Opening another
connection at once instead, a busy queue run ended up with a connection
per message: each new one took a slot's worth of room from a parked
session elsewhere, whose destination's next message then needed a new
connection too (at 20 destinations, three connections in four were new,
and the handshakes took most of the sender's CPU).  A message that waited
longer opens its own connection, up to the destination's limit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from mailsrv.delivery import dialogue
from mailsrv.delivery.smtpclient import ClientConnection

#: Seconds a parked session waits for the next message before it is closed with QUIT.
IDLE_TIME = 2.0
#: Seconds after its connection a session is no longer parked (it ends with its transaction).
MAX_AGE = 300.0
#: Seconds a message waits for a busy session to its destination before it opens one of its own:
#: about what a new connection takes to get to its first MAIL on the internet (TCP, EHLO, STARTTLS).
HANDOFF_WAIT = 0.3


@dataclass
class Session:
    """An open SMTP session between transactions, and where it goes."""

    conn: ClientConnection
    #: What the peer's last EHLO offered (after STARTTLS, if any).
    extensions: dict[str, str]
    #: The host name (as the MX record or the relay setting named it) and the address connected to.
    host: str
    ip: str
    #: When the connection was made (the clock's seconds).
    opened: float


class IdleSessions:
    """The parked sessions, by destination (a recipient domain, or the relay)."""

    def __init__(self, clock: IReactorTime, idle_time: float = IDLE_TIME, max_age: float = MAX_AGE) -> None:
        self._clock = clock
        self._idle_time = idle_time
        self._max_age = max_age
        self._parked: dict[str, list[tuple[Session, IDelayedCall]]] = {}
        #: Messages waiting for the next session of a destination (:meth:`handed`), first come first.
        self._wanted: dict[str, deque[Deferred[Session | None]]] = {}
        self._closed = False

    def park(self, destination: str, session: Session) -> None:
        """Keep *session* for the next transaction to *destination*, or end it when it should not be kept."""
        if self._closed or not session.conn.reusable or self._clock.seconds() - session.opened > self._max_age:
            _end(session)
            return
        wanted = self._wanted.get(destination)
        if wanted:  # every waiter here still waits: one that timed out or was cancelled left
            waiter = wanted.popleft()
            if not wanted:
                del self._wanted[destination]
            waiter.callback(session)
            return
        timer = self._clock.callLater(self._idle_time, self._expire, destination, session)
        self._parked.setdefault(destination, []).append((session, timer))

    def handed(self, destination: str, timeout: float = HANDOFF_WAIT) -> "Deferred[Session | None]":
        """The next session to *destination* as it is parked, now the caller's; None after *timeout* seconds."""
        waiter: Deferred[Session | None] = Deferred()
        wanted = self._wanted.setdefault(destination, deque())
        wanted.append(waiter)
        timer = self._clock.callLater(timeout, waiter.callback, None)

        def done(result: object) -> object:
            """However it ended (handed a session, timed out, cancelled, closed): out of the line."""
            if timer.active():
                timer.cancel()
            if waiter in wanted:
                wanted.remove(waiter)
                if not wanted and self._wanted.get(destination) is wanted:
                    del self._wanted[destination]
            return result

        return waiter.addBoth(done)

    def destinations(self) -> list[str]:
        """The destinations a session is parked for."""
        return list(self._parked)

    def take(self, destination: str) -> Session | None:
        """The most recently parked session to *destination* still open, or None; it is the caller's now."""
        parked = self._parked.get(destination)
        while parked:
            session, timer = parked.pop()
            timer.cancel()
            if session.conn.reusable:
                break
            session.conn.close()
        else:
            session = None
        if not parked:
            self._parked.pop(destination, None)
        return session

    def evict(self, keep: int) -> "Deferred[None]":
        """End the oldest parked sessions until at most *keep* are left; fires once those are closed."""
        parked = sorted(((timer.getTime(), destination, session) for destination, sessions in self._parked.items()
                         for session, timer in sessions), key=lambda entry: entry[0])
        ending = []
        for _, destination, session in parked[: max(len(parked) - keep, 0)]:
            ending.append(self._expire(destination, session))
        return gatherResults(ending).addCallback(lambda _: None)

    def close(self) -> "Deferred[None]":
        """End every parked session (the server is stopping) and park none from now on; fires once they are closed."""
        self._closed = True
        for wanted in list(self._wanted.values()):
            for waiter in list(wanted):
                waiter.callback(None)
        ending = []
        for parked in self._parked.values():
            for session, timer in parked:
                timer.cancel()
                ending.append(_end(session))
        self._parked.clear()
        return gatherResults(ending).addCallback(lambda _: None)

    def _expire(self, destination: str, session: Session) -> "Deferred[None]":
        parked = self._parked.get(destination, [])
        for i, (held, timer) in enumerate(parked):
            if held is session:
                del parked[i]
                if timer.active():
                    timer.cancel()
                break
        if not parked:
            self._parked.pop(destination, None)
        return _end(session)


def _end(session: Session) -> "Deferred[None]":
    """QUIT (if the session is still in step) and close; fires once the connection is closed."""
    if not session.conn.reusable:
        return session.conn.close()
    return Deferred.fromCoroutine(dialogue.end_session(session.conn)).addBoth(lambda _: session.conn.close())

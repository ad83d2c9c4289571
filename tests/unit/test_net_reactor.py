"""The prompt-write reactor: replies leave before the poll, epoll watches only what could not leave.

Each test makes its own :class:`PromptWriteReactor` (never the global one)
and turns it by hand with ``iterate(0)``; the descriptors are ends of a
socket pair, so a full socket buffer and a closed peer are real.  A spy on
the reactor's epoll object counts the calls Twisted would make to watch a
descriptor for writability: the saving the reactor exists for.
"""

from __future__ import annotations

import socket
import sys

import pytest
from twisted.internet import abstract
from twisted.internet.epollreactor import EPollReactor
from twisted.python.failure import Failure

from mailsrv.net import reactor as prompt


class _SpyPoller:
    """The reactor's epoll object, counting the registrations and modifications asked of it."""

    def __init__(self, poller) -> None:
        self._poller = poller
        self.changes: list[tuple[str, int]] = []
        self.timeouts: list[float] = []

    def register(self, fd, flags):
        self.changes.append(("register", fd))
        return self._poller.register(fd, flags)

    def modify(self, fd, flags):
        self.changes.append(("modify", fd))
        return self._poller.modify(fd, flags)

    def unregister(self, fd):
        self.changes.append(("unregister", fd))
        return self._poller.unregister(fd)

    def poll(self, timeout, maxevents):
        self.timeouts.append(timeout)
        return self._poller.poll(timeout, maxevents)

    def close(self):
        return self._poller.close()

    def fileno(self):
        return self._poller.fileno()


class _End(abstract.FileDescriptor):
    """One end of a socket pair as a Twisted write descriptor."""

    def __init__(self, sock: socket.socket, reactor) -> None:
        super().__init__(reactor)
        self.socket = sock
        sock.setblocking(False)
        self.connected = 1
        self.writes = 0
        self.lost: Failure | None = None

    def fileno(self) -> int:
        return self.socket.fileno() if self.socket is not None else -1

    def writeSomeData(self, data: bytes):
        self.writes += 1
        try:
            return self.socket.send(data)
        except BlockingIOError:
            return 0
        except OSError as e:
            return e

    def connectionLost(self, reason: Failure) -> None:
        self.lost = reason
        super().connectionLost(reason)


@pytest.fixture
def reactor():
    made = prompt.PromptWriteReactor()
    made._poller = _SpyPoller(made._poller)  # see the module docstring: the calls are what is tested
    yield made
    _dispose(made)


def _dispose(made) -> None:
    """Close what a reactor that never ran holds: its epoll object and its waker's pipe."""
    made.removeAll()
    for reader in list(made._internalReaders):
        made.removeReader(reader)
    made.waker.connectionLost(None)
    made._poller.close()


@pytest.fixture
def pair(reactor):
    here, there = socket.socketpair()
    end = _End(here, reactor)
    yield end, there
    for sock in (here, there):
        sock.close()


def _received(sock: socket.socket) -> bytes:
    sock.setblocking(False)
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_reply_leaves_before_the_poll_and_epoll_never_hears_of_it(reactor, pair):
    end, peer = pair
    end.write(b"250 2.0.0 Ok\r\n")
    assert end in reactor.getWriters()
    reactor.iterate(0)
    assert _received(peer) == b"250 2.0.0 Ok\r\n"
    assert end.fileno() not in [fd for _, fd in reactor._poller.changes]
    assert reactor.getWriters() == []


def test_the_stock_reactor_watches_for_every_reply():
    """What the spy sees without the change: the counterpart of the test above can fail."""
    stock = EPollReactor()
    spy = stock._poller = _SpyPoller(stock._poller)
    here, there = socket.socketpair()
    end = _End(here, stock)
    try:
        end.write(b"250 2.0.0 Ok\r\n")
        stock.iterate(0)
        assert _received(there) == b"250 2.0.0 Ok\r\n"
        assert [change for change, fd in spy.changes if fd == end.fileno()] == ["register", "unregister"]
    finally:
        here.close()
        there.close()
        _dispose(stock)


def test_writes_of_one_turn_leave_in_one_send(reactor, pair):
    end, peer = pair
    for line in (b"250-mx.example\r\n", b"250-PIPELINING\r\n", b"250 SMTPUTF8\r\n"):
        end.write(line)
    reactor.iterate(0)
    assert end.writes == 1
    assert _received(peer) == b"250-mx.example\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n"


def test_what_the_socket_cannot_take_is_watched_by_epoll_until_it_has_left(reactor, pair):
    end, peer = pair
    data = b"x" * (8 << 20)  # far more than a socket buffer
    end.write(data)
    reactor.iterate(0)
    assert ("register", end.fileno()) in reactor._poller.changes
    assert end in reactor.getWriters()
    got = []
    for _ in range(10_000):
        got.append(_received(peer))
        reactor.iterate(0)
        if end not in reactor.getWriters():
            break
    got.append(_received(peer))
    assert b"".join(got) == data
    assert reactor._poller.changes[-1] == ("unregister", end.fileno())


def test_a_peer_that_went_away_ends_the_connection_at_the_prompt_write(reactor, pair):
    end, peer = pair
    peer.close()
    end.write(b"250 2.0.0 Ok\r\n")
    reactor.iterate(0)
    assert end.lost is not None
    assert reactor.getWriters() == []
    assert end.fileno() not in [fd for _, fd in reactor._poller.changes]


def test_a_writer_that_stops_before_the_poll_is_not_written(reactor, pair):
    end, _peer = pair
    reactor.addWriter(end)
    reactor.removeWriter(end)
    reactor.iterate(0)
    assert end.writes == 0
    assert reactor.getWriters() == []


def test_a_writer_that_asks_again_while_written_is_watched(reactor, pair):
    """A client socket still connecting answers ``doWrite`` by starting to write again."""
    end, _peer = pair
    calls = []

    def connecting():
        calls.append(1)
        end.stopWriting()
        end.startWriting()

    end.doWrite = connecting
    reactor.addWriter(end)
    reactor.iterate(0)
    assert calls == [1, 1]  # once before the poll, then when epoll found the socket writable
    assert ("register", end.fileno()) in reactor._poller.changes
    assert end in reactor.getWriters()


def test_a_call_scheduled_by_a_prompt_write_keeps_the_poll_from_waiting(reactor, pair):
    end, _peer = pair
    done = []
    end.write(b"250 2.0.0 Ok\r\n")
    original = end.doWrite

    def write_then_schedule():
        reactor.callLater(0, done.append, 1)
        return original()

    end.doWrite = write_then_schedule
    reactor.doIteration(60)
    assert reactor._poller.timeouts[-1] == 0
    reactor.iterate(0)
    assert done == [1]


def test_remove_all_names_writers_waiting_for_their_prompt_write(reactor, pair):
    end, _peer = pair
    end.write(b"250 2.0.0 Ok\r\n")
    assert end in reactor.removeAll()
    assert reactor.getWriters() == []


def test_installed_only_when_no_reactor_was_chosen(monkeypatch):
    installed = []
    monkeypatch.setattr(prompt, "install", lambda: installed.append(1))
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", object())
    prompt.install_unless_chosen()
    assert installed == []
    monkeypatch.delitem(sys.modules, "twisted.internet.reactor")
    prompt.install_unless_chosen()
    assert installed == [1]


def test_a_writer_stopped_by_another_prompt_write_of_the_same_turn_is_not_written(reactor):
    """One connection's write may end another's (a proxy's two sides): the ended one is skipped."""
    first_pair, second_pair = socket.socketpair(), socket.socketpair()
    first, second = _End(first_pair[0], reactor), _End(second_pair[0], reactor)
    try:
        original = first.doWrite

        def write_and_stop_the_other():
            second.stopWriting()
            return original()

        first.doWrite = write_and_stop_the_other
        first.write(b"250 2.0.0 Ok\r\n")
        second.write(b"250 2.0.0 Ok\r\n")
        reactor.iterate(0)
        assert first.writes == 1
        assert second.writes == 0
        assert second not in reactor.getWriters()
    finally:
        for sock in (*first_pair, *second_pair):
            sock.close()

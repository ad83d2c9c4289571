"""The parked sessions of :mod:`mailsrv.delivery.reuse`: how long they wait, and which are kept at all."""

from __future__ import annotations

from twisted.internet import defer, task

from mailsrv.delivery.reuse import HANDOFF_WAIT, IDLE_TIME, MAX_AGE, IdleSessions, Session
from mailsrv.delivery.smtpclient import Reply


class FakeConnection:
    """Stands for a ClientConnection: records what was sent, answers QUIT with 221."""

    def __init__(self) -> None:
        self.reusable = True
        self.sent: list[str] = []
        self.closed = False

    def send(self, line: str) -> None:
        self.sent.append(line)

    def read_reply(self, timeout: float) -> defer.Deferred:
        return defer.succeed(Reply(221, ("bye",)))

    def close(self) -> defer.Deferred:
        self.closed, self.reusable = True, False
        return defer.succeed(None)


def parked(clock: task.Clock, opened: float = 0.0) -> tuple[IdleSessions, Session]:
    sessions = IdleSessions(clock)
    session = Session(FakeConnection(), {}, "mx.example.org", "192.0.2.25", opened)
    sessions.park("example.org", session)
    return sessions, session


def test_a_parked_session_is_taken_for_its_destination_only():
    sessions, session = parked(task.Clock())
    assert sessions.take("example.net") is None
    assert sessions.take("example.org") is session
    assert sessions.take("example.org") is None


def test_an_idle_session_ends_with_quit_after_the_idle_time():
    clock = task.Clock()
    sessions, session = parked(clock)
    clock.advance(IDLE_TIME - 0.1)
    assert not session.conn.closed
    clock.advance(0.2)
    assert session.conn.sent == ["QUIT"] and session.conn.closed
    assert sessions.take("example.org") is None and not clock.getDelayedCalls()


def test_taking_a_session_stops_its_idle_timer():
    clock = task.Clock()
    sessions, session = parked(clock)
    assert sessions.take("example.org") is session
    clock.advance(IDLE_TIME * 2)
    assert not session.conn.closed


def test_a_session_the_peer_closed_is_not_handed_out():
    sessions, session = parked(task.Clock())
    session.conn.reusable = False
    assert sessions.take("example.org") is None


def test_an_old_session_is_ended_instead_of_parked():
    clock = task.Clock()
    clock.advance(MAX_AGE + 1)
    sessions, session = parked(clock, opened=0.0)
    assert session.conn.closed and sessions.take("example.org") is None


def test_close_ends_the_parked_sessions_and_parks_no_more():
    clock = task.Clock()
    sessions, session = parked(clock)
    closed = sessions.close()
    assert closed.called and session.conn.sent == ["QUIT"] and session.conn.closed
    later = Session(FakeConnection(), {}, "mx.example.org", "192.0.2.25", 0.0)
    sessions.park("example.org", later)
    assert later.conn.sent == ["QUIT"] and sessions.take("example.org") is None
    assert not clock.getDelayedCalls()


def test_a_session_parked_while_a_message_waits_for_its_destination_is_handed_to_it():
    clock = task.Clock()
    sessions = IdleSessions(clock)
    waiting = sessions.handed("example.org")
    session = Session(FakeConnection(), {}, "mx.example.org", "192.0.2.25", 0.0)
    sessions.park("example.org", session)
    assert waiting.result is session  # the caller's now: not parked, no idle timer
    assert sessions.take("example.org") is None and not clock.getDelayedCalls()


def test_a_message_waits_for_a_busy_session_a_moment_only():
    clock = task.Clock()
    sessions = IdleSessions(clock)
    waiting = sessions.handed("example.org")
    clock.advance(HANDOFF_WAIT)
    assert waiting.result is None  # it opens a connection of its own
    assert sessions._wanted == {}  # nothing left behind for a destination that is never parked again
    session = Session(FakeConnection(), {}, "mx.example.org", "192.0.2.25", 0.0)
    sessions.park("example.org", session)
    assert sessions.take("example.org") is session


def test_close_answers_the_waiting_messages():
    sessions = IdleSessions(task.Clock())
    waiting = sessions.handed("example.org")
    sessions.close()
    assert waiting.result is None
    assert sessions._wanted == {}


def test_a_cancelled_wait_leaves_the_line_and_the_next_waiter_gets_the_session():
    clock = task.Clock()
    sessions = IdleSessions(clock)
    cancelled, waiting = sessions.handed("example.org"), sessions.handed("example.org")
    cancelled.cancel()
    cancelled.addErrback(lambda f: f.trap(defer.CancelledError))
    session = Session(FakeConnection(), {}, "mx.example.org", "192.0.2.25", 0.0)
    sessions.park("example.org", session)
    assert waiting.result is session and sessions._wanted == {} and not clock.getDelayedCalls()

"""A fake rspamd on 127.0.0.1 (twisted.web, in the test's reactor): scanner and controller in one.

``FakeRspamd.listen(case)`` serves ``/checkv2``, ``/learnspam`` and
``/learnham`` on a free port and records every request (:attr:`requests`:
path, headers, body).  :attr:`mode` says how the next requests are
answered: an action name (a JSON answer with that action and
:attr:`score`), ``"garbage"`` (not JSON), ``"500"``, ``"close"`` (the
connection dropped without an answer) or ``"hang"`` (never answered:
the client's timeout must end it).  :meth:`received` fires once that many
requests have arrived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.trial import unittest
from twisted.web import resource, server

import support

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@dataclass
class Request:
    """One request as the fake received it."""

    path: str
    headers: dict[str, list[str]]
    body: bytes


class FakeRspamd(resource.Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.mode = "no action"
        self.score = 1.5
        self.subject: str | None = None
        self.requests: list[Request] = []
        self.hanging: list[server.Request] = []
        self._waiting: list[tuple[int, defer.Deferred[None]]] = []

    def listen(self, case: unittest.TestCase) -> str:
        """Serve on 127.0.0.1 until *case* ends; the base URL."""
        port = support.listen_loopback(case, server.Site(self))
        case.addCleanup(self._release)  # before the port's cleanup, which waits for every connection to end
        return f"http://127.0.0.1:{port}"

    def received(self, count: int = 1) -> "defer.Deferred[None]":
        """Fires once *count* requests in all have arrived."""
        d: defer.Deferred[None] = defer.Deferred()
        self._waiting.append((count, d))
        self._wake()
        return d

    def _wake(self) -> None:
        for count, d in list(self._waiting):
            if len(self.requests) >= count:
                self._waiting.remove((count, d))
                d.callback(None)

    def render_POST(self, request: server.Request) -> Any:
        headers = {name.decode(): [v.decode() for v in values]
                   for name, values in request.requestHeaders.getAllRawHeaders()}
        self.requests.append(Request(request.path.decode(), headers, request.content.read()))
        self._wake()
        if self.mode == "hang":
            self.hanging.append(request)
            return server.NOT_DONE_YET
        if self.mode == "close":
            request.channel.transport.abortConnection()
            return server.NOT_DONE_YET
        if self.mode == "500":
            request.setResponseCode(500)
            return b"internal error"
        if self.mode == "garbage":
            return b"<html>this is no rspamd</html>"
        if request.path != b"/checkv2":
            return b'{"success":true}'
        answer = {"is_skipped": False, "score": self.score, "required_score": 15.0, "action": self.mode,
                  "symbols": {}, "messages": {}}
        if self.subject is not None:
            answer["subject"] = self.subject
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(answer).encode()

    def answer_hanging(self) -> None:
        """Let the oldest hung request succeed."""
        request = self.hanging.pop(0)
        request.write(b'{"success":true}')
        request.finish()

    def _release(self) -> None:
        """Let the client see hung requests closed, so the test ends clean."""
        for request in self.hanging:
            request.channel.transport.abortConnection()

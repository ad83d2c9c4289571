"""The HTTP-01 challenge (RFC 8555 8.3): ``/.well-known/acme-challenge/<token>`` answers the key authorization.

The ordering thread publishes a token before it tells the CA to validate
and withdraws it when the order is over.  The table is read by twisted.web
on the reactor thread, so it is changed there only: :class:`HandOver` passes
each change with ``callFromThread`` and waits until the reactor made it,
so the CA never fetches a token that is not served yet.
"""

from __future__ import annotations

import re
import threading
from typing import Any, Callable

from twisted.internet.interfaces import IReactorFromThreads
from twisted.web.resource import Resource
from twisted.web.server import Request

from mailsrv.http.pages import Folder, NotFound, Page

#: RFC 8555 8.3: the token is base64url, no padding.
_TOKEN = re.compile(r"[A-Za-z0-9_-]+\Z")
#: Seconds the ordering thread waits for the reactor to take a token.
HAND_OVER_TIMEOUT = 30.0


class ChallengeTokens:
    """Key authorizations by token, for the tokens of the orders in progress; reactor thread only."""

    def __init__(self) -> None:
        self._answers: dict[str, str] = {}

    def publish(self, token: str, key_authorization: str) -> None:
        """Serve *key_authorization* at *token* (a token that is not base64url is refused)."""
        if not _TOKEN.match(token):
            raise ValueError(f"not an ACME token: {token!r}")
        self._answers[token] = key_authorization

    def withdraw(self, token: str) -> None:
        """Stop serving *token* (the order is over)."""
        self._answers.pop(token, None)

    def answer(self, token: str) -> str | None:
        """The key authorization of *token*, ``None`` for a token no order published."""
        return self._answers.get(token)


class HandOver:
    """The ordering thread's side of :class:`ChallengeTokens`: each change is made on the reactor thread."""

    def __init__(self, tokens: ChallengeTokens, reactor: IReactorFromThreads,
                 timeout: float = HAND_OVER_TIMEOUT) -> None:
        self.tokens = tokens
        self.reactor = reactor
        self.timeout = timeout

    def publish(self, token: str, key_authorization: str) -> None:
        """Serve the token, returning once the reactor does (:class:`TimeoutError` if it does not)."""
        self._call(self.tokens.publish, token, key_authorization)

    def withdraw(self, token: str) -> None:
        """Stop serving the token (no wait: nothing depends on when)."""
        self.reactor.callFromThread(self.tokens.withdraw, token)

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        done = threading.Event()
        failure: list[BaseException] = []

        def on_reactor() -> None:
            try:
                fn(*args)
            except Exception as e:  # handed back to the thread, which reports it
                failure.append(e)
            finally:
                done.set()

        self.reactor.callFromThread(on_reactor)
        if not done.wait(self.timeout):
            raise TimeoutError("the reactor did not take the challenge token in time")
        if failure:
            raise failure[0]


class ChallengeFolder(Folder):
    """``/.well-known/acme-challenge/``: one page per published token, 404 for any other name."""

    def __init__(self, tokens: ChallengeTokens) -> None:
        super().__init__()
        self.tokens = tokens

    def getChild(self, path: bytes, request: Request) -> Resource:
        """The key authorization of the token *path*."""
        answer = self.tokens.answer(path.decode("ascii", "replace"))
        return NotFound() if answer is None else KeyAuthorization(answer.encode("ascii"))


class KeyAuthorization(Page):
    """The body the CA compares with the key authorization it computed (RFC 8555 8.3)."""

    content_type = b"application/octet-stream"

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def page(self, request: Request) -> bytes:
        """The key authorization, nothing else (no newline: the CA compares it byte for byte)."""
        return self.body

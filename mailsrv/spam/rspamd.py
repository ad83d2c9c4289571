"""rspamd's HTTP protocol: ``/checkv2`` on the scanner, ``/learnspam`` and ``/learnham`` on the controller.

The envelope goes in request headers (``From``, one ``Rcpt`` per
recipient, ``IP``, ``Helo``, ``Queue-Id``, ``MTA-Name``), the message is the
request body, and the scanner answers a JSON object whose ``action`` says
what to do with the message (rspamd's "protocol" documentation).  Every way
a request can fail (refused, reset, too slow, an HTTP error, an answer
that is no such object) is one :class:`ScanFailed`, so the caller has a
single case to turn into "deliver unchecked" or "try again later".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from twisted.internet import defer, protocol
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime
    from twisted.python.failure import Failure
    from twisted.web.iweb import IBodyProducer, IResponse

#: The actions rspamd's metric ends in, mildest last (rspamd 3 adds "discard" and "quarantine").
ACTIONS = ("reject", "soft reject", "discard", "quarantine", "rewrite subject", "add header", "greylist",
           "no action")


#: The longest answer read; rspamd's are a few KiB (the symbols of one message).
MAX_ANSWER = 1024 * 1024


class ScanFailed(Exception):
    """rspamd gave no usable answer; the text says why (for the log and the Unchecked header)."""


class _Answer(protocol.Protocol):
    """Collects a response body of at most :data:`MAX_ANSWER` octets into :attr:`done`."""

    def __init__(self) -> None:
        self.done: defer.Deferred[bytes] = defer.Deferred()
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        self._parts.append(data)
        if self._size > MAX_ANSWER:
            self.transport.stopProducing()  # the connection closes: connectionLost fails the answer

    def connectionLost(self, reason: "Failure" = protocol.connectionDone) -> None:
        if self._size > MAX_ANSWER:
            self.done.errback(ScanFailed(f"answer longer than {MAX_ANSWER} octets"))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)


def _reason(error: Exception) -> str:
    """One line on why a request failed (the first reason of Twisted's ResponseFailed and kin)."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return reasons[0].getErrorMessage() or reasons[0].type.__name__
    return str(error) or type(error).__name__


def _read(response: "IResponse") -> "defer.Deferred[bytes]":
    answer = _Answer()
    response.deliverBody(answer)
    return answer.done


@dataclass(frozen=True)
class Scan:
    """What the scanner said of one message."""

    action: str
    score: float
    required: float
    #: The subject to give the message, for ``rewrite subject``.
    subject: str | None = None


def parse_scan(answer: bytes) -> Scan:
    """The :class:`Scan` in a ``/checkv2`` answer; :class:`ScanFailed` for anything else."""
    try:
        result = json.loads(answer)
        action = result["action"]
        score, required = float(result["score"]), float(result.get("required_score", math.nan))
        subject = result.get("subject")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise ScanFailed("unreadable answer") from None
    if action not in ACTIONS or not math.isfinite(score) or not isinstance(subject, (str, type(None))):
        raise ScanFailed("unreadable answer")
    return Scan(action=action, score=score, required=required, subject=subject)


class Rspamd:
    """A client of one rspamd: *scanner* and *controller* are base URLs (``""``: that side is unused).

    Each request, connection and answer included, has *timeout* seconds on
    *clock*; connections are not kept (rspamd closes them after each answer).
    """

    def __init__(
        self, reactor: object, scanner: str, controller: str = "", password: str = "", timeout: float = 20,
        clock: "IReactorTime | None" = None,
    ) -> None:
        self._agent = Agent(reactor, connectTimeout=timeout, pool=HTTPConnectionPool(reactor, persistent=False))
        self._scanner = scanner
        self._controller = controller
        self._password = password
        self._timeout = timeout
        self._clock = clock if clock is not None else reactor

    @property
    def learns(self) -> bool:
        """True when a controller is configured."""
        return bool(self._controller)

    async def check(self, envelope: Mapping[str, "str | Sequence[str]"], message: "IBodyProducer") -> Scan:
        """Scan *message*; *envelope* is the request headers (a list for ``Rcpt``)."""
        headers = Headers()
        for name, value in envelope.items():
            headers.setRawHeaders(name, [value] if isinstance(value, str) else list(value))
        return parse_scan(await self._post(self._scanner + "/checkv2", headers, message))

    async def learn(self, spam: bool, message: "IBodyProducer") -> None:
        """Teach the controller that *message* is spam (or ham); :class:`ScanFailed` when it did not learn.

        rspamd answers 208 for a message it learnt before, which is no failure.
        """
        headers = Headers()
        if self._password:
            headers.setRawHeaders("Password", [self._password])
        await self._post(self._controller + ("/learnspam" if spam else "/learnham"), headers, message, ok=(200, 208))

    async def _post(
        self, url: str, headers: Headers, message: "IBodyProducer", ok: tuple[int, ...] = (200,),
    ) -> bytes:
        async def exchange() -> tuple[int, bytes]:
            response = await self._agent.request(b"POST", url.encode("ascii"), headers, message)
            return response.code, await _read(response)

        attempt = defer.Deferred.fromCoroutine(exchange())
        # Not addTimeout: a cancelled Agent request fails with ResponseNeverReceived, not CancelledError.
        timer = self._clock.callLater(self._timeout, attempt.cancel)
        try:
            code, answer = await attempt
        except ScanFailed:
            raise
        except Exception as e:  # refused, reset, DNS of the URL's host: all "rspamd is down"
            if not timer.active():
                raise ScanFailed(f"no answer in {self._timeout:g}s") from None
            raise ScanFailed(_reason(e)) from None
        finally:
            if timer.active():
                timer.cancel()
        if code not in ok:
            raise ScanFailed(f"HTTP status {code}")
        return answer

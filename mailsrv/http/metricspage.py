"""``/metrics``: the Prometheus text of :class:`mailsrv.http.metrics.Metrics`, open or behind a bearer token.

On the ``metrics`` listener it is open (bind that where only the scraper
reaches); on ``http``/``https`` it needs ``Authorization: Bearer
<[http] metrics_token>`` and is not there at all without a token.  The
token is compared in constant time.  The text is made in the disk pool
(:meth:`~mailsrv.http.metrics.Metrics.render` reads the queue directory).
"""

from __future__ import annotations

import hmac

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.server import NOT_DONE_YET, Request

from mailsrv.http.metrics import CONTENT_TYPE, Metrics
from mailsrv.http.pages import Page, Refused, refuse
from mailsrv.workers import Executor

log = Logger()


class MetricsPage(Page):
    """The metrics, rendered off the reactor; *token* ``None``: open, else the bearer token required."""

    def __init__(self, metrics: Metrics, disk: Executor, token: str | None) -> None:
        super().__init__()
        self.metrics = metrics
        self.disk = disk
        self.token = token

    def _authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        # RFC 6750 2.1: "Authorization: Bearer <token>", the scheme case-insensitive.
        scheme, _, given = (request.getHeader(b"Authorization") or b"").decode("latin-1").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def render_GET(self, request: Request) -> "bytes | int":
        """Check the token, take the session gauges here, render the text in the disk pool."""
        if not self._authorized(request):
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="mailsrv metrics"')
            return refuse(request, Refused(401, "a bearer token is required"))
        self.metrics.snapshot_sessions()
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def rendered(text: bytes) -> None:
            if gone:
                return
            request.setHeader(b"Content-Type", CONTENT_TYPE)
            request.setHeader(b"Cache-Control", b"no-store")
            request.write(text)
            request.finish()

        def failed(failure: Failure) -> None:
            log.failure("rendering the metrics failed", failure)
            if not gone:
                request.write(refuse(request, Refused(500, "the metrics could not be read")))
                request.finish()

        self.disk.run(self.metrics.render).addCallbacks(rendered, failed)
        return NOT_DONE_YET

"""The twisted.web site of each HTTP listener kind: its resource tree and the limits on requests.

``http`` and ``https`` serve the client settings, the MTA-STS policy,
with ``[tls] acme`` the ACME HTTP-01 tokens and, with ``[http]
metrics_token``, ``/metrics``; ``metrics`` serves only
``/metrics``, without a token.  Any other path is 404, a method a page does
not take is 405, and a request body past ``[http] max_request_body`` gets
413 and the connection closed before the rest is read (twisted.web
itself bounds the request line and headers).  An implicit-TLS ``https``
listener is wrapped in the certificate by :func:`mailsrv.listeners.listener`
like every other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IReactorTime
from twisted.web.http import combinedLogFormatter
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from mailsrv.acme.challenge import ChallengeFolder
from mailsrv.http.autoconfig import Autoconfig
from mailsrv.http.autodiscover import Autodiscover
from mailsrv.http.metricspage import MetricsPage
from mailsrv.http.mobileconfig import MobileConfig
from mailsrv.http.mtasts import MTASTSPolicy
from mailsrv.http.pages import Folder
from mailsrv.listeners import Kind

if TYPE_CHECKING:
    from mailsrv.context import ServerContext

#: RFC 9110 15.5.14.
_TOO_LARGE = b"HTTP/1.1 413 Content Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


class LimitedRequest(Request):
    """A request whose body may not pass the site's ``max_body``: past it, 413 and the connection closes."""

    _refused = False

    def gotLength(self, length: int | None) -> None:
        """A declared Content-Length past the limit is refused before a byte of the body is read."""
        if length is not None and length > self.channel.site.max_body:
            super().gotLength(0)  # no temporary file for a body that is never kept
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        """Keep the body up to the limit (a chunked body declares no length)."""
        if self._refused:
            return
        if self.content.tell() + len(data) > self.channel.site.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        """Answer nothing more for a refused request: the end of its body may arrive in the same read."""
        if not self._refused:
            super().requestReceived(command, path, version)

    def _refuse(self) -> None:
        self._refused = True
        self.channel.transport.write(_TOO_LARGE)
        self.channel.loseConnection()


class _WithoutQuery:
    """A request as the access log sees it: its URI without the query string."""

    def __init__(self, request: Any) -> None:
        self._request = request

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)

    @property
    def uri(self) -> bytes:
        return self._request.uri.split(b"?", 1)[0]


def access_line(timestamp: str, request: Any) -> str:
    """twisted.web's combined log line, leaving out the query string: clients put their address there."""
    return combinedLogFormatter(timestamp, _WithoutQuery(request))


class MailSite(Site):
    """The site of one listener, with the body limit its requests read and the access lines of :func:`access_line`."""

    requestFactory = LimitedRequest
    displayTracebacks = False
    noisy = False

    def __init__(self, root: Resource, max_body: int, timeout: float, clock: IReactorTime | None = None) -> None:
        super().__init__(root, timeout=timeout, reactor=clock, logFormatter=access_line)
        self.max_body = max_body


def mount(root: Resource, path: bytes, page: Resource) -> None:
    """Put *page* at the absolute *path* below *root*, making the folders on the way."""
    *folders, name = path.strip(b"/").split(b"/")
    node = root
    for folder in folders:
        node = node.children.get(folder) or _add(node, folder)
    node.putChild(name, page)


def _add(node: Resource, name: bytes) -> Resource:
    folder = Folder()
    node.putChild(name, folder)
    return folder


def root_for(ctx: "ServerContext", kind: Kind) -> Resource:
    """The resource tree a listener of *kind* serves."""
    config = ctx.config
    root = Folder()
    assert ctx.metrics is not None, "tap.assemble makes the metrics"
    token = None if kind is Kind.METRICS else config.http.metrics_token
    if kind is Kind.METRICS or token:
        mount(root, b"/metrics", MetricsPage(ctx.metrics, ctx.workers.disk, token))
    if kind is Kind.METRICS:
        return root
    autoconfig = Autoconfig(config)
    mount(root, b"/mail/config-v1.1.xml", autoconfig)
    mount(root, b"/.well-known/autoconfig/mail/config-v1.1.xml", autoconfig)
    autodiscover = Autodiscover(config)
    # Outlook writes both spellings.
    mount(root, b"/autodiscover/autodiscover.xml", autodiscover)
    mount(root, b"/Autodiscover/Autodiscover.xml", autodiscover)
    mount(root, b"/apple/mailsrv.mobileconfig", MobileConfig(config))
    mount(root, b"/.well-known/mta-sts.txt", MTASTSPolicy(config))
    if ctx.acme_tokens is not None:
        mount(root, b"/.well-known/acme-challenge", ChallengeFolder(ctx.acme_tokens))
    return root


def make_factory(ctx: "ServerContext", kind: Kind, clock: IReactorTime | None = None) -> MailSite:
    """The factory of an HTTP listener of *kind*; its idle timer runs on *clock* (the reactor unless a test's)."""
    if kind.protocol != "http":
        raise ValueError(f"not an http listener kind: {kind.label}")
    http = ctx.config.http
    return MailSite(root_for(ctx, kind), http.max_request_body, http.idle_timeout, clock)

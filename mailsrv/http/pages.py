"""What every resource of ours shares: refusals as HTTP statuses, the address a client asks for.

A handler raises :class:`Refused` for bad input; :class:`Page` turns it into
the status and a one-line text body, so no client ever sees a traceback
(twisted.web's own 500 page is kept for our bugs, without the traceback:
``Site.displayTracebacks`` is off).
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from mailsrv.address import address_problem, canonical_address
from mailsrv.config import Config


class Refused(Exception):
    """A request we answer with *status* and the one line *text*."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status
        self.text = text


class Page(Resource):
    """A resource at one path (nothing below it) answering GET (and HEAD) with :meth:`page`.

    Every method a subclass does not render gets 405 with an ``Allow``
    header (RFC 9110 15.5.6), also those twisted.web would answer with 501
    and an HTML page (DELETE, PUT...).
    """

    #: The media type of what :meth:`page` returns.
    content_type = b"text/plain; charset=utf-8"

    def getChild(self, path: bytes, request: Request) -> Resource:
        """Nothing lives below a page: ``/mail/config-v1.1.xml/x`` is 404."""
        return NotFound()

    def page(self, request: Request) -> bytes:
        """The body for *request*; raises :class:`Refused` for bad input."""
        raise NotImplementedError

    def answer(self, request: Request) -> bytes:
        """:meth:`page` with its media type, or the refusal as status and text."""
        try:
            body = self.page(request)
        except Refused as refusal:
            return refuse(request, refusal)
        request.setHeader(b"Content-Type", self.content_type)
        request.setHeader(b"Cache-Control", b"no-store")
        return body

    def render_GET(self, request: Request) -> bytes:
        """Answer a GET (twisted.web answers HEAD with the same headers)."""
        return self.answer(request)

    def render(self, request: Request) -> "bytes | int":
        """The ``render_<METHOD>`` of the request's method (HEAD as GET), else 405."""
        method = request.method.decode("ascii", "replace")
        handler = getattr(self, f"render_{'GET' if method == 'HEAD' else method}", None)
        if method.isalpha() and method.isupper() and handler is not None:
            return handler(request)
        allowed = sorted({"HEAD", *(name[len("render_"):] for name in dir(self)
                                    if name.startswith("render_") and name[len("render_"):].isupper())})
        request.setHeader(b"Allow", ", ".join(allowed).encode())
        return refuse(request, Refused(405, "method not allowed"))


class ConfigPage(Page):
    """A page made from the configuration alone (client settings, the MTA-STS policy)."""

    def __init__(self, config: Config) -> None:
        super().__init__()
        self.config = config


def refuse(request: Request, refusal: Refused) -> bytes:
    """Set *refusal*'s status on *request*; its text is the body."""
    request.setResponseCode(refusal.status)
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    return refusal.text.encode() + b"\n"


class NotFound(Resource):
    """404 for every method, at every path below."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        """Every method: 404."""
        return refuse(request, Refused(404, "not found"))


class Folder(Resource):
    """A path segment with pages below it and nothing of its own: itself and unknown children are 404."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        """An unknown name below this folder."""
        return NotFound()

    def render(self, request: Request) -> bytes:
        """The folder itself is no page."""
        return refuse(request, Refused(404, "not found"))


def local_address(config: Config, value: str) -> str:
    """*value* as a canonical address of a local domain; :class:`Refused` says what is wrong with it."""
    address = canonical_address(value)
    if address is None:
        raise Refused(400, f"not an email address: {address_problem(value)}")
    if address.rpartition("@")[2] not in config.domains:
        raise Refused(404, "not a domain of this server")
    return address


def query_address(request: Request, config: Config) -> str | None:
    """The ``emailaddress`` of the query, checked (:func:`local_address`); ``None`` when there is none."""
    values = request.args.get(b"emailaddress")
    if not values:
        return None
    try:
        text = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "the email address is not UTF-8") from None
    return local_address(config, text)


def host_domain(request: Request, config: Config, prefix: str) -> str | None:
    """The local domain the ``Host`` names as ``<prefix>.<domain>`` (``mta-sts.example.org``), else ``None``."""
    host = request.getRequestHostname().decode("ascii", "replace").lower().rstrip(".")
    label, dot, domain = host.partition(".")
    return domain if dot and label == prefix and domain in config.domains else None

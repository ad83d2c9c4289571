"""The policy file of a domain, fetched over HTTPS as RFC 8461 3.3 asks.

``GET https://mta-sts.<domain>/.well-known/mta-sts.txt`` with Twisted's
``Agent``: the certificate must chain to a trusted CA (``[delivery] tls_ca_file``
or the system's store) and be valid for ``mta-sts.<domain>``; only a
``200`` counts, a redirect is not followed; the media type must be
``text/plain``; the body may be at most :data:`MAX_SIZE` octets and the
whole fetch may take :data:`TIMEOUT` seconds.  The policy host's address
comes from the server's resolver in the ``dns`` pool, as every lookup
does (Twisted's own name resolution would ask the system, not ``[dns]``).

Not treq: it always wraps the agent in a gzip decoder, which inflates
each received chunk without a limit, so a hostile policy host could make
one 64 KiB chunk a 64 MiB one before the size check sees it.  Here the
request asks for ``identity`` and a response with any content coding is
refused unread.
"""

from __future__ import annotations

from twisted.internet import defer, error
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone, ResponseFailed, ResponseNeverReceived
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

from mailsrv.delivery import clienttls, mx
from mailsrv.workers import Executor

#: RFC 8461 3.3: where the policy is, below the policy host.
WELL_KNOWN = "/.well-known/mta-sts.txt"
#: RFC 8461 3.3 asks for a limit on the response; real policies are a few hundred octets.
MAX_SIZE = 64 * 1024
#: Seconds the whole fetch (lookup, connection, TLS, response) may take.
TIMEOUT = 60.0
#: Seconds a TCP connection to one address of the policy host may take.
CONNECT_TIMEOUT = 30.0


_TIMED_OUT = "no response within {:g} s"


class FetchError(Exception):
    """No policy could be fetched; the message says why, for the log."""


def policy_host(domain: str) -> str:
    """RFC 8461 3.3: the host serving *domain*'s policy."""
    return f"mta-sts.{domain}"


class Fetcher:
    """Fetches policy files; *port* is 443 but for tests (``[delivery] mta_sts_port``)."""

    def __init__(self, reactor: object, resolver: object, dns: Executor, trust: object, port: int = 443) -> None:
        self._reactor = reactor
        self._port = port
        endpoints = _Endpoints(reactor, resolver, dns, trust)
        self._agent = Agent.usingEndpointFactory(reactor, endpoints, pool=HTTPConnectionPool(reactor, persistent=False))

    def url(self, domain: str) -> str:
        """Where *domain*'s policy is."""
        port = "" if self._port == 443 else f":{self._port}"
        return f"https://{policy_host(domain)}{port}{WELL_KNOWN}"

    async def fetch(self, domain: str) -> str:
        """The policy text of *domain*; :class:`FetchError` for every way that can fail."""
        deadline = self._reactor.seconds() + TIMEOUT
        request = self._agent.request(b"GET", self.url(domain).encode("ascii"),
                                      Headers({b"Accept-Encoding": [b"identity"]}))
        timer = self._reactor.callLater(TIMEOUT, request.cancel)
        try:
            response = await request
        except defer.CancelledError:  # the timeout, before a connection was made
            raise FetchError(_TIMED_OUT.format(TIMEOUT)) from None
        except (ResponseNeverReceived, ResponseFailed) as e:
            raise FetchError(_why(e.reasons[0])) from None
        except (error.ConnectError, error.ConnectionLost, mx.DNSTrouble) as e:
            raise FetchError(str(e)) from None
        finally:
            if timer.active():
                timer.cancel()
        if response.code != 200:  # RFC 8461 3.3: no redirects, nothing but 200
            raise FetchError(f"HTTP status {response.code}")
        media = (response.headers.getRawHeaders("content-type") or [""])[0].split(";")[0].strip().lower()
        if media != "text/plain":
            raise FetchError(f"media type {media or 'none'!r}, not text/plain")
        coding = b",".join(response.headers.getRawHeaders(b"content-encoding") or []).strip().lower()
        if coding not in (b"", b"identity"):
            response.deliverBody(_Discard())
            raise FetchError(f"content coding {coding.decode('ascii', 'replace')!r} (identity was asked for)")
        body = _Body(self._reactor, max(deadline - self._reactor.seconds(), 0.001))
        response.deliverBody(body)
        data = await body.done
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise FetchError("the policy is not UTF-8 text") from None


def _why(failure: Failure) -> str:
    """The first reason of a response failure, briefly (a TLS error names the certificate problem)."""
    if failure.check(defer.CancelledError):  # the timeout, the request sent
        return _TIMED_OUT.format(TIMEOUT)
    return failure.getErrorMessage() or failure.type.__name__


class _Discard(Protocol):
    """Takes a refused response's body and drops the connection."""

    def connectionMade(self) -> None:
        self.transport.loseConnection()


class _Body(Protocol):
    """Collects a response body of at most :data:`MAX_SIZE` octets within *timeout* seconds."""

    def __init__(self, clock: object, timeout: float) -> None:
        self.done: defer.Deferred[bytes] = defer.Deferred()
        self._parts: list[bytes] = []
        self._size = 0
        self._refused: str | None = None
        self._timer = clock.callLater(timeout, self._refuse, f"the policy did not arrive within {TIMEOUT:g} s")

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > MAX_SIZE:
            self._refuse(f"the policy is larger than {MAX_SIZE} octets")
        elif self._refused is None:
            self._parts.append(data)

    def _refuse(self, why: str) -> None:
        if self._refused is None:
            self._refused = why
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = None) -> None:
        if self._timer.active():
            self._timer.cancel()
        if self._refused is not None:
            self.done.errback(FetchError(self._refused))
        elif reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(FetchError(f"the policy was cut off: {reason.getErrorMessage()}"))


@implementer(IAgentEndpointFactory)
class _Endpoints:
    """The Agent's connections: the policy host looked up in ``[dns]``, then TLS verified for its name."""

    def __init__(self, reactor: object, resolver: object, dns: Executor, trust: object) -> None:
        self._reactor = reactor
        self._resolver = resolver
        self._dns = dns
        self._trust = trust

    def endpointForURI(self, uri: object) -> IStreamClientEndpoint:
        host = uri.host.decode("ascii")
        tcp = _Resolving(self._reactor, self._resolver, self._dns, host, uri.port)
        return wrapClientTLS(clienttls.verifying(host, self._trust), tcp)


@implementer(IStreamClientEndpoint)
class _Resolving:
    """A TCP connection to the first address of *host* that answers, IPv6 first."""

    def __init__(self, reactor: object, resolver: object, dns: Executor, host: str, port: int) -> None:
        self._reactor = reactor
        self._resolver = resolver
        self._dns = dns
        self._host = host
        self._port = port

    def connect(self, factory: IProtocolFactory) -> "defer.Deferred[Protocol]":
        return defer.Deferred.fromCoroutine(self._connect(factory))

    async def _connect(self, factory: IProtocolFactory) -> Protocol:
        addresses = await self._dns.run(mx.host_addresses, self._resolver, self._host)
        if not addresses:
            raise error.ConnectError(string=f"{self._host} has no address")
        refused: Exception | None = None
        for ip in addresses:
            kind = TCP6ClientEndpoint if ":" in ip else TCP4ClientEndpoint
            try:
                return await kind(self._reactor, ip, self._port, timeout=CONNECT_TIMEOUT).connect(factory)
            except error.ConnectError as problem:
                refused = problem
        raise refused

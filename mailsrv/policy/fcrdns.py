"""Forward-confirmed reverse DNS: the name of a client's address, when that name has the address too.

Whoever holds an address's reverse zone may name it anything, even
``mx.google.com``; only a PTR name whose own A (AAAA for IPv6) records
include the address back is the client's (Postfix's "verified" client name,
the ``iprev`` method of RFC 8601 2.7.3).  rspamd's ``Hostname`` request
header takes that name, or ``unknown`` when there is none, which its rules
score as a client without one.  :func:`confirmed_name` is blocking, for the
``dns`` pool; :func:`look_up` runs it there within a time limit, and
:class:`ClientNames` keeps each connection's answer, asked for as it opens.
"""

from __future__ import annotations

import ipaddress
import weakref
from typing import TYPE_CHECKING, Any

import dns.exception
import dns.name
import dns.resolver
import dns.reversename
from twisted.internet import defer
from twisted.logger import Logger

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime
    from twisted.python.failure import Failure

    from mailsrv.net.session import Session
    from mailsrv.policy import CheckContext
    from mailsrv.workers import Executor

log = Logger()

#: What a client without a confirmed name is called (Postfix's client name, rspamd's Hostname).
UNKNOWN = "unknown"
#: PTR names followed at most (RFC 7208 5.5 stops at the same number for SPF's ptr).
MAX_NAMES = 10


def confirmed_name(resolver: Any, ip: str, timeout: float) -> str | None:
    """The PTR name of *ip* whose forward records hold *ip*, lower case; ``None`` if none does.

    Blocking; each query may take *timeout* seconds.  A failed lookup (a
    timeout, SERVFAIL) confirms nothing, as a missing record does.
    """
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    names = _records(resolver, dns.reversename.from_address(str(address)), "PTR", timeout)
    rtype = "AAAA" if address.version == 6 else "A"
    for record in names[:MAX_NAMES]:
        forward = _records(resolver, record.target, rtype, timeout)
        if any(ipaddress.ip_address(a.address) == address for a in forward):
            return record.target.to_text(omit_final_dot=True).lower()
    return None


def _records(resolver: Any, name: dns.name.Name, rtype: str, timeout: float) -> list[Any]:
    try:
        answer = resolver.resolve(name, rtype, raise_on_no_answer=False, lifetime=timeout, search=False)
    except dns.exception.DNSException:
        return []
    return list(answer.rrset) if answer.rrset is not None else []


def look_up(
    pool: "Executor", resolver: Any, ip: str, timeout: float, clock: "IReactorTime",
) -> "defer.Deferred[str | None]":
    """:func:`confirmed_name` in *pool*; ``None`` (logged) when it takes over *timeout* seconds in all.

    The time counts from the call, so a job waiting in a busy pool uses it
    up too; the job itself is left to end by itself (the resolver's
    lifetime bounds it).  Never fails.
    """
    answer: defer.Deferred[str | None] = defer.Deferred()
    pool.run(confirmed_name, resolver, ip, timeout).addBoth(answer.callback)
    answer.addTimeout(timeout, clock)

    def failed(failure: "Failure") -> None:
        if failure.check(defer.TimeoutError):
            log.warn("the name of {client_ip} was not confirmed within {timeout:g}s", client_ip=ip, timeout=timeout)
        else:
            log.failure("looking up the name of {client_ip} failed", failure, client_ip=ip)
        return None

    return answer.addErrback(failed)


class ClientNames:
    """Each connection's confirmed client name, looked up once, within *timeout* seconds on *clock*.

    :meth:`start` at connect has the answer come in while the client says
    EHLO and MAIL; :meth:`hostname` waits for it (or asks, if nobody did).
    """

    def __init__(self, timeout: float, clock: "IReactorTime") -> None:
        self._timeout = timeout
        self._clock = clock
        #: The lookup under way, then its answer (the name or :data:`UNKNOWN`), per session.
        self._names: "weakref.WeakKeyDictionary[Session, defer.Deferred[str] | str]" = weakref.WeakKeyDictionary()

    def start(self, ctx: "CheckContext") -> None:
        """Look the session's client up, unless that is done or cannot be (no resolver)."""
        session = ctx.session
        if session in self._names or ctx.dns is None or ctx.resolver is None:
            return
        pending = self._names[session] = look_up(ctx.dns, ctx.resolver, session.peer_ip, self._timeout, self._clock)
        pending.addCallback(self._found, session)  # at once, if the answer is in already

    def _found(self, name: str | None, session: "Session") -> None:
        self._names[session] = name or UNKNOWN

    async def hostname(self, ctx: "CheckContext") -> str | None:
        """The confirmed name of the session's client, :data:`UNKNOWN` without one; ``None``: DNS unavailable."""
        self.start(ctx)
        known = self._names.get(ctx.session)
        if isinstance(known, defer.Deferred):
            await known  # its result is None: _found put the answer in its place
            known = self._names.get(ctx.session)
        return known if isinstance(known, str) else None

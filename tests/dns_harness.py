"""An authoritative name server on 127.0.0.1 that serves the records a test declares.

Start one with :func:`serve_dns`, point ``[dns] nameservers`` (or
:func:`mailsrv.dns.make_resolver`) at ``"127.0.0.1:<port>"``, and every
lookup of the code under test lands here::

    zone = Zone()
    zone.add("example.test", "MX", "10 mx1.example.test.")
    zone.add("mx1.example.test", "A", "127.0.0.1")
    port = serve_dns(self, zone)

It answers over UDP and TCP (a long TXT record, such as a DKIM key, is
truncated over UDP and fetched again over TCP) with dnspython's message
code on the test's reactor.  A name with records of any type exists: asked
for another type, it gets an empty answer (NODATA); a name without any gets
NXDOMAIN; a name passed to :meth:`Zone.fail` gets SERVFAIL, one passed to
:meth:`Zone.drop` no answer at all (a timeout).  :attr:`Zone.asked` lists
the names asked, in order.  A CNAME is
followed within the zone, as a recursive resolver would, the alias first
in the answer.  The answers
carry AA; those for a name passed to :meth:`Zone.sign` also carry AD when
the query asked for it (AD or EDNS DO set, RFC 6840 5.7), as a validating
resolver's do for a signed zone (through a CNAME only when every name of
the chain is signed), so a test can serve TLSA records that count (DANE)
or do not::

    zone.add("_25._tcp.mx1.example.test", "TLSA", "3 1 1 " + digest)
    zone.sign("example.test", "mx1.example.test", "_25._tcp.mx1.example.test")

An answer larger than the query's EDNS payload (512 octets without EDNS)
is truncated over UDP, as RFC 6891 7 has it.
"""

from __future__ import annotations

import socket
import threading

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from twisted.internet import protocol, reactor
from twisted.internet.error import CannotListenError
from twisted.protocols.basic import Int16StringReceiver
from twisted.trial import unittest

#: TTL of every record served.
_TTL = 300
#: Largest UDP answer without EDNS (RFC 1035 4.2.1).
_UDP_LIMIT = 512
#: The largest EDNS payload we send, whatever the query offers.
_EDNS_LIMIT = 4096


class Zone:
    """Records by owner name and type; names are case-insensitive and absolute."""

    def __init__(self) -> None:
        self._records: dict[dns.name.Name, dict[int, list[str]]] = {}
        self._failing: set[dns.name.Name] = set()
        self._signed: set[dns.name.Name] = set()
        self._dropped: set[dns.name.Name] = set()
        #: Every name asked about, in the order the queries came (lower case, absolute).
        self.asked: list[str] = []

    def add(self, name: str, rdtype: str, *values: str) -> None:
        """Serve *values* (zone-file text: ``"10 mx.example.test."``, ``'"v=spf1 -all"'``) as *name*'s *rdtype*."""
        types = self._records.setdefault(_absolute(name), {})
        types.setdefault(dns.rdatatype.from_text(rdtype), []).extend(values)

    def fail(self, name: str) -> None:
        """Answer every query for *name* with SERVFAIL (a broken authoritative server)."""
        self._failing.add(_absolute(name))

    def drop(self, name: str) -> None:
        """Never answer a query for *name* (a server that does not respond: the client times out)."""
        self._dropped.add(_absolute(name))

    def sign(self, *names: str) -> None:
        """Answer for each of *names* (records, NODATA or NXDOMAIN alike) as validated: with AD."""
        self._signed.update(_absolute(name) for name in names)

    def _alias(self, name: dns.name.Name) -> str | None:
        """The target of *name*'s CNAME record, if it has one."""
        targets = self._records.get(name, {}).get(dns.rdatatype.CNAME)
        return targets[0] if targets else None

    def answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The response to *query*; ``None`` for a name that is :meth:`dropped <drop>`."""
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response
        question = query.question[0]
        self.asked.append(question.name.to_text().lower())
        if question.name in self._dropped:
            return None
        name, chain = question.name, [question.name]
        while question.rdtype != dns.rdatatype.CNAME and (target := self._alias(name)) is not None and len(chain) < 8:
            response.answer.append(dns.rrset.from_text_list(name, _TTL, dns.rdataclass.IN, dns.rdatatype.CNAME, [target]))
            name = _absolute(target)
            chain.append(name)
        if any(n in self._failing for n in chain):
            response.answer.clear()
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        asked_for_ad = query.flags & dns.flags.AD or query.ednsflags & dns.flags.DO
        if asked_for_ad and all(n in self._signed for n in chain):
            response.flags |= dns.flags.AD
        if name not in self._records:
            response.set_rcode(dns.rcode.NXDOMAIN)
        else:
            values = self._records[name].get(question.rdtype)
            if values:
                response.answer.append(dns.rrset.from_text_list(name, _TTL, dns.rdataclass.IN, question.rdtype, values))
        return response


def _absolute(name: str) -> dns.name.Name:
    return dns.name.from_text(name)


def _wire(response: dns.message.Message) -> bytes:
    """*response* in wire form whatever its size (dnspython would hold it to the query's EDNS payload)."""
    return response.to_wire(max_size=65535)


def _udp_answer(zone: Zone, data: bytes) -> bytes | None:
    """The UDP response to the datagram *data* (truncated past the query's payload), ``None`` for garbage."""
    try:
        query = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None  # garbage is ignored, as a real server would
    response = zone.answer(query)
    if response is None:
        return None
    wire = _wire(response)
    limit = min(max(query.payload, _UDP_LIMIT), _EDNS_LIMIT) if query.edns >= 0 else _UDP_LIMIT
    if len(wire) > limit:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.TC
        wire = response.to_wire()
    return wire


class _UDP(protocol.DatagramProtocol):
    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def datagramReceived(self, data: bytes, addr: tuple) -> None:
        wire = _udp_answer(self.zone, data)
        if wire is not None:
            self.transport.write(wire, addr)


class _TCP(Int16StringReceiver):
    def stringReceived(self, data: bytes) -> None:
        response = self.factory.zone.answer(dns.message.from_wire(data))
        if response is not None:
            self.sendString(_wire(response))


def serve_dns(case: unittest.TestCase, zone: Zone) -> int:
    """Serve *zone* on 127.0.0.1 (UDP and TCP, one free port) until *case* ends; returns the port."""
    factory = protocol.ServerFactory.forProtocol(_TCP)
    factory.zone = zone
    while True:
        tcp = reactor.listenTCP(0, factory, interface="127.0.0.1")
        port = tcp.getHost().port
        try:
            udp = reactor.listenUDP(port, _UDP(zone), interface="127.0.0.1")
        except CannotListenError:  # that UDP port is taken: pick another number
            tcp.stopListening()
            continue
        break
    case.addCleanup(tcp.stopListening)
    case.addCleanup(udp.stopListening)
    return port


class ThreadedDNS:
    """*zone* over UDP on 127.0.0.1 from a thread of its own, for tests without a reactor.

    The end-to-end tests run the real twistd in a subprocess and talk to it
    with blocking clients; this answers its lookups meanwhile.  UDP only:
    enough for MX and address records (a long TXT would need TCP, see
    :func:`serve_dns`).  Use as a context manager; :attr:`port` is where.
    """

    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-dns", daemon=True)

    def __enter__(self) -> "ThreadedDNS":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self._sock.recvfrom(4096)
            except (socket.timeout, TimeoutError):
                continue
            wire = _udp_answer(self.zone, data)
            if wire is not None:
                self._sock.sendto(wire, addr)

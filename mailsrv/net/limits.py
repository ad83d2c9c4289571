"""How many connections the server holds, in total and per client address.

Each connection costs a buffer, a session and (while it sends a message)
a spool file, so the number of them is the first resource a client could
exhaust.  One :class:`ConnectionLimits` is shared by every listener: a
client that opens 1,000 IMAP connections is refused on port 25 too.

Behind ``haproxy:`` listeners the address seen when the connection opens is
the proxy's, so there the per-address limit counts the proxy; set
``limits.max_connections_per_ip`` to 0 (no per-address limit) on such nodes.
"""

from __future__ import annotations

from collections import Counter


class ConnectionLimits:
    """Admits connections up to *total* and *per_ip* (0 means no limit)."""

    def __init__(self, total: int, per_ip: int) -> None:
        #: Both may be changed at any time (SIGHUP): they bound the connections admitted from then on.
        self.total = total
        self.per_ip = per_ip
        self._open = 0
        self._by_ip: Counter[str] = Counter()

    @property
    def open(self) -> int:
        """Connections admitted and not yet released."""
        return self._open

    def admit(self, ip: str) -> str | None:
        """Count a new connection from *ip*; the reason it is refused, or ``None`` (admitted)."""
        if self.total and self._open >= self.total:
            return "too many connections"
        if self.per_ip and ip and self._by_ip[ip] >= self.per_ip:
            return "too many connections from your address"
        self._open += 1
        if ip:
            self._by_ip[ip] += 1
        return None

    def release(self, ip: str) -> None:
        """The connection from *ip* admitted earlier is gone."""
        self._open -= 1
        if ip:
            self._by_ip[ip] -= 1
            if self._by_ip[ip] <= 0:
                del self._by_ip[ip]

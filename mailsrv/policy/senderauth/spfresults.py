"""SPF results kept for a minute, so a sender's run of messages costs one evaluation, not one each.

A mailing list or a bulk sender delivers message after message from the
same address with the same MAIL FROM and HELO; pyspf would parse the same
records and walk the same mechanisms for each (its CPU is a third of the
checks').  The result of RFC 7208 ``check_host()`` is a function of the
client's address, the identity, the HELO name and the DNS answers, so it
is kept per (address, identity, HELO) -- the whole identity, local part
included, for the macros that use it (RFC 7208 7) -- for at most
:data:`KEEP` seconds and never past the moment the first answer it came
from expires (the records' TTL, RFC 1035 3.2.1).  Only definite results are
kept: a ``temperror`` (a timeout) and a ``permerror`` (perhaps a lookup
limit reached by a slow or broken name server) are evaluated afresh.  The
table holds at most :data:`CAPACITY` triples, a sender's made-up ones
included; it is shared by the ``dns`` pool's threads, hence the lock.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

from mailsrv.net.aging import forget_old, trim

#: Longest a result is kept (seconds).
KEEP = 60
#: Triples kept at most.
CAPACITY = 10000
#: The results worth keeping (RFC 7208 2.6): the errors may be transient.
DEFINITE = frozenset({"pass", "fail", "softfail", "neutral", "none"})

Key = tuple[str, str, str]


class SPFResults:
    """``check_host()`` results by (client address, identity, HELO), each until it expires; times on *clock*."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        #: key -> (when kept, until when it holds, result), oldest first.
        self._kept: OrderedDict[Key, tuple[float, float, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> str | None:
        """The kept result for *key*, ``None`` when there is none that still holds."""
        now = self._clock()
        with self._lock:
            forget_old(self._kept, now, KEEP, _kept_at)
            entry = self._kept.get(key)
        return entry[2] if entry is not None and now < entry[1] else None

    def put(self, key: Key, result: str, expires: float) -> None:
        """Keep *result* for *key* until *expires* (``time.time()``) at the latest, if it is definite."""
        now = self._clock()
        if result not in DEFINITE or expires <= now:
            return
        with self._lock:
            self._kept.pop(key, None)
            self._kept[key] = (now, min(expires, now + KEEP), result)
            trim(self._kept, CAPACITY)


def _kept_at(entry: tuple[float, float, str]) -> float:
    return entry[0]

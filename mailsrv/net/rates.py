"""Events per client address in a time window, in bounded memory (connection and message rates).

Each key counts its events in a fixed window that starts at its first
event; the window after it starts afresh.  That lets a client burst up to
twice the limit across a window's edge, which a limit meant to stop floods
(not to meter fair use) can afford, for one integer and one time per key.
At most *capacity* keys are kept: when a new one would pass that, the one
whose window started longest ago is forgotten, so a flood from many
addresses cannot grow the table.
"""

from __future__ import annotations

from collections import OrderedDict

from mailsrv.net.aging import forget_old, trim


def _start(window: list[float]) -> float:
    return window[0]


class RateTable:
    """Admits up to *limit* events per key per *window* seconds (*limit* 0: no limit)."""

    def __init__(self, limit: int, window: float, capacity: int) -> None:
        self.limit = limit
        self.window = window
        self.capacity = capacity
        #: key -> [window start, events]; ordered by window start, oldest first.
        self._windows: OrderedDict[str, list[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._windows)

    def admit(self, key: str, now: float, events: int = 1) -> bool:
        """Count *events* for *key* if they fit in its window; whether they did (over the limit: not counted)."""
        if not self.limit:
            return True
        windows = self._windows
        forget_old(windows, now, self.window, _start)  # windows that ended are forgotten first
        current = windows.get(key)
        if current is None:
            current = windows[key] = [now, 0]
            trim(windows, self.capacity)
        if current[1] + events > self.limit:
            return False
        current[1] += events
        return True

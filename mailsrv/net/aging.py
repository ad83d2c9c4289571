"""Tables kept oldest first that forget what is too old and never grow past a size.

The rate limits, the login throttle and greylisting each track client
addresses (or triplets) an attacker can make up without end: each keeps an
``OrderedDict`` with its oldest entry first, drops entries from the front
once they no longer matter, and drops the oldest when a new one would pass
its capacity.  What "oldest" means is theirs (a window's start, the last
failure, the last use); these two steps are shared.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


def forget_old(entries: "OrderedDict[K, V]", now: float, keep: float, since: Callable[[V], float]) -> None:
    """Drop the entries at the front of *entries* whose time (*since* of the value) is *keep* seconds before *now* or more."""
    while entries:
        if now - since(next(iter(entries.values()))) < keep:
            return
        entries.popitem(last=False)


def trim(entries: "OrderedDict[K, V]", capacity: int) -> None:
    """Drop the oldest entries until at most *capacity* are left."""
    while len(entries) > capacity:
        entries.popitem(last=False)

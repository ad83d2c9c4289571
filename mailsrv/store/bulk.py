"""Building a folder's worth of objects at once, with the cyclic garbage collector paused.

Making 100,000 tuples in a row lets the collector run over and over on the
way (each run walks the young objects, and now and then the whole heap):
at 100,000 messages it is three quarters of the time a restart's snapshot
read takes.  What is built in bulk here holds no cycles, so nothing is lost
by collecting only afterwards.  The collector is process-wide and the
executor's threads may pause it at once: it runs again when the last one
is done, and only if it ran before the first began.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_pausers = 0
_was_enabled = False


@contextmanager
def collector_paused() -> Iterator[None]:
    """No automatic collection while the block runs (in any thread)."""
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()

"""glibc malloc settings for one long-running process with worker threads.

Two glibc defaults make a threaded Python server keep memory it has freed:

* The mmap threshold is dynamic: each freed ``mmap`` block (a list, dict
  or set table of 128 KiB or more) raises it, up to 32 MiB, so the next
  big tables come from the heap, where a freed one stays resident as long
  as anything allocated after it lives above it.  A SEARCH or SORT of a
  100,000-message folder makes such tables by the dozen; fixed at
  :data:`MMAP_THRESHOLD`, each goes back to the system when freed.
* Every thread that allocates gets an arena of its own (up to eight per
  core), each holding on to its free space.  Our pools' threads (disk,
  search, DNS, hashing, signing) do short jobs; :data:`ARENA_MAX` arenas
  serve them.

Measured on a 100,000-message folder after the IMAP benchmark's commands:
RSS 217 MiB -> 185 MiB.  A lower threshold saves a little more (256 KiB:
182 MiB) but costs SORT about 15 % in page faults of fresh mappings; at
1 MiB no slowdown shows beyond the noise.  An admin's own
``MALLOC_ARENA_MAX`` or ``MALLOC_MMAP_THRESHOLD_`` (glibc's environment
tunables) wins over these; elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import os

from twisted.logger import Logger

log = Logger()

#: ``mallopt`` parameters (``<malloc.h>``).
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
#: Blocks this big or bigger are mmapped, and unmapped when freed.
MMAP_THRESHOLD = 1024 * 1024
ARENA_MAX = 2


def tune() -> None:
    """Apply the settings above, before the worker threads start (their arenas are made on first use)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    for env, parameter, value in (("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                                  ("MALLOC_ARENA_MAX", _M_ARENA_MAX, ARENA_MAX)):
        if env not in os.environ and not mallopt(parameter, value):
            log.warn("malloc: mallopt({parameter}, {value}) refused", parameter=parameter, value=value)

"""``[threads]``: the size of each worker pool (see :mod:`mailsrv.workers`).

Separate pools keep one kind of blocking work from holding up another: a
burst of password guesses must not delay the fsync a delivery's 250 waits
on.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Table, at_least, setting


@dataclass(frozen=True)
class ThreadsConfig(Table):
    """Worker pool sizes; every pool needs at least one thread."""

    DOC = "Threads for blocking work, one pool per kind, so that password guesses cannot delay delivery."

    disk: int = setting(32, "Threads for fsync, directory scans and index updates of the mail store.", at_least(1))
    hashing: int = setting(
        2, "Threads for password hashing (argon2 takes 64 MiB each while it runs).", at_least(1)
    )
    search: int = setting(2, "Threads for IMAP SEARCH over message files.", at_least(1))
    dns: int = setting(
        8, "Threads for DNS lookups (MX and address lookups of outbound delivery; each waits on the network).",
        at_least(1),
    )
    signing: int = setting(
        2, "Threads for DKIM signatures of submitted mail (each holds one message in memory while it signs).",
        at_least(1),
    )

"""``[warmup]``: IP warm-up, a cap on the mail sent per hour to each large receiver that grows by the day.

A new sending address has no reputation, and the large receivers throttle
or junk a burst of mail from it.  With warm-up on, the queue sends each
receiver (a *group* of domains served by one provider) at most
``per_hour`` recipients per clock hour on the first day it sends there,
and that limit grows by ``daily_growth`` percent a day, up to
``max_per_hour``.  What is over the limit waits in the queue
(:mod:`mailsrv.delivery.warmup`); nothing is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsrv.config.schema import Invalid, Table, at_least, domain_names, setting

#: The large receivers, each one group of the domains one provider serves.
DEFAULT_GROUPS: tuple[tuple[str, ...], ...] = (
    ("gmail.com", "googlemail.com"),
    ("outlook.com", "hotmail.com", "live.com", "msn.com"),
    ("yahoo.com", "ymail.com", "aol.com"),
)


def _groups(groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
    """Each group is a non-empty list of domain names, each domain in one group only; canonical form."""
    seen: set[str] = set()
    canonical = []
    for group in groups:
        if not group:
            raise Invalid("a group needs at least one domain")
        names = domain_names(group)
        for domain in names:
            if domain in seen:
                raise Invalid(f"{domain} is named twice (a domain belongs to one group)")
            seen.add(domain)
        canonical.append(names)
    return tuple(canonical)


@dataclass(frozen=True)
class WarmupConfig(Table):
    """The warm-up schedule; off unless ``enabled``."""

    DOC = (
        "IP warm-up for a new sending address: at most per_hour recipients per clock hour to each group of "
        "domains (one large receiver), on the first day mail goes to that group; the limit grows by "
        "daily_growth percent each day after. Mail over the limit waits in the queue (mailsrv queue list says "
        "why), it is never refused, and time spent waiting is added to its [delivery] lifetime. Other domains "
        "are not limited."
    )

    enabled: bool = setting(False, "Apply the schedule; false sends as fast as [delivery] allows.")
    per_hour: int = setting(50, "Recipients per hour to each group on its first day of sending.", at_least(1))
    daily_growth: int = setting(
        100, "Percent the hourly limit grows by each day after the first (100 doubles it: 50, 100, 200, ...).",
    )
    max_per_hour: int = setting(
        0, "The hourly limit grows up to this and stays there; 0 lets it grow without end (unlimited in practice).",
    )
    groups: tuple[tuple[str, ...], ...] = setting(
        DEFAULT_GROUPS,
        "The receivers: each list is one group of domains sharing one limit (named by its first domain, "
        "which names its counters in <data_dir>/warmup.json).",
        _groups,
    )

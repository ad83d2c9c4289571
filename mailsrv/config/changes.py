"""What a re-read configuration changes, and what of it a running server takes.

SIGHUP reads the file again (:mod:`mailsrv.reload`).  Most keys are read
by the server where they are used, so a new value applies to what starts
after the reload: the next connection, transaction or login.  The keys
declared with ``restart=True`` (:func:`~mailsrv.config.schema.setting`)
cannot change under a running server: a listener is bound, a pool sized, a
resolver built.  :func:`changes` lists every key whose value differs and
whether it is one of those; :func:`applicable` is the new configuration
with each of those keys kept at its running value, so the server never
runs half of a change it cannot make.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from mailsrv.config.schema import Table, needs_restart, settings

TableT = TypeVar("TableT", bound=Table)


@dataclass(frozen=True)
class Change:
    """One key whose value differs between the running and the re-read configuration."""

    #: The dotted key, as the admin writes it (``policy.trusted_networks``).
    key: str
    #: The new value waits for a restart; the running value stays.
    restart: bool


def changes(old: Table, new: Table, prefix: str = "", restart: bool = False) -> list[Change]:
    """The keys whose values differ between *old* and *new* (the same table class), in declaration order.

    A sub-table is compared key by key, so a change names the key, and every
    key of a table declared ``restart=True`` needs a restart.
    """
    found = []
    for field in settings(type(old)):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before == after:
            continue
        key = prefix + field.name
        waits = restart or needs_restart(field)
        if dataclasses.is_dataclass(before):
            found.extend(changes(before, after, key + ".", waits))
        else:
            found.append(Change(key, waits))
    return found


def applicable(old: TableT, new: TableT) -> TableT:
    """*new* with every key that needs a restart kept at its value in *old*."""
    kept: dict[str, Any] = {}
    for field in settings(type(old)):
        before, after = getattr(old, field.name), getattr(new, field.name)
        if before == after:
            continue
        if needs_restart(field):
            kept[field.name] = before
        elif dataclasses.is_dataclass(before):
            kept[field.name] = applicable(before, after)
    return dataclasses.replace(new, **kept) if kept else new

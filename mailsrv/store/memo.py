"""A bounded memo of a conversion that depends on one table: the few distinct flag sets of a folder.

A folder of 100,000 messages has a handful of distinct Maildir info
strings and flag sets; converting each once (and sharing the result among
the messages) saves the reactor the per-message work and the process a
set per message.  The table the conversion reads (a folder's keyword
letters) is replaced, never edited, when it changes, so a result is kept
while the table is the same object.  A client storing ever new keyword
combinations must not grow it without end: past *limit* it starts over.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")

LIMIT = 4096


class Memo(Generic[K, T, V]):
    """``convert(key, table)``, remembered per *key* while *table* is the same object."""

    def __init__(self, convert: Callable[[K, T], V], limit: int = LIMIT) -> None:
        self._convert = convert
        self._limit = limit
        self._table: object = object()  # no table yet
        self._known: dict[K, V] = {}

    def __call__(self, key: K, table: T) -> V:
        """The conversion of *key* with *table*."""
        if table is not self._table or len(self._known) >= self._limit:
            self._table, self._known = table, {}
        value = self._known.get(key)
        if value is None:
            value = self._known[key] = self._convert(key, table)
        return value

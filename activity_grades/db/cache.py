"""A process-wide cache of lookups that rarely change (partition names, activity classes).

Each value is trusted for ``CACHE_SECONDS``. A value read inside a transaction is kept
only once that transaction commits: a partition created (or an activity added) by a
transaction that rolls back is never remembered. Archiving and restoring clear this
process's caches; a read that hits a table dropped since clears them and retries.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from django.db import connections, transaction

__all__ = ["CACHE_SECONDS", "TtlCache", "clear_all"]

CACHE_SECONDS = 60.0

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_caches: list[TtlCache[object, object]] = []


class TtlCache(Generic[K, V]):
    """Key -> value for ``CACHE_SECONDS``, per database alias; at most ``max_size``
    values (then it starts again empty: cheaper than tracking the least used)."""

    def __init__(self, max_size: int | None = None) -> None:
        self._data: dict[tuple[str, K], tuple[V, float]] = {}
        self.max_size = max_size
        _caches.append(self)  # type: ignore[arg-type]

    def get(self, using: str, key: K) -> V | None:
        hit = self._data.get((using, key))
        if hit is None or hit[1] <= time.monotonic():
            return None
        return hit[0]

    def split(self, using: str, keys: Iterable[K]) -> tuple[dict[K, V], list[K]]:
        """The cached values of ``keys``, and the keys not cached (to look up)."""
        found: dict[K, V] = {}
        missing: list[K] = []
        for key in keys:
            hit = self.get(using, key)
            if hit is None:
                missing.append(key)
            else:
                found[key] = hit
        return found, missing

    def put(self, using: str, key: K, value: V) -> None:
        def keep() -> None:
            if self.max_size is not None and len(self._data) >= self.max_size:
                self._data.clear()
            self._data[(using, key)] = (value, time.monotonic() + CACHE_SECONDS)

        if connections[using].in_atomic_block:
            transaction.on_commit(keep, using=using)
        else:
            keep()

    def forget(self, using: str, key: K) -> None:
        self._data.pop((using, key), None)

    def clear(self) -> None:
        self._data.clear()


def clear_all() -> None:
    """Forget every cached lookup of this process."""
    for cache in _caches:
        cache.clear()

"""A small bounded TTL cache for hot metadata reads (manifest GET/HEAD, blob HEAD, accounts).

Entries written by this process are invalidated at once by the store that owns them; the TTL
bounds how long a change made by *another* process (a second worker or node) can stay unseen.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TTLCache"]

V = TypeVar("V")


class TTLCache(Generic[V]):
    __slots__ = ("_clock", "_data", "max_entries", "ttl_seconds")

    def __init__(
        self,
        max_entries: int,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries, self.ttl_seconds, self._clock = max_entries, ttl_seconds, clock
        self._data: OrderedDict[Hashable, tuple[float, V]] = OrderedDict()

    def get(self, key: Hashable) -> V | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < self._clock():
            del self._data[key]
            return None
        return entry[1]

    def put(self, key: Hashable, value: V) -> None:
        if self.ttl_seconds <= 0:
            return
        self._data[key] = (self._clock() + self.ttl_seconds, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def pop(self, key: Hashable) -> None:
        self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

"""A small bounded TTL cache for hot metadata reads (manifest GET/HEAD, blob HEAD, accounts), and
the :class:`Invalidator` that tells caches about changes made by other processes.

Entries written by this process are invalidated at once by the store that owns them. On SQLite
(one machine) the TTL bounds how long a change made by *another* process (a second worker) can
stay unseen. On PostgreSQL (several nodes) every write transaction also sends a notification
(``NOTIFY``, delivered only if it commits) that each node's listener feeds to its invalidator, so
a change made on another node is seen as soon as the notification arrives (about a millisecond
after the commit); while the listener is not connected, the invalidator is not *live* and the
caches are bypassed, so nothing is served from a cache that may have missed a notification.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Invalidator", "TTLCache"]

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


class Invalidator:
    """Changes made by other processes, as the caches of this one must see them.

    ``live``: caches may be used (False while notifications may be missed: then every read goes
    to the database). ``epoch``: bumped whenever ``live`` changes, so entries cached before a gap
    in the notifications are never read after it — caches include it in their keys.
    """

    __slots__ = ("_handlers", "epoch", "live")

    def __init__(self, *, live: bool = True) -> None:
        self.live, self.epoch = live, 0
        self._handlers: dict[str, list[Callable[[str], None]]] = {}

    @property
    def channels(self) -> list[str]:
        return list(self._handlers)

    def subscribe(self, channel: str, handler: Callable[[str], None]) -> None:
        self._handlers.setdefault(channel, []).append(handler)

    def deliver(self, channel: str, payload: str) -> None:
        for handler in self._handlers.get(channel, ()):
            handler(payload)

    def set_live(self, live: bool) -> None:
        if live != self.live:
            self.live = live
            self.epoch += 1

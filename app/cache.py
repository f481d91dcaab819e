"""A thread-safe LRU cache of translated sentences, keyed by (model, decoding options, sentence)."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

V = TypeVar("V")


class LRUCache(Generic[V]):
    """Least-recently-used mapping with a fixed number of entries; capacity 0 disables it."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._data: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    @staticmethod
    def key(model: str, options: Hashable, sentence: str) -> tuple[str, Hashable, str]:
        return (model, options, sentence)

    def get(self, key: Hashable) -> V | None:
        """The cached value (now most recently used), or None."""
        if self.capacity == 0:
            return None
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: Hashable, value: V) -> None:
        """Store a value, evicting the least recently used entry when full."""
        if self.capacity == 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

"""The LRU sentence cache."""

from __future__ import annotations

from app.cache import LRUCache


def test_lru_evicts_the_least_recently_used() -> None:
    cache: LRUCache[str] = LRUCache(2)
    cache.put(LRUCache.key("m", "o", "a"), "A")
    cache.put(LRUCache.key("m", "o", "b"), "B")
    assert cache.get(LRUCache.key("m", "o", "a")) == "A"  # a is now the most recent
    cache.put(LRUCache.key("m", "o", "c"), "C")
    assert cache.get(LRUCache.key("m", "o", "b")) is None
    assert cache.get(LRUCache.key("m", "o", "a")) == "A" and cache.get(LRUCache.key("m", "o", "c")) == "C"
    assert len(cache) == 2 and cache.hits == 3 and cache.misses == 1


def test_keys_separate_models_and_options() -> None:
    cache: LRUCache[str] = LRUCache(10)
    cache.put(LRUCache.key("m", ("beam", 5), "a"), "A5")
    assert cache.get(LRUCache.key("m", ("beam", 1), "a")) is None
    assert cache.get(LRUCache.key("other", ("beam", 5), "a")) is None


def test_capacity_zero_disables() -> None:
    cache: LRUCache[str] = LRUCache(0)
    cache.put("k", "v")
    assert cache.get("k") is None and len(cache) == 0

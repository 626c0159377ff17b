"""The shared cache (config/cache.py) against a real Redis: counts the rate limits rely on
stay atomic and exact, and each connection pool keeps one client."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from config.cache import ConsentryRedisCache

REDIS_URL = os.environ.get("REDIS_URL") or os.environ.get("WORKER_REDIS_URL") or (
    "redis://127.0.0.1:6379/15" if os.environ.get("CI") else "")

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs Redis: set REDIS_URL or "
                                                      "WORKER_REDIS_URL (always runs in CI)")


@pytest.fixture
def cache():
    backend = ConsentryRedisCache(REDIS_URL, {"KEY_PREFIX": f"test-cache-{uuid.uuid4().hex}"})
    yield backend
    backend.clear()


def test_incr_counts_an_existing_key_and_refuses_a_missing_one(cache):
    assert cache.add("calls", 1, 60) is True
    assert cache.incr("calls") == 2
    assert cache.incr("calls", 5) == 7
    assert cache.get("calls") == 7
    with pytest.raises(ValueError, match="not found"):
        cache.incr("never-set")
    # Refusing must not create the key (a rate-limit window would then never expire).
    assert cache.get("never-set") is None
    # The window's expiry survives the increments.
    assert 0 < cache._cache.get_client().ttl(cache.make_and_validate_key("calls")) <= 60


def test_an_expired_counter_is_not_brought_back_by_incr(cache):
    cache.set("window", 3, 60)
    cache.delete("window")  # as when its window expires
    with pytest.raises(ValueError):
        cache.incr("window")
    assert cache.get("window") is None


def test_increments_from_many_threads_are_all_counted(cache):
    cache.add("hits", 0, 60)

    def hit() -> None:
        for _ in range(200):
            cache.incr("hits")

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert cache.get("hits") == 800


def test_each_pool_keeps_one_client(cache):
    client = cache._cache.get_client(write=True)
    assert cache._cache.get_client(write=True) is client
    cache.set("k", "v", 60)
    assert cache.get("k") == "v"
    assert cache._cache.get_client(write=True) is client

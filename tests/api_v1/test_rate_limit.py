"""Rate limiting per API key: a burst of 200 then 100 a second; beyond that 429 with Retry-After."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from litesubs.api.v1.rate_limit import BURST, REQUESTS_PER_SECOND, TokenBuckets
from litesubs.services.errors import RateLimited
from tests.api_v1.conftest import Creator, assert_error

MAX_REQUESTS = 3000


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=100, burst=200, clock=clock)
    for _ in range(200):
        buckets.take(1)
    with pytest.raises(RateLimited) as refused:
        buckets.take(1)
    assert refused.value.retry_after == 1
    buckets.take(2)  # another key has its own bucket

    clock.now += 0.0625  # 6.25 tokens back
    for _ in range(6):
        buckets.take(1)
    with pytest.raises(RateLimited):
        buckets.take(1)

    clock.now += 3600  # refills up to the burst, not beyond
    for _ in range(200):
        buckets.take(1)
    with pytest.raises(RateLimited):
        buckets.take(1)


def test_retry_after_is_the_whole_seconds_until_a_token_is_back() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=0.25, burst=1, clock=clock)
    buckets.take(1)
    with pytest.raises(RateLimited) as refused:
        buckets.take(1)
    assert refused.value.retry_after == 4
    clock.now += 4
    buckets.take(1)


def test_a_key_beyond_its_limit_gets_429_with_retry_after_and_other_keys_do_not(
    creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    """Requests from many threads outrun the refill of 100 a second, so the burst of 200 runs out."""
    assert (REQUESTS_PER_SECOND, BURST) == (100, 200)
    started = time.monotonic()

    def until_limited(_worker: int) -> httpx.Response | None:
        with httpx.Client(base_url=str(creator.client.base_url), headers=creator.client.headers) as client:
            for _ in range(MAX_REQUESTS // 8):
                response = client.get("/packs")
                if response.status_code != 200:
                    return response
        return None

    with ThreadPoolExecutor(max_workers=8) as pool:
        limited = [response for response in pool.map(until_limited, range(8)) if response is not None]

    assert limited, f"no 429 after {MAX_REQUESTS} requests in {time.monotonic() - started:.1f}s"
    for response in limited:
        error = assert_error(response, 429, "rate_limited")
        assert "100 requests a second" in error["message"]
        assert response.headers["Retry-After"] == "1"
    assert new_creator().client.get("/packs").status_code == 200

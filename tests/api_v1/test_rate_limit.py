"""Rate limiting per API key: a burst of 200 then 100 a second (LITESUBS_API_RATE_LIMIT); beyond that 429 with
Retry-After. With Redis, one limit across every worker and process; failed authentications limited per client."""

from __future__ import annotations

import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from litesubs.api.v1.rate_limit import (
    BURST,
    FAILED_AUTH_BURST,
    KEY_REFUSAL,
    REQUESTS_PER_SECOND,
    Limit,
    Limits,
    Take,
    TokenBuckets,
    limit,
)
from litesubs.services.errors import RateLimited
from litesubs.settings import get_settings, load_settings
from tests.api_server import wait_until_listening
from tests.api_v1.conftest import Creator, assert_error
from tests.app_server import free_port

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


def test_the_default_limit_is_100_a_second_with_bursts_of_200() -> None:
    assert (REQUESTS_PER_SECOND, BURST) == (100, 200)
    assert load_settings({}).api_rate_limit == REQUESTS_PER_SECOND


def test_a_key_beyond_its_limit_gets_429_with_retry_after_and_other_keys_do_not(
    monkeypatch: pytest.MonkeyPatch, creator: Creator, new_creator: Callable[[], Creator]
) -> None:
    """Requests from many threads outrun the refill of LITESUBS_API_RATE_LIMIT=20 a second (however busy the
    machine running the tests), so the burst of 40 runs out."""
    monkeypatch.setenv("LITESUBS_API_RATE_LIMIT", "20")
    get_settings.cache_clear()
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
        assert "more than 20 requests a second" in error["message"]
        assert response.headers["Retry-After"] == "1"
    assert new_creator().client.get("/packs").status_code == 200


# --- One limit across workers and processes, with Redis --------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/0"


class RedisBuckets:
    """Buckets as one process sees them: its own Redis client."""

    def __init__(self, prefix: str, *, rate: float = 5, burst: int = 10, url: str = REDIS_URL) -> None:
        self.limits, self.limit = Limits(url), limit(prefix, rate=rate, burst=burst, refusal=KEY_REFUSAL)

    def take(self, key: int | str, *, cost: int = 1, refused_cost: int = 0, then: Limit | None = None) -> None:
        """Take from `key`'s bucket and then, if given, one token of `then`'s bucket for the same key."""
        self.limits.take(Take(self.limit, key, cost, refused_cost), *([Take(then, key)] if then else []))


def test_processes_sharing_redis_share_one_bucket_per_key() -> None:
    prefix = f"litesubs-test:{secrets.token_hex(6)}"
    first, second = RedisBuckets(prefix), RedisBuckets(prefix)
    for taker in [first, second] * 5:
        taker.take(42)
    for taker in (first, second):
        with pytest.raises(RateLimited) as refused:
            taker.take(42)
        assert refused.value.retry_after == 1
        assert refused.value.message == "This API key made more than 5 requests a second. Retry after 1 s."
    second.take(43)  # another key has its own bucket


def test_a_check_costs_nothing_and_an_empty_bucket_fails_the_check() -> None:
    buckets = RedisBuckets(f"litesubs-test:{secrets.token_hex(6)}", rate=1, burst=2)
    for _ in range(5):
        buckets.take("client", cost=0)
    buckets.take("client")
    buckets.take("client")
    with pytest.raises(RateLimited):
        buckets.take("client", cost=0)


def test_one_call_takes_from_buckets_in_order_and_stops_at_the_first_refusal() -> None:
    """How a request with a valid key is admitted: its client's failures checked, then its key's token taken."""
    buckets = RedisBuckets(f"litesubs-test:{secrets.token_hex(6)}", rate=1, burst=2)
    second = limit(f"litesubs-test:{secrets.token_hex(6)}", rate=1, burst=3, refusal="Second refused.")
    for _ in range(3):
        buckets.take("k", cost=0, then=second)
    with pytest.raises(RateLimited, match="Second refused"):
        buckets.take("k", cost=0, then=second)
    buckets.take("k")
    buckets.take("k")
    with pytest.raises(
        RateLimited, match="more than 1 requests a second"
    ):  # the first refuses: the second is not asked
        buckets.take("k", cost=0, then=limit(second.prefix, rate=1, burst=3, refusal="Not asked."))


def test_without_redis_answering_each_process_limits_on_its_own() -> None:
    buckets = RedisBuckets(f"litesubs-test:{secrets.token_hex(6)}", url="redis://127.0.0.1:1/0")
    for _ in range(10):
        buckets.take(7)
    with pytest.raises(RateLimited):
        buckets.take(7)


@pytest.fixture
def limited_to_1_a_second_in_redis(monkeypatch: pytest.MonkeyPatch, served_database: str) -> Iterator[str]:
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    monkeypatch.setenv("LITESUBS_API_RATE_LIMIT", "1")
    monkeypatch.setenv("LITESUBS_TRUSTED_PROXIES", "1")
    get_settings.cache_clear()
    yield served_database
    get_settings.cache_clear()


def test_one_limit_per_key_holds_across_processes_and_workers(
    limited_to_1_a_second_in_redis: str, creator: Creator, tmp_path: Path
) -> None:
    """This process's API and another process with two workers: together, one burst of 2 for the key."""
    port = free_port()
    other = subprocess.Popen(
        [
            *(sys.executable, "-m", "granian", "--interface", "asgi", "--factory", "--workers", "2"),
            *("--host", "127.0.0.1", "--port", str(port), "litesubs.api.app:create_api"),
        ],
        env={**os.environ, "DATABASE_URL": limited_to_1_a_second_in_redis},
        stdout=(tmp_path / "granian.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until_listening(f"http://127.0.0.1:{port}")
        here = creator.client
        there = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers=creator.client.headers)
        started = time.monotonic()
        statuses = Counter(client.get("/packs").status_code for _ in range(8) for client in (here, there))
        elapsed = time.monotonic() - started
        there.close()
    finally:
        os.killpg(other.pid, signal.SIGTERM)
        try:
            other.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(other.pid, signal.SIGKILL)
            other.wait()

    # The burst of 2 and what refilled meanwhile at 1 a second; each process alone would have allowed its burst.
    assert 2 <= statuses[200] <= 2 + math.ceil(elapsed), (statuses, elapsed)
    assert statuses[429] == 16 - statuses[200] > 0


def test_failed_authentications_are_limited_per_client(limited_to_1_a_second_in_redis: str, creator: Creator) -> None:
    attacker = {"X-Forwarded-For": f"198.51.100.{secrets.randbelow(250)}"}  # one trusted proxy: the client's address
    with httpx.Client(base_url=str(creator.client.base_url), headers=attacker) as client:
        failed = 0
        while (response := client.get("/packs", headers={"Authorization": f"Bearer ls_{failed}"})).status_code == 401:
            failed += 1
            assert failed <= 10 * FAILED_AUTH_BURST, "failed authentications are never limited"
        assert failed >= FAILED_AUTH_BURST
        error = assert_error(response, 429, "rate_limited")
        assert error["message"].startswith("Too many failed authentications from this address.")

        # Knocking on while refused keeps the client refused: each try costs what one failure costs.
        knocks = [client.get("/packs", headers={"Authorization": "Bearer ls_guess"}) for _ in range(20)]
        assert {response.status_code for response in knocks} == {429}
        refused = client.get("/packs", headers={"Authorization": f"Bearer {creator.secret}"})  # even a good key
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["Retry-After"]) >= 2
    assert creator.client.get("/packs").status_code == 200  # the creator's own address is not affected


def test_knocking_while_refused_costs_a_token_down_to_minus_the_burst() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate=1, burst=2, clock=clock)
    buckets.take("client")
    buckets.take("client")
    for _ in range(5):
        with pytest.raises(RateLimited):
            buckets.take("client", cost=0, refused_cost=1)
    clock.now += 3.5  # from -2 (not lower) back to 1.5
    buckets.take("client", cost=0, refused_cost=1)

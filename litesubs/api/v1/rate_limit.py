"""Request limits of API v1: a token bucket per API key, and one per client for failed authentications.

Each key may make LITESUBS_API_RATE_LIMIT requests a second on average (default 100) and twice that
at once. With REDIS_URL set, the buckets live in Redis, updated by one Lua script per request, so
the limit holds across every worker and process together. Without Redis (one app process, the
default), they live in this process's memory; if Redis stops answering, the process falls back to
its own buckets (and logs it) rather than refusing every request.

Failed authentications (a missing, unknown or revoked key) are limited per client address, so no
one can try keys without end: FAILED_AUTH_BURST at once, then FAILED_AUTHS_PER_SECOND. A client that
keeps knocking while refused keeps paying (down to minus the burst), so it stays refused, good key
or not, until it stops for a while.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

import redis

from litesubs.services.errors import RateLimited
from litesubs.settings import DEFAULT_API_RATE_LIMIT, get_settings

REQUESTS_PER_SECOND = DEFAULT_API_RATE_LIMIT
BURST = 2 * REQUESTS_PER_SECOND
FAILED_AUTHS_PER_SECOND = 10
FAILED_AUTH_BURST = 100

logger = logging.getLogger(__name__)


class Buckets(Protocol):
    def take(self, key: int | str, *, cost: int = 1, refused_cost: int = 0) -> None: ...


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per key in this process, refilled continuously at `rate` tokens a second up to `burst`."""

    def __init__(
        self,
        *,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        refusal: str = "This API key made more than {rate:g} requests a second.",
    ) -> None:
        self._rate, self._burst, self._clock, self._refusal = rate, burst, clock, refusal
        self._buckets: dict[int | str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: int | str, *, cost: int = 1, refused_cost: int = 0) -> None:
        """Spend `cost` tokens of `key`'s bucket (0: only check that one is left), or raise `RateLimited` after
        spending `refused_cost` (the bucket goes no lower than minus the burst)."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(key, _Bucket(tokens=self._burst, updated=now))
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens < max(cost, 1):
                bucket.tokens = max(-self._burst, bucket.tokens - refused_cost)
                raise _refused(self._refusal, self._rate, missing=max(cost, 1) - bucket.tokens)
            bucket.tokens -= cost


# KEYS[1]: the bucket. ARGV: rate, burst, cost, refused cost. Redis's own clock, so every process agrees on
# the time. Returns {1, ""} when taken, {0, "<seconds until enough tokens>"} when refused (floats as text).
_TAKE_SCRIPT = """
local rate, burst, cost, refused_cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated')
local tokens = tonumber(state[1]) or burst
local updated = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - updated) * rate)
local needed = math.max(cost, 1)
local taken = tokens >= needed
if taken then
  tokens = tokens - cost
else
  tokens = math.max(-burst, tokens - refused_cost)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'updated', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(2 * burst / rate * 1000) + 1000)
if taken then
  return {1, ''}
end
return {0, tostring((needed - tokens) / rate)}
"""


class RedisTokenBuckets:
    """The same buckets in Redis, shared by every process that uses the same Redis and `prefix`."""

    def __init__(
        self, client: redis.Redis, *, prefix: str, rate: float, burst: int, refusal: str, fallback: TokenBuckets
    ) -> None:
        self._script = client.register_script(_TAKE_SCRIPT)
        self._prefix, self._rate, self._burst, self._refusal = prefix, rate, burst, refusal
        self._fallback = fallback

    def take(self, key: int | str, *, cost: int = 1, refused_cost: int = 0) -> None:
        try:
            arguments = [self._rate, self._burst, cost, refused_cost]
            taken, wait = self._script(keys=[f"{self._prefix}:{key}"], args=arguments)
        except redis.RedisError as error:
            logger.warning("Rate limits fall back to this process's memory: Redis failed (%s)", error)
            self._fallback.take(key, cost=cost, refused_cost=refused_cost)
            return
        if not taken:
            raise _refused(self._refusal, self._rate, missing=float(wait) * self._rate)


def _refused(template: str, rate: float, *, missing: float) -> RateLimited:
    retry_after = max(1, math.ceil(missing / rate))
    return RateLimited(f"{template.format(rate=rate)} Retry after {retry_after} s.", retry_after=retry_after)


KEY_REFUSAL = "This API key made more than {rate:g} requests a second."
FAILED_AUTH_REFUSAL = "Too many failed authentications from this address."


def key_limits() -> Buckets:
    """The per-key buckets for the configured rate: in Redis when REDIS_URL is set."""
    settings = get_settings()
    rate = settings.api_rate_limit
    return _buckets(settings.redis_url, "litesubs:api-key", rate, 2 * rate, KEY_REFUSAL)


def failed_auth_limits() -> Buckets:
    """The per-client buckets of failed authentications."""
    redis_url = get_settings().redis_url
    return _buckets(
        redis_url, "litesubs:api-auth-failures", FAILED_AUTHS_PER_SECOND, FAILED_AUTH_BURST, FAILED_AUTH_REFUSAL
    )


@lru_cache(maxsize=8)
def _buckets(redis_url: str | None, prefix: str, rate: float, burst: int, refusal: str) -> Buckets:
    """One set of buckets per configuration, kept for the life of the process."""
    memory = TokenBuckets(rate=rate, burst=burst, refusal=refusal)
    if redis_url is None:
        return memory
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
    return RedisTokenBuckets(client, prefix=prefix, rate=rate, burst=burst, refusal=refusal, fallback=memory)

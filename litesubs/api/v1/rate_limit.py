"""Request limits of API v1: a token bucket per API key, and one per client for failed authentications.

Each key may make LITESUBS_API_RATE_LIMIT requests a second on average (default 100) and twice that
at once. With REDIS_URL set, the buckets live in Redis, updated by one Lua script per request, so
the limit holds across every worker and process together. Without Redis (one app process, the
default), they live in this process's memory; if Redis stops answering, the process falls back to
its own buckets (and logs it) rather than refusing every request. A request with a valid key checks
its client's failures and takes its key's token in one round trip.

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

import redis

from litesubs.services.errors import RateLimited
from litesubs.settings import DEFAULT_API_RATE_LIMIT, get_settings

REQUESTS_PER_SECOND = DEFAULT_API_RATE_LIMIT
BURST = 2 * REQUESTS_PER_SECOND
FAILED_AUTHS_PER_SECOND = 10
FAILED_AUTH_BURST = 100

logger = logging.getLogger(__name__)


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


# One call takes from several buckets in order and stops at the first that refuses. KEYS: the buckets. ARGV: for
# each bucket its rate, burst, cost and refused cost. Redis's own clock, so every process agrees on the time.
# Returns {0, ""} when every bucket gave its tokens, {n, "<seconds until enough tokens>"} when bucket n refused
# (floats as text).
_TAKE_SCRIPT = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
for n, bucket in ipairs(KEYS) do
  local at = (n - 1) * 4
  local rate, burst = tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2])
  local cost, refused_cost = tonumber(ARGV[at + 3]), tonumber(ARGV[at + 4])
  local state = redis.call('HMGET', bucket, 'tokens', 'updated')
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
  redis.call('HSET', bucket, 'tokens', tostring(tokens), 'updated', tostring(now))
  redis.call('PEXPIRE', bucket, math.ceil(2 * burst / rate * 1000) + 1000)
  if not taken then
    return {n, tostring((needed - tokens) / rate)}
  end
end
return {0, ''}
"""


@dataclass(frozen=True)
class Limit:
    """One kind of bucket: named `prefix:<key>` in Redis, and this process's own buckets when Redis fails."""

    prefix: str
    rate: float
    burst: int
    refusal: str
    memory: TokenBuckets


@dataclass(frozen=True)
class Take:
    """Take `cost` tokens from `key`'s bucket of `limit`, or when refused, `refused_cost`."""

    limit: Limit
    key: int | str
    cost: int = 1
    refused_cost: int = 0


class Limits:
    """Takes from buckets in Redis (one round trip for several buckets) or, without Redis, in this process.

    Redis calls block: callers on the event loop run them in a worker thread (`endpoints.blocking`), as the
    hot routes do together with their service call. In memory they are quick enough to run anywhere.
    """

    def __init__(self, redis_url: str | None) -> None:
        self.in_memory = redis_url is None
        self._script = None
        if redis_url is not None:
            client = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=1)
            self._script = client.register_script(_TAKE_SCRIPT)

    def take(self, *takes: Take) -> None:
        """Take from each bucket in turn; the first that refuses raises its `RateLimited` and the rest are untouched."""
        if self._script is None:
            _take_in_memory(takes)
            return
        arguments = [
            number for take in takes for number in (take.limit.rate, take.limit.burst, take.cost, take.refused_cost)
        ]
        try:
            refused, wait = self._script(keys=[f"{take.limit.prefix}:{take.key}" for take in takes], args=arguments)
        except redis.RedisError as error:
            logger.warning("Rate limits fall back to this process's memory: Redis failed (%s)", error)
            _take_in_memory(takes)
            return
        if refused:
            limit = takes[int(refused) - 1].limit
            raise _refused(limit.refusal, limit.rate, missing=float(wait) * limit.rate)


def _take_in_memory(takes: tuple[Take, ...]) -> None:
    for take in takes:
        take.limit.memory.take(take.key, cost=take.cost, refused_cost=take.refused_cost)


def _refused(template: str, rate: float, *, missing: float) -> RateLimited:
    retry_after = max(1, math.ceil(missing / rate))
    return RateLimited(f"{template.format(rate=rate)} Retry after {retry_after} s.", retry_after=retry_after)


KEY_REFUSAL = "This API key made more than {rate:g} requests a second."
FAILED_AUTH_REFUSAL = "Too many failed authentications from this address."


@dataclass(frozen=True)
class ApiLimits:
    """API v1's limits: requests per key, and failed authentications per client."""

    limits: Limits
    per_key: Limit
    failures: Limit

    def admit(self, *, client: str, key_id: int) -> None:
        """A request with a valid key: refused if its client failed too often (which costs the client one more
        failure), else it takes a token of the key's; one Redis round trip for both."""
        self.limits.take(Take(self.failures, client, cost=0, refused_cost=1), Take(self.per_key, key_id))

    def failed(self, *, client: str) -> None:
        """A failed authentication costs the client a token; refused (`RateLimited`) when none is left."""
        self.limits.take(Take(self.failures, client, cost=1, refused_cost=1))


def api_limits() -> ApiLimits:
    """The limits for the configured rate: in Redis when REDIS_URL is set."""
    settings = get_settings()
    return _api_limits(settings.redis_url, settings.api_rate_limit)


def limit(prefix: str, *, rate: float, burst: int, refusal: str) -> Limit:
    return Limit(prefix, rate, burst, refusal, TokenBuckets(rate=rate, burst=burst, refusal=refusal))


@lru_cache(maxsize=8)
def _api_limits(redis_url: str | None, rate: int) -> ApiLimits:
    """One set of limits per configuration, kept for the life of the process."""
    return ApiLimits(
        Limits(redis_url),
        per_key=limit("litesubs:api-key", rate=rate, burst=2 * rate, refusal=KEY_REFUSAL),
        failures=limit(
            "litesubs:api-auth-failures",
            rate=FAILED_AUTHS_PER_SECOND,
            burst=FAILED_AUTH_BURST,
            refusal=FAILED_AUTH_REFUSAL,
        ),
    )

"""Per-key request limits: a token bucket per API key, kept in this process's memory.

Each key may make `rate` requests a second on average and up to `burst` at once. The buckets live
in the process that serves the request: with several backend processes each keeps its own, so a key
gets up to that many times the rate in all. Litesubs runs one backend process unless Redis is
configured, and the limit is a guard against runaway clients, not a quota to bill by, so this is
accepted rather than paying a Redis round trip on every API call.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from litesubs.services.errors import RateLimited

REQUESTS_PER_SECOND = 100
BURST = 200


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """One bucket per key, refilled continuously at `rate` tokens a second up to `burst`."""

    def __init__(self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate, self._burst, self._clock = rate, burst, clock
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: int) -> None:
        """Spend one token of `key`'s bucket, or raise `RateLimited` saying in whole seconds when one is back."""
        with self._lock:
            now = self._clock()
            bucket = self._buckets.setdefault(key, _Bucket(tokens=self._burst, updated=now))
            bucket.tokens = min(self._burst, bucket.tokens + (now - bucket.updated) * self._rate)
            bucket.updated = now
            if bucket.tokens < 1:
                retry_after = max(1, math.ceil((1 - bucket.tokens) / self._rate))
                raise RateLimited(
                    f"This API key made more than {self._rate:g} requests a second. Retry after {retry_after} s.",
                    retry_after=retry_after,
                )
            bucket.tokens -= 1


API_KEY_LIMITS = TokenBuckets(rate=REQUESTS_PER_SECOND, burst=BURST)

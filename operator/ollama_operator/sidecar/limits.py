"""Per-client token buckets: how often a client may call the public port.

Each client (its API key's digest, or its address when auth is off; one shared
bucket when ``rateLimit.perKey`` is false) owns a bucket of ``burst`` tokens
that refills at ``requestsPerMinute``. A request takes one token; an empty
bucket means 429 with ``Retry-After`` (when the next token arrives). Every
answer also carries the bucket's state:

- ``x-ratelimit-limit``: the bucket's capacity (``burst``),
- ``x-ratelimit-remaining``: whole tokens left after this request,
- ``x-ratelimit-reset``: seconds until the bucket is full again.

Settings change live (:meth:`RateLimiter.configure`); buckets keep their level,
capped to the new capacity. The clock is injected, so this module is pure and
its tests need no sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

#: Buckets kept before idle (full) ones are dropped; bounds memory when clients churn.
MAX_BUCKETS = 10_000


class RateDecision(NamedTuple):
    """The outcome of taking a token."""

    allowed: bool
    limit: int
    remaining: int
    #: Seconds until the bucket is full again.
    reset: float
    #: Seconds until a token is available (0 when allowed).
    retry_after: float

    def headers(self) -> dict[str, str]:
        """The ``x-ratelimit-*`` headers for this decision."""
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(math.ceil(self.reset)),
        }


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens = tokens
        self.stamp = stamp


class RateLimiter:
    """Token buckets keyed by client."""

    def __init__(
        self,
        requests_per_minute: int,
        burst: int | None = None,
        *,
        per_key: bool = True,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: dict[bytes, _Bucket] = {}
        self.capacity = 1
        self.rate = 1.0
        self.per_key = per_key
        self.configure(requests_per_minute, burst, per_key=per_key)

    def configure(self, requests_per_minute: int, burst: int | None, *, per_key: bool) -> None:
        """Change the limit; a missing ``burst`` is a minute's worth of requests."""
        self.capacity = burst if burst is not None else requests_per_minute
        self.rate = requests_per_minute / 60.0
        if per_key != self.per_key:
            self._buckets.clear()
        self.per_key = per_key
        for bucket in self._buckets.values():
            bucket.tokens = min(bucket.tokens, float(self.capacity))

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, client: bytes) -> RateDecision:
        """Take one token from the client's bucket (or find it empty)."""
        key = client if self.per_key else b""
        now = self._clock()
        capacity = self.capacity
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self._max_buckets:
                self._evict(now)
            bucket = self._buckets[key] = _Bucket(float(capacity), now)
        else:
            tokens = bucket.tokens + (now - bucket.stamp) * self.rate
            bucket.tokens = tokens if tokens < capacity else float(capacity)
            bucket.stamp = now
        rate = self.rate
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return RateDecision(
                True, capacity, int(bucket.tokens), (capacity - bucket.tokens) / rate, 0.0
            )
        return RateDecision(
            False,
            capacity,
            0,
            (capacity - bucket.tokens) / rate,
            (1.0 - bucket.tokens) / rate,
        )

    def _evict(self, now: float) -> None:
        """Drop buckets that have refilled (forgetting them changes nothing), else the oldest."""
        capacity, rate = self.capacity, self.rate
        full = [
            k for k, b in self._buckets.items() if b.tokens + (now - b.stamp) * rate >= capacity
        ]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self._max_buckets:
            for k in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[k]

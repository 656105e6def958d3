"""Failed authentications per client address: guessing API keys is not free.

Authentication runs before the per-key rate limiter (a bucket needs a key to
be keyed by), so without this module a client could try keys as fast as the
gateway answers 401s. Each client address owns a token bucket of
``clients.authFailures.burst`` failures, refilled at ``failuresPerMinute``;
every 401 takes a token. An address whose bucket is empty is answered 429
with ``Retry-After`` **before its key is looked at**, correct key or not,
until a token refills: letting a correct key through would turn the 429/200
difference into the very oracle the limit is meant to take away.

The address is the TCP peer (``request.remote``). Clients behind one NAT or
proxy share a bucket, so one of them guessing keys locks the others out for
the refill time; that is the price of the limit, and why the bucket refills
continuously instead of locking for a fixed window.

Memory is bounded: buckets live in a cachetools ``TTLCache`` of at most
``max_addresses`` entries whose lifetime is the time an empty bucket takes to
refill, so a bucket is forgotten only once forgetting it changes nothing (or,
under a flood of addresses, the least recently used goes first). The clock is
injected; this module does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cachetools import TTLCache

#: Addresses remembered at most (a bucket is two floats; 10,000 cost well under 2 MiB).
MAX_ADDRESSES = 10_000


class AuthFailureGuard:
    """Token buckets of allowed authentication failures, keyed by client address."""

    def __init__(
        self,
        failures_per_minute: int,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
    ) -> None:
        self._clock = clock
        self._max_addresses = max_addresses
        self.rate = failures_per_minute / 60.0
        self.burst = burst
        self._buckets = self._new_store()

    def _new_store(self) -> TTLCache[str, tuple[float, float]]:
        return TTLCache(self._max_addresses, self.burst / self.rate, timer=self._clock)

    def configure(self, failures_per_minute: int, burst: int) -> None:
        """Change the limit live; buckets keep their level, capped to the new burst."""
        if (failures_per_minute / 60.0, burst) == (self.rate, self.burst):
            return
        now = self._clock()
        levels = {address: self._level(address, now) for address in list(self._buckets)}
        self.rate = failures_per_minute / 60.0
        self.burst = burst
        self._buckets = self._new_store()
        for address, tokens in levels.items():
            if tokens < burst:
                self._buckets[address] = (tokens, now)

    def __len__(self) -> int:
        self._buckets.expire()
        return len(self._buckets)

    def _level(self, address: str, now: float) -> float:
        bucket = self._buckets.get(address)
        if bucket is None:
            return float(self.burst)
        tokens, stamp = bucket
        return min(float(self.burst), tokens + (now - stamp) * self.rate)

    def retry_after(self, address: str) -> float:
        """Seconds until the address may try a key again; 0.0 when it may now."""
        tokens = self._level(address, self._clock())
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def failed(self, address: str) -> None:
        """The address presented no key or a wrong one: take a token."""
        now = self._clock()
        tokens = self._level(address, now)
        self._buckets[address] = (max(0.0, tokens - 1.0), now)

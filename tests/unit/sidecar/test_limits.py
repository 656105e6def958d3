"""Token buckets, on a clock the test moves."""

from __future__ import annotations

from ollama_operator.sidecar.limits import RateLimiter

from .sidecar_harness import FakeClock


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=3, clock=clock)
    decisions = [limiter.take(b"a") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    refused = decisions[-1]
    assert refused.retry_after == 1.0
    assert refused.reset == 3.0


def test_the_bucket_refills_at_the_rate() -> None:
    clock = FakeClock()
    limiter = RateLimiter(120, burst=2, clock=clock)
    limiter.take(b"a")
    limiter.take(b"a")
    assert not limiter.take(b"a").allowed
    clock.advance(0.5)
    assert limiter.take(b"a").allowed
    assert not limiter.take(b"a").allowed
    clock.advance(60)
    assert limiter.take(b"a").remaining == 1, "refill stops at the capacity"


def test_the_default_burst_is_a_minutes_worth() -> None:
    limiter = RateLimiter(5, clock=FakeClock())
    assert [limiter.take(b"a").allowed for _ in range(6)] == [True] * 5 + [False]


def test_each_key_has_its_own_bucket() -> None:
    limiter = RateLimiter(60, burst=1, clock=FakeClock())
    assert limiter.take(b"a").allowed
    assert limiter.take(b"b").allowed
    assert not limiter.take(b"a").allowed


def test_one_shared_bucket_when_not_per_key() -> None:
    limiter = RateLimiter(60, burst=1, per_key=False, clock=FakeClock())
    assert limiter.take(b"a").allowed
    assert not limiter.take(b"b").allowed


def test_headers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(6, burst=2, clock=clock)
    assert limiter.take(b"a").headers() == {
        "x-ratelimit-limit": "2",
        "x-ratelimit-remaining": "1",
        "x-ratelimit-reset": "10",
    }


def test_configure_keeps_levels_within_the_new_capacity() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=10, clock=clock)
    limiter.take(b"a")
    limiter.configure(60, 2, per_key=True)
    assert limiter.take(b"a").remaining == 1
    limiter.configure(60, 2, per_key=False)
    assert len(limiter) == 0


def test_buckets_are_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(60, burst=5, clock=clock, max_buckets=4)
    for i in range(4):
        limiter.take(bytes([i]))
    clock.advance(10)  # every bucket is full again: forgetting them changes nothing
    limiter.take(b"new")
    assert len(limiter) == 1
    for i in range(10):
        limiter.take(bytes([i]))
    assert len(limiter) <= 4

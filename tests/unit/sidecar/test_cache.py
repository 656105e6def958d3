"""The response cache: keys, directives, TTL and LRU."""

from __future__ import annotations

import pytest

from ollama_operator.sidecar.cache import (
    MAX_ENTRY_BYTES,
    ResponseCache,
    cache_key,
    canonical_json,
    directives,
)

from .sidecar_harness import FakeClock


def test_the_key_ignores_key_order_and_whitespace() -> None:
    a = cache_key("POST", "/api/chat", b'{"model": "m", "messages": [{"a": 1, "b": 2}]}')
    b = cache_key("POST", "/api/chat", b'{"messages":[{"b":2,"a":1}],"model":"m"}')
    assert a == b
    assert len(a) == 32


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/generate", b'{"model": "m", "messages": [{"a": 1, "b": 2}]}'),
        ("POST", "/api/chat", b'{"model": "m", "messages": [{"a": 1, "b": 3}]}'),
        ("PUT", "/api/chat", b'{"model": "m", "messages": [{"a": 1, "b": 2}]}'),
        ("POST", "/api/chat", b'{"model": "m", "messages": [{"b": 2, "a": 1}], "x": null}'),
    ],
)
def test_the_key_changes_with_method_path_and_content(method: str, path: str, body: bytes) -> None:
    reference = cache_key("POST", "/api/chat", b'{"model": "m", "messages": [{"a": 1, "b": 2}]}')
    assert cache_key(method, path, body) != reference


def test_canonical_json() -> None:
    assert canonical_json({"b": [1, {"d": 1, "c": 2}], "a": "é"}) == (
        b'{"a":"\\u00e9","b":[1,{"c":2,"d":1}]}'
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, (True, True)),
        ("", (True, True)),
        ("max-age=0", (True, True)),
        ("no-cache", (False, True)),
        ("No-Cache, max-age=0", (False, True)),
        ("no-store", (False, False)),
        ("no-cache,no-store", (False, False)),
    ],
)
def test_directives(header: str | None, expected: tuple[bool, bool]) -> None:
    assert directives(header) == expected


def test_entries_expire_after_the_ttl() -> None:
    clock = FakeClock()
    cache = ResponseCache(10, 60.0, timer=clock)
    assert cache.put(b"k", "application/json", b"{}")
    clock.advance(59)
    hit = cache.get(b"k")
    assert hit is not None
    assert (hit.content_type, hit.body) == ("application/json", b"{}")
    clock.advance(2)
    assert cache.get(b"k") is None


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = ResponseCache(2, 60.0, timer=FakeClock())
    cache.put(b"a", "t", b"1")
    cache.put(b"b", "t", b"2")
    cache.get(b"a")
    cache.put(b"c", "t", b"3")
    assert cache.get(b"b") is None
    assert cache.get(b"a") is not None
    assert len(cache) == 2


def test_oversized_answers_are_not_kept() -> None:
    cache = ResponseCache(2, 60.0)
    assert not cache.put(b"a", "t", b"x" * (MAX_ENTRY_BYTES + 1))
    assert len(cache) == 0


def test_configure_drops_entries_only_when_something_changed() -> None:
    cache = ResponseCache(2, 60.0)
    cache.put(b"a", "t", b"1")
    cache.configure(2, 60.0)
    assert len(cache) == 1
    cache.configure(3, 60.0)
    assert len(cache) == 0

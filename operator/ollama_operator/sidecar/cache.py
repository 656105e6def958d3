"""The response cache: identical non-streaming requests answered without Ollama.

Embedding the same document twice, or a dashboard asking the same question
every minute, costs a GPU nothing the second time. The cache is opt-in
(``gateway.cache.enabled``): generation with a temperature above zero is not
deterministic, and a team must choose to accept repeated answers.

- Only non-streaming requests of the inference routes are cached (note that
  Ollama streams ``/api/generate`` and ``/api/chat`` unless ``"stream": false``),
  and only 200 answers of at most :data:`MAX_ENTRY_BYTES`.
- The key is the SHA-256 of the method, the path and the body as canonical
  JSON (keys sorted, no insignificant whitespace), so key order and spacing do
  not matter. Entries are shared by all API keys.
- Entries expire after ``cache.ttl`` and the least recently used goes first
  beyond ``cache.maxEntries`` (cachetools' TTLCache).
- ``Cache-Control: no-cache`` skips the lookup (the fresh answer is stored);
  ``no-store`` skips the cache entirely. Answers carry ``X-Cache: HIT|MISS``.

The timer is injected; this module does no I/O.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import TTLCache

#: Answers larger than this are not kept (an embeddings batch can be megabytes).
MAX_ENTRY_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored 200 answer."""

    content_type: str
    body: bytes


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def cache_key(method: str, path: str, body: bytes) -> bytes:
    """The key of a request whose body is JSON (already validated by the gateway).

    A body Python's decoder reads differently from pydantic's is keyed by its bytes.
    """
    try:
        canonical = canonical_json(json.loads(body)) if body else b""
    except (ValueError, RecursionError):
        canonical = body
    h = hashlib.sha256(method.encode())
    h.update(b"\0")
    h.update(path.encode())
    h.update(b"\0")
    h.update(canonical)
    return h.digest()


def directives(cache_control: str | None) -> tuple[bool, bool]:
    """``(lookup, store)`` for a request's ``Cache-Control`` header."""
    if not cache_control:
        return True, True
    tokens = {t.strip().lower() for t in cache_control.split(",")}
    if "no-store" in tokens:
        return False, False
    if "no-cache" in tokens:
        return False, True
    return True, True


class ResponseCache:
    """LRU + TTL store of answers, resizable live."""

    def __init__(
        self,
        max_entries: int,
        ttl: float,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timer = timer
        self.max_entries = max_entries
        self.ttl = ttl
        self._store: TTLCache[bytes, CachedResponse] = TTLCache(max_entries, ttl, timer=timer)

    def configure(self, max_entries: int, ttl: float) -> None:
        """Change size or lifetime; entries are dropped only when either changed."""
        if (max_entries, ttl) != (self.max_entries, self.ttl):
            self.max_entries = max_entries
            self.ttl = ttl
            self._store = TTLCache(max_entries, ttl, timer=self._timer)

    def clear(self) -> None:
        """Forget every entry."""
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: bytes) -> CachedResponse | None:
        """The stored answer, if fresh."""
        return self._store.get(key)

    def put(self, key: bytes, content_type: str, body: bytes) -> bool:
        """Store a 200 answer; False when it is too large to keep."""
        if len(body) > MAX_ENTRY_BYTES:
            return False
        self._store[key] = CachedResponse(content_type, body)
        return True

"""The response cache: identical non-streaming requests answered without Ollama.

Embedding the same document twice, or a dashboard asking the same question
every minute, costs a GPU nothing the second time. The cache is opt-in
(``gateway.cache.enabled``): generation with a temperature above zero is not
deterministic, and a team must choose to accept repeated answers.

- Only non-streaming requests of the inference routes are cached (note that
  Ollama streams ``/api/generate`` and ``/api/chat`` unless ``"stream": false``),
  and only 200 answers of at most :data:`MAX_ENTRY_BYTES`.
- The key is the SHA-256 of the *partition*, the method, the path and the body
  as canonical JSON (keys sorted, no insignificant whitespace), so key order
  and spacing do not matter. The partition is the API key's digest unless
  ``cache.shared`` is set (or auth is off): a shared cache tells every key
  which prompts the others sent (a HIT is an answer to "did anyone ask
  this?"), so sharing must be chosen, never the default.
- Entries expire after ``cache.ttl``; the least recently used goes first
  beyond ``cache.maxEntries`` entries or ``cache.maxBytes`` bytes (cachetools'
  TTLCache sized by each answer's length plus :data:`ENTRY_OVERHEAD`). The
  byte bound is what keeps the cache inside the sidecar's memory limit:
  entries alone (1,000 of 1 MiB) could exceed it.
- ``Cache-Control: no-cache`` skips the lookup; the fresh answer replaces the
  entry only in the client's own partition. In a shared partition it is
  stored only where no fresh entry exists (``replace=False``): otherwise one
  key could re-roll a temperature>0 answer that every other key then gets.
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
#: Bytes an entry costs beyond its body (key, object headers, content type), for the bound.
ENTRY_OVERHEAD = 256
#: The default byte bound, well under the sidecar container's 256 Mi memory limit.
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
#: The partition of a shared cache (and of every client when auth is off).
SHARED = b""


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A stored 200 answer."""

    content_type: str
    body: bytes


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def cache_key(method: str, path: str, body: bytes, partition: bytes = SHARED) -> bytes:
    """The key of a request whose body is JSON (already validated by the gateway).

    ``partition`` is the API key's digest for a per-key cache (:data:`SHARED`
    otherwise); it is hashed first and has a fixed length, so no body can make one
    partition's key collide with another's. A body Python's decoder reads differently
    from pydantic's is keyed by its bytes.
    """
    try:
        canonical = canonical_json(json.loads(body)) if body else b""
    except (ValueError, RecursionError):
        canonical = body
    h = hashlib.sha256(partition)
    h.update(b"\0")
    h.update(method.encode())
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


def _entry_size(entry: CachedResponse) -> int:
    return len(entry.body) + ENTRY_OVERHEAD


class ResponseCache:
    """LRU + TTL store of answers, bounded in entries and in bytes, resizable live."""

    def __init__(
        self,
        max_entries: int,
        ttl: float,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._timer = timer
        self.max_entries = max_entries
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._store = self._new_store()

    def _new_store(self) -> TTLCache[bytes, CachedResponse]:
        return TTLCache(self.max_bytes, self.ttl, timer=self._timer, getsizeof=_entry_size)

    def configure(
        self, max_entries: int, ttl: float, *, max_bytes: int = DEFAULT_MAX_BYTES
    ) -> None:
        """Change size or lifetime; entries are dropped only when something changed."""
        if (max_entries, ttl, max_bytes) != (self.max_entries, self.ttl, self.max_bytes):
            self.max_entries = max_entries
            self.ttl = ttl
            self.max_bytes = max_bytes
            self._store = self._new_store()

    @property
    def size_bytes(self) -> int:
        """Bytes the entries are counted as (bodies plus overhead)."""
        return int(self._store.currsize)

    def clear(self) -> None:
        """Forget every entry."""
        self._store.clear()

    def __len__(self) -> int:
        return len(self._store)

    def get(self, key: bytes) -> CachedResponse | None:
        """The stored answer, if fresh."""
        return self._store.get(key)

    def put(self, key: bytes, content_type: str, body: bytes, *, replace: bool = True) -> bool:
        """Store a 200 answer; False when it is too large, or fresh and not to be replaced."""
        entry = CachedResponse(content_type, body)
        if len(body) > MAX_ENTRY_BYTES or _entry_size(entry) > self.max_bytes:
            return False
        store = self._store
        if not replace and store.get(key) is not None:
            return False
        store[key] = entry
        while len(store) > self.max_entries:
            store.popitem()
        return True

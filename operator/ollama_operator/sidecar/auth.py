"""API keys: who may use the public port.

Keys come from a file mounted from a Secret, one per line (blank lines and
``#`` comments ignored). The gateway never keeps or compares the keys
themselves: it keeps their SHA-256 digests and looks up the digest of what a
client presents. The secret therefore never meets a comparison whose time
depends on it; only its digest does, and learning how many leading bytes of a
SHA-256 digest match tells an attacker nothing about a key. The lookup is one
hash and one dictionary probe, whatever the number of keys.

A :class:`KeyRing` is immutable; reloading the file builds a new one and the
gateway swaps the reference. Nothing here logs, and nothing here returns a key:
callers get the digest, which identifies a client (its rate-limit bucket)
without revealing it. Reading the file is the only I/O, in :func:`load_keys`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from multidict import CIMultiDictProxy, istr

from .errors import invalid_key, missing_key

AUTHORIZATION = istr("Authorization")
X_API_KEY = istr("X-API-Key")


def parse_keys(text: str) -> list[str]:
    """Keys in a keys file: one a line, blank lines and ``#`` comments skipped."""
    keys = []
    for line in text.splitlines():
        key = line.strip()
        if key and not key.startswith("#"):
            keys.append(key)
    return keys


def digest(key: str) -> bytes:
    """SHA-256 of a key: what the gateway stores and compares."""
    return hashlib.sha256(key.encode()).digest()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The configured keys, as digests; ``enabled`` is False when auth is off."""

    digests: frozenset[bytes]
    enabled: bool = True

    @classmethod
    def of(cls, keys: Iterable[str]) -> KeyRing:
        """A ring holding these keys (an empty ring refuses every key)."""
        return cls(frozenset(digest(k) for k in keys))

    @classmethod
    def disabled(cls) -> KeyRing:
        """No keys file configured: everyone is let in."""
        return cls(frozenset(), enabled=False)

    def __len__(self) -> int:
        return len(self.digests)

    def authenticate(self, headers: CIMultiDictProxy[str]) -> bytes | None:
        """The digest of the presented key; None when auth is off.

        Raises :class:`~.errors.Unauthorized` (401) when no key is presented or
        the key is not in the ring.
        """
        if not self.enabled:
            return None
        presented = presented_key(headers)
        if presented is None:
            raise missing_key()
        try:
            raw = presented.encode()
        except UnicodeEncodeError:
            # aiohttp keeps bytes that are not UTF-8 as surrogates; no key in the file
            # (read as UTF-8) can be such a string, so this is a wrong key, not a bug.
            raise invalid_key() from None
        found = hashlib.sha256(raw).digest()
        if found not in self.digests:
            raise invalid_key()
        return found


def presented_key(headers: CIMultiDictProxy[str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``."""
    value = headers.get(AUTHORIZATION)
    if value is not None:
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer":
            token = token.strip()
            if token:
                return token
    value = headers.get(X_API_KEY)
    if value is not None:
        value = value.strip()
        if value:
            return value
    return None


def load_keys(path: str | None) -> KeyRing:
    """Read the keys file; None (no file configured) turns auth off.

    Raises OSError when the file cannot be read; callers then refuse everyone
    (``KeyRing.of(())``): failing closed is the safe reading of a Secret that is
    being rotated or was emptied. An empty file refuses everyone too.
    """
    if path is None:
        return KeyRing.disabled()
    with open(path, encoding="utf-8", errors="replace") as fh:
        return KeyRing.of(parse_keys(fh.read()))

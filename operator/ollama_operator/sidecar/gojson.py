"""Reading a JSON body as Ollama's Go decoder (``encoding/json``) reads it.

The gateway decides on what it parsed (is the model allowed? does it stream?)
and then forwards the client's bytes, which Ollama parses again. Where the two
parsers disagree, a client can show the gateway one request and Ollama
another. Go's decoder differs from a plain JSON parser in four ways that
matter here, and this module mirrors each:

- **Keys match struct fields case-insensitively** (Go's ``bytes.EqualFold``,
  exact match preferred, the last match wins): ``{"model": "a", "MODEL": "b"}``
  is model ``b`` to Ollama. :func:`go_fold` folds a key the way Go compares it
  with an ASCII field name: ASCII case, plus the two non-ASCII runes Unicode
  simple case folding maps onto ASCII letters, U+212A KELVIN SIGN (→ k)
  and U+017F LATIN SMALL LETTER LONG S (→ s). The schemas (:mod:`.validation`) refuse a key
  that folds onto a known field without being it.
- **A field given twice merges** when it decodes into a Go map or into structs
  (``options``, ``messages``, ``tools``...): Go decodes the second value into
  the first. A parser that keeps the last value cannot see the result, so
  :func:`repeated_keys` finds such repeats (the schemas refuse them). Repeated
  scalars are left alone: both parsers keep the last one.
- **Numbers must fit Go's types**: a number Go would store as ``float64``
  overflows to an error beyond ±1.8e308 (our parser would return ``inf``),
  and an ``int`` field refuses anything beyond int64. :func:`out_of_range`
  finds the first overflowing number; :func:`fits_int64` checks int fields.
- **Broken text is repaired, not refused**: a lone surrogate escape
  (``"\\ud800"``) or invalid UTF-8 inside a string becomes U+FFFD, one per
  invalid byte, as Go does. :func:`loads` parses with pydantic's Rust parser and,
  only when it refuses the text, repairs the body that way and parses again,
  so every other rule (depth, NaN, trailing data) stays the Rust parser's.

Pure.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterable
from typing import Any

from pydantic_core import from_json

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: The non-ASCII runes whose Unicode simple case folding orbit holds an ASCII letter.
_GO_FOLDS_TO_ASCII = {0x212A: "k", 0x017F: "s"}

#: An escape sequence: a surrogate pair, a lone surrogate, or any other escape.
_ESCAPE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}"
    rb"|(\\u[dD][89a-fA-F][0-9a-fA-F]{2})"
    rb"|\\."
)
#: An escaped ASCII letter or underscore: how a key could be spelled without its quoted form.
_ESCAPED_NAME_CHAR = re.compile(rb"\\u00[4-7][0-9a-fA-F]")
#: Digits to ``0``, ``e`` and ``E`` to ``e``, all else to a space: a table for a cheap scan.
_NUMBER_SHAPE = bytes(
    ord("0") if 0x30 <= b <= 0x39 else ord("e") if b in b"eE" else ord(" ") for b in range(256)
)
#: A run of digits this long may be a number beyond float64 (309 digits are needed).
_LONG_DIGITS = b"0" * 32


def _go_replace(error: UnicodeError) -> tuple[str, int]:
    """Codec error handler: one U+FFFD per invalid byte, as Go's ``utf8.DecodeRune``."""
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\ufffd", error.start + 1


codecs.register_error("ollama-go-replace", _go_replace)


def _fix_escape(match: re.Match[bytes]) -> bytes:
    return b"\\ufffd" if match.group(1) is not None else match.group(0)


def repair(body: bytes) -> bytes:
    """The body with Go's replacements applied (invalid UTF-8, lone surrogate escapes)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        body = body.decode("utf-8", "ollama-go-replace").encode("utf-8")
    if b"\\u" in body:
        body = _ESCAPE.sub(_fix_escape, body)
    return body


def loads(body: bytes) -> Any:
    """Parse a body as Go would accept it; ``ValueError`` (the Rust parser's) otherwise."""
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError:
        repaired = repair(body)
        if repaired == body:
            raise
        return from_json(repaired, allow_inf_nan=False)


def go_fold(key: str) -> str | None:
    """``key`` as Go compares it with an ASCII field name; None when it can equal none."""
    if not key.isascii():
        key = key.translate(_GO_FOLDS_TO_ASCII)
        if not key.isascii():
            return None
    return key.lower()


def repeated_keys(body: bytes, names: Iterable[str]) -> set[str]:
    """Which of ``names`` the top-level object of ``body`` holds more than once.

    Cheap when none can be: a field name (ASCII letters and ``_``) written twice needs
    its quoted form twice in the bytes, or an escaped ASCII letter (``\\u0041``...)
    to hide it. Only then is the body parsed again, keeping the keys in order.
    """
    candidates = [n for n in names if body.count(b'"' + n.encode() + b'"') > 1]
    if not candidates and not _ESCAPED_NAME_CHAR.search(body):
        return set()
    top: list[list[tuple[str, Any]]] = []

    def keep(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        top[:] = [pairs]
        return {}

    try:
        json.loads(repair(body), object_pairs_hook=keep)
    except (ValueError, RecursionError):  # the Rust parser accepted it; be safe anyway
        return set()
    seen: set[str] = set()
    repeated: set[str] = set()
    wanted = set(names)
    for key, _ in top[0] if top else ():
        if key in wanted:
            (repeated if key in seen else seen).add(key)
    return repeated


def fits_int64(value: int | float) -> bool:
    """Whether Go can hold ``value`` in an ``int`` (64 bits on every platform Ollama ships)."""
    return INT64_MIN <= value <= INT64_MAX


def fits_int64_after_float(value: int | float) -> bool:
    """Whether ``int64(float64(value))`` is defined: how Ollama converts ``options`` numbers."""
    try:
        as_float = float(value)
    except OverflowError:
        return False
    return -(2.0**63) <= as_float < 2.0**63


def _too_large_for_float64(value: Any) -> bool:
    if isinstance(value, float):
        return value in (float("inf"), float("-inf"))
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            return True
    return False


def out_of_range(body: bytes, document: Any) -> tuple[int | str, ...] | None:
    """Where the first number that overflows Go's float64 is; None when there is none.

    Walks the document only when the raw bytes hold a number that could be that
    large (a digit before an ``e``, or a long run of digits); other bodies cost one
    ``bytes.translate`` and two substring searches, all in C.
    """
    shape = body.translate(_NUMBER_SHAPE)
    if b"0e" not in shape and _LONG_DIGITS not in shape:
        return None
    stack: list[tuple[tuple[int | str, ...], Any]] = [((), document)]
    while stack:
        loc, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*loc, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*loc, i), v) for i, v in reversed(list(enumerate(value))))
        elif _too_large_for_float64(value):
            return loc
    return None

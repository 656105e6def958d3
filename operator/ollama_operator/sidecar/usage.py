"""Token counts of an answer, read from the end of what Ollama sent.

Ollama has no ``/metrics``; it reports each generation's cost in the last
object of its answer: ``prompt_eval_count``, ``eval_count`` and
``eval_duration`` (nanoseconds) in the final NDJSON line (``"done": true``) or
the non-streaming body; the OpenAI-compatible routes put ``usage`` with
``prompt_tokens`` and ``completion_tokens`` last (in a stream, only when the
client asked for ``stream_options.include_usage``). Those fields are always at
the end of the last line, so the gateway keeps only the tail of a stream and
searches it, instead of decoding every chunk or a whole (possibly large) body.
Pure functions.
"""

from __future__ import annotations

import re
from typing import NamedTuple

#: How much of the end of an answer is searched.
TAIL_BYTES = 2048

_PROMPT = re.compile(rb'"(?:prompt_eval_count|prompt_tokens)"\s*:\s*(\d+)')
_GENERATED = re.compile(rb'"(?:eval_count|completion_tokens)"\s*:\s*(\d+)')
_EVAL_NS = re.compile(rb'"eval_duration"\s*:\s*(\d+)')
_SSE_DONE = b"data: [DONE]"


class Usage(NamedTuple):
    """What one answer cost."""

    prompt_tokens: int | None
    generated_tokens: int | None
    #: Generation time in seconds (Ollama's eval_duration); None when not reported.
    eval_seconds: float | None

    @property
    def tokens_per_second(self) -> float | None:
        """Generation speed, when Ollama reported both count and duration."""
        if self.generated_tokens is None or not self.eval_seconds:
            return None
        return self.generated_tokens / self.eval_seconds


def last_line(tail: bytes) -> bytes:
    """The last non-empty line of an NDJSON or SSE tail (SSE's ``[DONE]`` skipped)."""
    data = tail.rstrip()
    if data.endswith(_SSE_DONE):
        data = data[: -len(_SSE_DONE)].rstrip()
    return data.rpartition(b"\n")[2]


def parse_usage(tail: bytes) -> Usage | None:
    """Token counts in the last line of an answer; None when it reports none."""
    line = last_line(tail[-TAIL_BYTES:])
    prompt = _PROMPT.search(line)
    generated = _GENERATED.search(line)
    if prompt is None and generated is None:
        return None
    eval_ns = _EVAL_NS.search(line)
    return Usage(
        int(prompt.group(1)) if prompt else None,
        int(generated.group(1)) if generated else None,
        int(eval_ns.group(1)) / 1e9 if eval_ns else None,
    )

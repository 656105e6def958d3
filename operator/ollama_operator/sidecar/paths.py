"""What path the gateway asks Ollama for: built from the matched route, never copied.

The client's path is only ever looked up (in :mod:`.routes`); what is sent
upstream is assembled here from the route. For the fixed routes that is the
route's own path, a constant. The one route with a variable part,
``/v1/models/{model}``, takes the model segment from the client, so the
segment is decoded once and refused (400, :class:`~.errors.InvalidPath`) unless
it is a plain name that cannot leave its route:

- ``/`` (raw or ``%2F``): a second segment; ``../../api/pull`` would otherwise be
  normalised by the URL library into ``/api/pull`` on the way to Ollama, and
  ``HEAD /v1/models/../../api/blobs/sha256:…`` would tell anyone which blobs the
  pod holds;
- ``..`` anywhere, or a segment that is just ``.``: dot segments;
- ``?`` and ``#`` (``%3F``, ``%23``): they would become a query or a fragment;
- control characters (C0, DEL, C1) and bytes that are not UTF-8.

The accepted segment is percent-encoded again for the upstream URL. Ollama's
router takes one segment there (``/v1/models/:model``), so no model name it
serves is refused. The query string is passed on as the client encoded it
(never decoded, so ``%23`` stays data and never becomes a fragment); a fragment
is dropped. Pure.
"""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from .errors import InvalidPath
from .routes import OPENAI_MODEL, OPENAI_MODEL_PREFIX, Route

#: Characters kept as they are when the model segment is re-encoded (RFC 3986 pchar).
SEGMENT_SAFE = ":@!$&'()*+,;=-._~"
#: Characters kept in a query string that is re-encoded (existing escapes stay escapes).
QUERY_SAFE = "!$&'()*+,;=:@/?%-._~"
#: How many ``/`` precede the model segment in ``/v1/models/{model}``.
_MODEL_SLASHES = OPENAI_MODEL_PREFIX.count("/")


def split_target(raw_target: str) -> tuple[str, str]:
    """``(raw path, raw query)`` of a request target, the fragment dropped."""
    target = raw_target.partition("#")[0]
    path, _, query = target.partition("?")
    return path, query


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


def model_segment(segment: str) -> str:
    """A decoded model segment, if it is a plain name; :class:`InvalidPath` naming the problem."""
    problem = None
    if not segment:
        problem = "is empty"
    elif "/" in segment:
        problem = "contains '/' (or %2F): a model name is one path segment"
    elif "?" in segment:
        problem = "contains '?' (or %3F)"
    elif "#" in segment:
        problem = "contains '#' (or %23)"
    elif any(_is_control(c) for c in segment):
        problem = "contains a control character"
    elif ".." in segment:
        problem = "contains '..'"
    elif segment == ".":
        problem = "is '.'"
    if problem is not None:
        raise InvalidPath(f"the model in {OPENAI_MODEL_PREFIX}{{model}} {problem}")
    return segment


def decode_segment(raw: str) -> str:
    """Percent-decode a raw path part, strictly: bytes that are not UTF-8 are refused."""
    try:
        return unquote_to_bytes(raw.encode("utf-8", "surrogateescape")).decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPath(
            f"the model in {OPENAI_MODEL_PREFIX}{{model}} is not valid UTF-8"
        ) from None


def upstream_path(route: Route, raw_path: str) -> str:
    """The path to ask Ollama for: the route's own, or its model segment re-encoded."""
    if route is not OPENAI_MODEL:
        return route.path
    tail = raw_path.split("/", _MODEL_SLASHES)[-1] if raw_path.count("/") >= _MODEL_SLASHES else ""
    model = model_segment(decode_segment(tail))
    return OPENAI_MODEL_PREFIX + quote(model, safe=SEGMENT_SAFE)


def upstream_query(raw_query: str) -> str:
    """The client's query, still encoded; anything a URL may not carry is escaped."""
    if raw_query.isascii() and raw_query.isprintable() and " " not in raw_query:
        return raw_query
    return quote(raw_query.encode("utf-8", "surrogateescape"), safe=QUERY_SAFE)

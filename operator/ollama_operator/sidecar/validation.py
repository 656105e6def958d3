"""What a request body must look like before it may reach Ollama.

Ollama decodes bodies into Go structs: a field of the wrong JSON type fails
the whole request, sometimes after the model was loaded. The gateway checks
the same thing first and answers 400 with the field's name, so nothing reaches
Ollama that Ollama would choke on. The models here are permissive on purpose:
the fields Ollama types are typed (strictly, as Go's decoder is strict: no
``"true"`` for a boolean, no ``1.5`` for an integer); every other field is
allowed and forwarded untouched, so a newer client option never breaks.

Parsing happens once, from the raw bytes, in pydantic's JSON parser (which,
like Go's, refuses ``NaN`` and ``Infinity``); the gateway forwards the original
bytes and reads only :meth:`RequestBody.requested_model` and
:meth:`RequestBody.streams` from the result. Because Ollama parses those bytes
again, the body is read as Go reads it (:mod:`.gojson`): a key that differs
from a known field only in case *is* that field to Go, so it is refused
(``{"model": "allowed", "MODEL": "other"}`` would otherwise be checked as one
model and served as the other); a known field whose repeats Go would merge is
refused when repeated; numbers must fit Go's float64 and, in ``int`` fields
(``context``, ``dimensions``, ``seed``, ``max_tokens``, the integer
``options``), int64; lone surrogates and invalid UTF-8 in strings are accepted,
as Go accepts them. This module is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError

from . import gojson
from .errors import BadRequest, InvalidBody, InvalidField, InvalidJSON

#: Fields Go decodes into a map or into structs: a repeat merges into the first value.
MERGED_FIELDS = frozenset({"options", "messages", "tools", "stream_options", "response_format"})
#: Longest field path quoted in a message (paths into free-form objects hold client keys).
MAX_PATH = 120


def _one_of(expected: str, check: Callable[[Any], bool]) -> AfterValidator:
    """A validator for a field Go decodes into ``any`` but then type-switches on."""

    def validate(value: Any) -> Any:
        if value is None or check(value):
            return value
        raise PydanticCustomError("wrong_type", "must be {expected}", {"expected": expected})

    return AfterValidator(validate)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


#: Ollama's ``keep_alive``: a duration string ("5m") or a number of seconds.
KeepAlive = Annotated[
    Any, _one_of("a duration string or a number", lambda v: isinstance(v, str) or _is_number(v))
]
#: Ollama's ``think``: a boolean, or a level such as "high".
Think = Annotated[Any, _one_of("a boolean or a string", lambda v: isinstance(v, bool | str))]
#: A text, or a batch of texts (Ollama's embed ``input``, OpenAI's ``stop``).
TextOrTexts = Annotated[
    Any,
    _one_of("a string or an array of strings", lambda v: isinstance(v, str) or _is_str_list(v)),
]
#: OpenAI's embeddings ``input``: a text or an array (of texts or token ids).
TextOrArray = Annotated[Any, _one_of("a string or an array", lambda v: isinstance(v, str | list))]
#: OpenAI's message ``content``: a text or an array of content parts.
Content = Annotated[Any, _one_of("a string or an array", lambda v: isinstance(v, str | list))]
#: A JSON number (Go float64): integers are numbers too, booleans are not.
Number = Annotated[Any, _one_of("a number", _is_number)]


def _int64(value: int) -> int:
    if gojson.fits_int64(value):
        return value
    raise PydanticCustomError(
        "go_int64",
        "must be an integer from {min} to {max} (Go's int)",
        {"min": gojson.INT64_MIN, "max": gojson.INT64_MAX},
    )


def _int_option(value: Any) -> Any:
    if not _is_number(value) or gojson.fits_int64_after_float(value):
        return value
    raise PydanticCustomError(
        "go_int64",
        "must be a number from {min} to {max}: Ollama converts it to Go's int64",
        {"min": gojson.INT64_MIN, "max": gojson.INT64_MAX},
    )


#: A Go ``int`` field: an integer, and one that fits in 64 bits.
GoInt = Annotated[int, AfterValidator(_int64)]
#: An integer option: Go decodes it as float64 and Ollama converts it to int64.
IntOption = Annotated[Any, AfterValidator(_int_option)]

_FIELDS: dict[type[BaseModel], tuple[frozenset[str], dict[str, str]]] = {}


def _fields(cls: type[BaseModel]) -> tuple[frozenset[str], dict[str, str]]:
    """The class's field names, and the same by Go-folded name (computed once per class)."""
    known = _FIELDS.get(cls)
    if known is None:
        names = frozenset(cls.model_fields)
        folded = {f: n for n in names if (f := gojson.go_fold(n)) is not None}
        known = _FIELDS[cls] = (names, folded)
    return known


class GoStruct(BaseModel):
    """An object Ollama decodes into a Go struct, where keys match fields case-insensitively."""

    model_config = ConfigDict(extra="allow", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_per_field(cls, data: Any) -> Any:
        """Refuse a key that is a known field to Go without being spelled as it."""
        if isinstance(data, dict):
            names, by_fold = _fields(cls)
            for key in data:
                if key in names or not isinstance(key, str):
                    continue
                folded = gojson.go_fold(key)
                field = None if folded is None else by_fold.get(folded)
                if field is not None:
                    raise PydanticCustomError(
                        "go_key_case",
                        "a key that differs from it only in case is the same field to "
                        'Ollama\'s JSON decoder; send it once, spelled "{field}"',
                        {"field": field},
                    )
        return data


class Options(BaseModel):
    """``options``: a Go map (keys match exactly); the integer ones must fit int64."""

    model_config = ConfigDict(extra="allow", strict=True)

    num_keep: IntOption = None
    seed: IntOption = None
    num_predict: IntOption = None
    top_k: IntOption = None
    repeat_last_n: IntOption = None
    mirostat: IntOption = None
    num_ctx: IntOption = None
    num_batch: IntOption = None
    num_gpu: IntOption = None
    main_gpu: IntOption = None
    num_thread: IntOption = None


class RequestBody(GoStruct):
    """Base of every body: typed known fields, unknown fields kept and forwarded."""

    model: str | None = None

    def requested_model(self) -> str | None:
        """The model the request names; None or "" when it names none."""
        return self.model

    def streams(self) -> bool:
        """Whether Ollama will answer with a stream."""
        return False


class GenerationRequest(RequestBody):
    """What ``/api/generate`` and ``/api/chat`` share."""

    stream: bool | None = None
    format: Any = None
    options: Options | None = None
    keep_alive: KeepAlive = None
    think: Think = None

    def streams(self) -> bool:
        """Ollama streams unless ``stream`` is false."""
        return self.stream is not False


class GenerateRequest(GenerationRequest):
    """``POST /api/generate``."""

    prompt: str | None = None
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    context: list[GoInt] | None = None
    raw: bool | None = None
    images: list[str] | None = None


class Message(GoStruct):
    """One message of ``/api/chat``."""

    role: str | None = None
    content: str | None = None
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_name: str | None = None


class ChatRequest(GenerationRequest):
    """``POST /api/chat``."""

    messages: list[Message] | None = None
    tools: list[dict[str, Any]] | None = None


class EmbedRequest(RequestBody):
    """``POST /api/embed``."""

    input: TextOrTexts = None
    truncate: bool | None = None
    dimensions: GoInt | None = None
    options: Options | None = None
    keep_alive: KeepAlive = None


class EmbeddingsRequest(RequestBody):
    """``POST /api/embeddings`` (the older, single-prompt form)."""

    prompt: str | None = None
    options: Options | None = None
    keep_alive: KeepAlive = None


class ShowRequest(RequestBody):
    """``POST /api/show``; ``name`` is the older spelling of ``model``."""

    name: str | None = None
    verbose: bool | None = None
    system: str | None = None
    template: str | None = None
    options: Options | None = None

    def requested_model(self) -> str | None:
        """``model``, or the deprecated ``name``."""
        return self.model or self.name


class OpenAIMessage(GoStruct):
    """One message of ``/v1/chat/completions``."""

    role: str | None = None
    content: Content = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class OpenAIGenerationRequest(RequestBody):
    """What ``/v1/chat/completions`` and ``/v1/completions`` share."""

    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: GoInt | None = None
    seed: GoInt | None = None
    stop: TextOrTexts = None
    temperature: Number = None
    top_p: Number = None
    frequency_penalty: Number = None
    presence_penalty: Number = None

    def streams(self) -> bool:
        """OpenAI's default: no stream unless ``stream`` is true."""
        return self.stream is True


class OpenAIChatRequest(OpenAIGenerationRequest):
    """``POST /v1/chat/completions``."""

    messages: list[OpenAIMessage] | None = None
    max_completion_tokens: GoInt | None = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    reasoning_effort: str | None = None


class OpenAICompletionRequest(OpenAIGenerationRequest):
    """``POST /v1/completions``."""

    prompt: str | None = None
    suffix: str | None = None


class OpenAIEmbeddingRequest(RequestBody):
    """``POST /v1/embeddings``."""

    input: TextOrArray = None
    dimensions: GoInt | None = None
    encoding_format: str | None = None


_PHRASES = {
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "int_type": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "list_type": "must be an array",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "missing": "is required",
}


def field_path(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "content")`` → ``messages[0].content``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def _quoted_path(loc: tuple[int | str, ...]) -> str:
    path = field_path(loc)
    return path if len(path) <= MAX_PATH else path[: MAX_PATH - 1] + "…"


def _describe(error: ErrorDetails) -> BadRequest:
    kind = error["type"]
    loc = error["loc"]
    if kind == "go_key_case":
        field = str(error.get("ctx", {}).get("field", ""))
        return InvalidField(f"{field_path((*loc, field))}: {error['msg']}")
    if not loc:
        return InvalidBody("request body must be a JSON object")
    phrase = _PHRASES.get(kind) or error["msg"]
    return InvalidField(f"{field_path(loc)}: {phrase}")


def _check_as_go(schema: type[RequestBody], body: bytes, document: dict[str, Any]) -> None:
    """What Go would read differently: overflowing numbers, merged repeats."""
    loc = gojson.out_of_range(body, document)
    if loc is not None:
        raise InvalidField(
            f"{_quoted_path(loc)}: number out of range (Ollama's decoder, Go's float64, "
            "cannot hold it)"
        )
    repeated = gojson.repeated_keys(body, MERGED_FIELDS & _fields(schema)[0])
    if repeated:
        raise InvalidField(
            f"{min(repeated)}: given more than once (Ollama's JSON decoder would merge the "
            "values); send it once"
        )


def parse_body(schema: type[RequestBody], body: bytes) -> RequestBody:
    """Validate a request body; raise a 400 :class:`~.errors.BadRequest` naming what is wrong."""
    if not body or body.isspace():
        raise InvalidBody("missing request body: send a JSON object")
    try:
        document = gojson.loads(body)
    except ValueError as exc:
        raise InvalidJSON(f"invalid JSON in request body: {exc}") from None
    if isinstance(document, dict):
        _check_as_go(schema, body, document)
    try:
        return schema.model_validate(document)
    except ValidationError as exc:
        raise _describe(exc.errors(include_url=False)[0]) from None


def require_model(parsed: RequestBody) -> str:
    """The requested model; a 400 naming ``model`` when there is none."""
    model = parsed.requested_model()
    if not model:
        raise InvalidField("model: is required")
    return model

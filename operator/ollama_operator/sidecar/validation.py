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
:meth:`RequestBody.streams` from the result. This module is pure.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError, from_json

from .errors import BadRequest, InvalidBody, InvalidField, InvalidJSON


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


class RequestBody(BaseModel):
    """Base of every body: typed known fields, unknown fields kept and forwarded."""

    model_config = ConfigDict(extra="allow", strict=True)

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
    options: dict[str, Any] | None = None
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
    context: list[int] | None = None
    raw: bool | None = None
    images: list[str] | None = None


class Message(BaseModel):
    """One message of ``/api/chat``."""

    model_config = ConfigDict(extra="allow", strict=True)

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
    dimensions: int | None = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class EmbeddingsRequest(RequestBody):
    """``POST /api/embeddings`` (the older, single-prompt form)."""

    prompt: str | None = None
    options: dict[str, Any] | None = None
    keep_alive: KeepAlive = None


class ShowRequest(RequestBody):
    """``POST /api/show``; ``name`` is the older spelling of ``model``."""

    name: str | None = None
    verbose: bool | None = None
    system: str | None = None
    template: str | None = None
    options: dict[str, Any] | None = None

    def requested_model(self) -> str | None:
        """``model``, or the deprecated ``name``."""
        return self.model or self.name


class OpenAIMessage(BaseModel):
    """One message of ``/v1/chat/completions``."""

    model_config = ConfigDict(extra="allow", strict=True)

    role: str | None = None
    content: Content = None
    name: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class OpenAIGenerationRequest(RequestBody):
    """What ``/v1/chat/completions`` and ``/v1/completions`` share."""

    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = None
    seed: int | None = None
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
    max_completion_tokens: int | None = None
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
    dimensions: int | None = None
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


def _describe(error: ErrorDetails) -> BadRequest:
    kind = error["type"]
    loc = error["loc"]
    if not loc:
        return InvalidBody("request body must be a JSON object")
    phrase = _PHRASES.get(kind) or error["msg"]
    return InvalidField(f"{field_path(loc)}: {phrase}")


def parse_body(schema: type[RequestBody], body: bytes) -> RequestBody:
    """Validate a request body; raise a 400 :class:`~.errors.BadRequest` naming what is wrong."""
    if not body or body.isspace():
        raise InvalidBody("missing request body: send a JSON object")
    try:
        document = from_json(body, allow_inf_nan=False)
    except ValueError as exc:
        raise InvalidJSON(f"invalid JSON in request body: {exc}") from None
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

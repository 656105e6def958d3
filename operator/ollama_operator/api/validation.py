"""Turn pydantic's validation errors into messages that name the field, the user's way.

pydantic locates errors by Python location tuples; users wrote YAML. This
renders ``("storage", "size")`` as ``spec.storage.size`` and list indexes as
``models[1].name``, so the controller's status, the sidecar's 4xx bodies and
the tests all speak of the same field the same way.
"""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """``("models", 1, "name")`` → ``models[1].name`` (after an optional prefix)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "union[")) or part in ("str", "int", "list", "dict"):
            continue  # pydantic's internal validator names are not fields
        else:
            out += f".{part}" if out else part
    return out or "(root)"


def describe(exc: ValidationError, prefix: str = "spec") -> list[str]:
    """One ``field: problem`` line per error, in pydantic's order."""
    lines = []
    for err in exc.errors():
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        lines.append(f"{field_path(tuple(err.get('loc', ())), prefix)}: {msg}")
    return lines

"""Does the live object already hold what we would apply? (pure)

A server-side apply that changes nothing is still a write request, so a
steady cluster would see a stream of no-op PATCHes. Instead the reconcile
compares the desired manifest with the live object from the watch cache and
applies only when a field the operator manages differs. "Differs" means: a
desired key is missing or has another value; keys only the live object has
(server defaults, other managers' fields, status) are ignored. Quantities are
compared by value, because the API server rewrites ``1000m`` as ``1``.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Any

_SUFFIXES = {
    "Ki": Decimal(1024),
    "Mi": Decimal(1024**2),
    "Gi": Decimal(1024**3),
    "Ti": Decimal(1024**4),
    "Pi": Decimal(1024**5),
    "Ei": Decimal(1024**6),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10**3),
    "M": Decimal(10**6),
    "G": Decimal(10**9),
    "T": Decimal(10**12),
    "P": Decimal(10**15),
    "E": Decimal(10**18),
}
_QUANTITY = re.compile(
    r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"
)


def quantity_value(value: object) -> Decimal | None:
    """The numeric value of a Kubernetes quantity, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY.match(value)
    if match is None:
        return None
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2) or ""]
    except InvalidOperation:
        return None


def _scalar_equal(desired: object, live: object) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    a, b = quantity_value(desired), quantity_value(live)
    return a is not None and a == b


def is_subset(desired: Any, live: Any) -> bool:
    """True when every value in ``desired`` is present and equal in ``live``.

    An empty desired collection matches an absent live one (``{}`` vs missing).
    """
    if isinstance(desired, dict):
        if live is None:
            return not desired
        if not isinstance(live, dict):
            return False
        return all(is_subset(v, live.get(k)) for k, v in desired.items())
    if isinstance(desired, list):
        if live is None:
            return not desired
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, lv) for d, lv in zip(desired, live, strict=True))
    return _scalar_equal(desired, live)


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Whether applying ``desired`` would change ``live`` (labels, owners, body)."""
    if live is None:
        return True
    for key, value in desired.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            meta = {k: v for k, v in value.items() if k not in ("name", "namespace")}
            if not is_subset(meta, live.get("metadata", {})):
                return True
        elif not is_subset(value, live.get(key)):
            return True
    return False

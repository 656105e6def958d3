"""Does the live object already hold what we would apply? (pure)

A server-side apply that changes nothing is still a write request, so a
steady cluster would see a stream of no-op PATCHes. Instead the reconcile
applies a child only when one of two things is true:

* **The desired manifest changed.** Every manifest is stamped with a hash of
  itself (annotation :data:`APPLIED_HASH`); a live object carrying another
  hash (or none) was applied from another spec. Re-applying is then enough,
  also for *removed* fields: server-side apply with the same field manager
  drops every field the manager owned but no longer sends. A subset check
  alone could never see a removal, since the old object is a superset of the
  new manifest.
* **Someone else changed a field we own** (drift): a desired key is missing
  or has another value. Keys only the live object has (server defaults, other
  managers' fields, status) are ignored.

Values compare exactly, except resource amounts (``requests``, ``limits``,
``sizeLimit``), which compare as quantities because the API server rewrites
``1000m`` as ``1``; an env value ``"1"`` and ``"1.0"`` are different strings.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .naming import APPLIED_HASH

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


#: Keys under which every value is a Kubernetes quantity (container resources, claim
#: requests, emptyDir size): the API server normalises these, nothing else.
QUANTITY_KEYS = frozenset({"requests", "limits", "sizeLimit"})


def _scalar_equal(desired: object, live: object, quantity: bool) -> bool:
    if desired == live and type(desired) is type(live):
        return True
    if not quantity:
        return False
    a, b = quantity_value(desired), quantity_value(live)
    return a is not None and a == b


def is_subset(desired: Any, live: Any, *, quantity: bool = False) -> bool:
    """True when every value in ``desired`` is present and equal in ``live``.

    An empty desired collection matches an absent live one (``{}`` vs missing).
    ``quantity``: ``desired`` lies under one of :data:`QUANTITY_KEYS`.
    """
    if isinstance(desired, dict):
        if live is None:
            return not desired
        if not isinstance(live, dict):
            return False
        return all(
            is_subset(v, live.get(k), quantity=quantity or k in QUANTITY_KEYS)
            for k, v in desired.items()
        )
    if isinstance(desired, list):
        if live is None:
            return not desired
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(is_subset(d, lv, quantity=quantity) for d, lv in zip(desired, live, strict=True))
    return _scalar_equal(desired, live, quantity)


def manifest_hash(manifest: dict[str, Any]) -> str:
    """A digest of the manifest as we would apply it (key order does not matter)."""
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def stamped(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``manifest`` carrying its own hash as the :data:`APPLIED_HASH` annotation."""
    result = copy.deepcopy(manifest)
    meta = result.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), APPLIED_HASH: manifest_hash(manifest)}
    return result


def _hash_of(obj: dict[str, Any]) -> str | None:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(APPLIED_HASH)
    return None if value is None else str(value)


def needs_apply(desired: dict[str, Any], live: dict[str, Any] | None) -> bool:
    """Whether ``desired`` (a :func:`stamped` manifest) must be applied over ``live``:
    it is missing, was applied from another manifest, or a field we own drifted."""
    if live is None:
        return True
    if _hash_of(desired) is not None and _hash_of(desired) != _hash_of(live):
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

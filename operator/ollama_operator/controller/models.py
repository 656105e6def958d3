"""Per-model status across replicas, from what each pod's sidecar reports (pure).

Each sidecar's ``/status`` says how *its* Ollama holds each declared model.
This module folds those reports into ``status.models`` (one entry per
declared model: the least advanced replica's phase and progress, how many
replicas have it), the ``ModelsReady`` condition, the ``MemoryFits`` warning,
and the transitions worth an Event. Nothing here does I/O; the poller feeds
it and the reconcile writes what it returns.

When no pod answers (the controller cannot reach pod IPs, or no pod runs
yet), the caller falls back to pod readiness: a pod is Ready only when its
``/readyz`` saw every required model, so readiness is a coarse but honest
stand-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ..api.report import ModelReport, PodReport
from ..api.spec import OllamaServerSpec
from ..api.status import ModelPhase, Verdict, condition
from .diff import quantity_value

#: Phases from least to most advanced; the fleet is as far as its slowest replica.
_ORDER: dict[ModelPhase, int] = {"Failed": 0, "Pending": 1, "Pulling": 2, "Creating": 3, "Ready": 4}
IN_PROGRESS: frozenset[ModelPhase] = frozenset({"Pending", "Pulling", "Creating"})

#: Memory rule for CPU inference: the weights are read into RAM, plus room for the
#: KV cache, the compute graph and Ollama itself.
MEMORY_FACTOR = 1.2
MEMORY_OVERHEAD = 1 << 30


@dataclass(frozen=True, slots=True)
class Event:
    """An Event to post about the OllamaServer."""

    type: str
    reason: str
    message: str


def _entries(reports: Mapping[str, PodReport], name: str) -> list[ModelReport]:
    return [model for report in reports.values() for model in report.models if model.name == name]


def aggregate_models(
    spec: OllamaServerSpec,
    reports: Mapping[str, PodReport],
    old: Sequence[Mapping[str, Any]],
    *,
    now: str,
) -> list[dict[str, Any]]:
    """``status.models`` from the pods' reports (pod name → /status document)."""
    previous = {m.get("name"): m for m in old}
    result: list[dict[str, Any]] = []
    for declared in spec.models:
        entries = _entries(reports, declared.name)
        ready = [e for e in entries if e.phase == "Ready"]
        slowest: ModelReport | None
        if entries and len(ready) == len(reports):
            phase: ModelPhase = "Ready"
            slowest = ready[0]
        elif entries:
            slowest = min(entries, key=lambda e: _ORDER[e.phase])
            phase = slowest.phase
        else:
            slowest, phase = None, "Pending"
        entry: dict[str, Any] = {"name": declared.name, "phase": phase, "readyReplicas": len(ready)}
        if slowest is not None and phase in ("Pulling", "Pending"):
            for key, value in (
                ("progress", slowest.progress),
                ("completedBytes", slowest.completed_bytes),
                ("totalBytes", slowest.total_bytes),
            ):
                if value is not None:
                    entry[key] = value
        if phase == "Ready":
            entry["progress"] = 100
        source = ready[0] if ready else slowest
        if source is not None:
            if source.digest is not None:
                entry["digest"] = source.digest
            if source.size is not None:
                entry["size"] = source.size
        loaded = [e.loaded for e in entries if e.loaded is not None]
        if loaded:
            entry["loaded"] = any(loaded)
        if slowest is not None and slowest.message:
            entry["message"] = slowest.message[:1024]
        prior = previous.get(declared.name) or {}
        entry["lastTransitionTime"] = (
            prior.get("lastTransitionTime", now) if prior.get("phase") == phase else now
        )
        result.append(entry)
    return result


def models_ready_condition(
    spec: OllamaServerSpec, models: Sequence[Mapping[str, Any]]
) -> tuple[Verdict, int]:
    """ModelsReady from aggregated model status; returns it and the number of Ready models."""
    ready_count = sum(1 for m in models if m["phase"] == "Ready")
    if not spec.models:
        return _cond("True", "NoModelsDeclared", "spec.models is empty"), 0
    required = {m.name for m in spec.models if m.required}
    waiting = [m for m in models if m["name"] in required and m["phase"] != "Ready"]
    if not waiting:
        return _cond(
            "True", "RequiredModelsPresent", f"{ready_count}/{len(models)} ready"
        ), ready_count
    failed = [m for m in waiting if m["phase"] == "Failed"]
    shown = failed or waiting
    parts = [_describe(m) for m in shown[:5]]
    return _cond("False", "ModelsNotReady", "; ".join(parts)), ready_count


def _describe(model: Mapping[str, Any]) -> str:
    text = f"{model['name']}: {model['phase']}"
    if model["phase"] == "Pulling" and model.get("progress") is not None:
        text += f" {model['progress']}%"
    if model.get("message"):
        text += f" ({model['message']})"
    return text


def _cond(status: Literal["True", "False"], reason: str, message: str) -> Verdict:
    return condition("ModelsReady", status, reason, message)


def memory_condition(spec: OllamaServerSpec, models: Sequence[Mapping[str, Any]]) -> Verdict:
    """MemoryFits: False when the memory limit is below what the largest known model needs.

    Rule (CPU only; with GPUs the weights live in GPU memory): needed =
    size on disk x 1.2 + 1 GiB. Unknown until a size is known or without a limit.
    """
    sizes = [int(m["size"]) for m in models if m.get("size")]
    limit = quantity_value(spec.resources.limits.get("memory"))
    if spec.gpu is not None:
        return condition("MemoryFits", "True", "GPU", "weights load into GPU memory")
    if limit is None:
        return condition("MemoryFits", "Unknown", "NoMemoryLimit", "no memory limit set")
    if not sizes:
        return condition("MemoryFits", "Unknown", "SizesUnknown", "no model size known yet")
    largest = max(sizes)
    needed = int(largest * MEMORY_FACTOR) + MEMORY_OVERHEAD
    name = next(m["name"] for m in models if m.get("size") == largest)
    if limit < needed:
        return condition(
            "MemoryFits",
            "False",
            "MemoryLimitTooLow",
            f"{name} is {_gib(largest)} on disk and needs about {_gib(needed)}; "
            f"resources.limits.memory is {_gib(int(limit))}",
        )
    return condition(
        "MemoryFits",
        "True",
        "Fits",
        f"largest model {name} needs about {_gib(needed)} of {_gib(int(limit))}",
    )


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f}Gi"


def transitions(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[Event]:
    """Events for phase changes between two ``status.models`` — never one per poll."""
    previous = {m.get("name"): m.get("phase") for m in old}
    events: list[Event] = []
    for model in new:
        before, after, name = previous.get(model["name"]), model["phase"], model["name"]
        if before == after:
            continue
        if after == "Pulling":
            events.append(Event("Normal", "PullStarted", f"pulling {name}"))
        elif after == "Creating":
            events.append(Event("Normal", "CreateStarted", f"creating {name}"))
        elif after == "Ready":
            events.append(
                Event(
                    "Normal",
                    "ModelReady",
                    f"{name} is ready on {model['readyReplicas']} replica(s)",
                )
            )
        elif after == "Failed":
            events.append(
                Event("Warning", "ModelFailed", f"{name}: {model.get('message') or 'failed'}")
            )
    return events


def in_progress(phases: Iterable[str | None]) -> bool:
    """Whether anything is still moving (the poller polls fast then)."""
    return any(phase in IN_PROGRESS for phase in phases)

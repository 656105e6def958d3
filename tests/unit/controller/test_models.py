"""Folding the pods' /status reports into status.models, ModelsReady, MemoryFits, Events."""

from __future__ import annotations

from typing import Any

from ollama_operator.api.report import PodReport
from ollama_operator.controller.models import (
    aggregate_models,
    in_progress,
    memory_condition,
    models_ready_condition,
    transitions,
)

from .conftest import make_spec

NOW = "2026-01-01T00:00:00Z"
GIB = 1 << 30


def report(*models: dict[str, Any]) -> PodReport:
    """A pod's /status as the poller hands it on: parsed through the typed report."""
    return PodReport.model_validate({"ollamaUp": True, "ready": False, "models": list(models)})


def model(name: str, phase: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "phase": phase, **extra}


def test_fleet_is_as_far_as_its_slowest_replica() -> None:
    spec = make_spec(models=[{"name": "a"}, {"name": "b"}])
    reports = {
        "p-0": report(model("a", "Ready", size=10, digest="sha256:x"), model("b", "Ready")),
        "p-1": report(
            model("a", "Pulling", progress=40, completedBytes=4, totalBytes=10), model("b", "Ready")
        ),
    }
    a, b = aggregate_models(spec, reports, [], now=NOW)
    assert a == {
        "name": "a",
        "phase": "Pulling",
        "readyReplicas": 1,
        "progress": 40,
        "completedBytes": 4,
        "totalBytes": 10,
        "digest": "sha256:x",
        "size": 10,
        "lastTransitionTime": NOW,
    }
    assert b["phase"] == "Ready"
    assert b["readyReplicas"] == 2
    assert b["progress"] == 100


def test_failed_carries_ollamas_message() -> None:
    spec = make_spec(models=[{"name": "nope"}])
    msg = "pull model manifest: file does not exist"
    (entry,) = aggregate_models(
        spec, {"p-0": report(model("nope", "Failed", message=msg))}, [], now=NOW
    )
    cond, ready = models_ready_condition(spec, [entry])
    assert cond["status"] == "False"
    assert cond["reason"] == "ModelsNotReady"
    assert msg in cond["message"]
    assert ready == 0


def test_optional_models_do_not_block_readiness() -> None:
    spec = make_spec(models=[{"name": "a"}, {"name": "b", "required": False}])
    models = aggregate_models(
        spec, {"p": report(model("a", "Ready"), model("b", "Pulling", progress=5))}, [], now=NOW
    )
    cond, ready = models_ready_condition(spec, models)
    assert cond["status"] == "True"
    assert ready == 1


def test_unreported_model_is_pending() -> None:
    spec = make_spec(models=[{"name": "new"}])
    (entry,) = aggregate_models(spec, {"p": report()}, [], now=NOW)
    assert entry["phase"] == "Pending"
    assert in_progress([entry["phase"]])


def test_transition_time_kept_while_phase_unchanged() -> None:
    spec = make_spec(models=[{"name": "a"}])
    old = [{"name": "a", "phase": "Pulling", "lastTransitionTime": "earlier"}]
    (entry,) = aggregate_models(
        spec, {"p": report(model("a", "Pulling", progress=50))}, old, now=NOW
    )
    assert entry["lastTransitionTime"] == "earlier"
    (entry,) = aggregate_models(spec, {"p": report(model("a", "Ready"))}, old, now=NOW)
    assert entry["lastTransitionTime"] == NOW


def test_events_only_on_transitions() -> None:
    old = [{"name": "a", "phase": "Pending"}, {"name": "b", "phase": "Pulling"}]
    new = [
        {"name": "a", "phase": "Pulling", "readyReplicas": 0},
        {"name": "b", "phase": "Pulling", "readyReplicas": 0},
    ]
    assert [(e.type, e.reason) for e in transitions(old, new)] == [("Normal", "PullStarted")]
    assert transitions(new, new) == []
    failed = [{"name": "a", "phase": "Failed", "readyReplicas": 0, "message": "boom"}]
    (event,) = transitions(new[:1], failed)
    assert (event.type, event.reason) == ("Warning", "ModelFailed")
    assert "boom" in event.message


def test_memory_fit_rule() -> None:
    models = [{"name": "big", "phase": "Ready", "size": 8 * GIB}]
    low = make_spec(resources={"limits": {"memory": "8Gi"}})
    cond = memory_condition(low, models)
    assert cond["status"] == "False"
    assert cond["reason"] == "MemoryLimitTooLow"
    assert "big" in cond["message"]
    enough = make_spec(resources={"limits": {"memory": "12Gi"}})  # 8 x 1.2 + 1 = 10.6Gi
    assert memory_condition(enough, models)["status"] == "True"
    assert memory_condition(make_spec(), models)["reason"] == "NoMemoryLimit"
    assert memory_condition(low, [])["reason"] == "SizesUnknown"
    assert memory_condition(make_spec(gpu={"count": 1}), models)["status"] == "True"

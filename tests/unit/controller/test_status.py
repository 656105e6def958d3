"""Status from what the cluster holds: conditions, reasons, columns."""

from __future__ import annotations

from typing import Any

from ollama_operator.api.report import PodReport
from ollama_operator.controller.naming import Owner
from ollama_operator.controller.status import (
    Observed,
    compute_status,
    merge_conditions,
    status_changed,
)

from .conftest import make_spec

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:05:00Z"


def sts(replicas: int, ready: int, *, rolling: bool = False) -> dict[str, Any]:
    return {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "updatedReplicas": replicas,
            "currentRevision": "a",
            "updateRevision": "b" if rolling else "a",
        },
    }


def pending_pod(message: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo-0"},
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                }
            ],
        },
    }


def running_pod(name: str = "demo-0", waiting: str | None = None) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "ollama", "state": {"running": {}}}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": "boom"}}
    return {
        "metadata": {"name": name},
        "status": {
            "phase": "Running",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [cs],
        },
    }


def conds(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_first_visit_sets_every_condition(owner: Owner) -> None:
    status = compute_status(
        owner, make_spec(models=[{"name": "m"}]), Observed(None, []), {}, now=NOW
    )
    c = conds(status)
    assert set(c) == {
        "Ready",
        "Scheduled",
        "Available",
        "ModelsReady",
        "Progressing",
        "Degraded",
        "MemoryFits",
    }
    assert c["Ready"]["status"] == "False"
    assert c["Scheduled"]["status"] == "Unknown"
    assert all(x["observedGeneration"] == 3 for x in c.values())
    assert status["observedGeneration"] == 3
    assert status["summary"] == {"replicas": "0/1", "models": "0/1", "gpu": "-"}


def test_ready_when_all_replicas_ready(owner: Owner) -> None:
    spec = make_spec(replicas=2, models=[{"name": "a"}, {"name": "b"}], gpu={"count": 2})
    status = compute_status(
        owner,
        spec,
        Observed(sts(2, 2), [running_pod("demo-0"), running_pod("demo-1")]),
        {},
        now=NOW,
    )
    c = conds(status)
    assert c["Ready"]["status"] == "True"
    assert c["Ready"]["reason"] == "AllReplicasReady"
    assert c["Progressing"]["status"] == "False"
    assert status["summary"] == {"replicas": "2/2", "models": "2/2", "gpu": "2x nvidia"}
    assert status["endpoint"] == "http://demo.ml.svc:11434"
    assert status["selector"] == "app.kubernetes.io/instance=demo,app.kubernetes.io/name=ollama"


def test_unschedulable_pod_names_scheduler_message(owner: Owner) -> None:
    message = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu."
    status = compute_status(
        owner, make_spec(gpu={"count": 8}), Observed(sts(1, 0), [pending_pod(message)]), {}, now=NOW
    )
    c = conds(status)
    assert c["Scheduled"]["status"] == "False"
    assert message in c["Scheduled"]["message"]
    assert c["Ready"]["reason"] == "Unschedulable"
    assert message in c["Ready"]["message"]


def test_crash_loop_is_degraded(owner: Owner) -> None:
    status = compute_status(
        owner,
        make_spec(),
        Observed(sts(1, 0), [running_pod(waiting="CrashLoopBackOff")]),
        {},
        now=NOW,
    )
    c = conds(status)
    assert c["Degraded"]["status"] == "True"
    assert c["Ready"]["reason"] == "CrashLoopBackOff"


def test_apply_error_is_degraded(owner: Owner) -> None:
    status = compute_status(
        owner, make_spec(), Observed(None, [], "applying X: denied"), {}, now=NOW
    )
    assert conds(status)["Degraded"]["reason"] == "ApplyFailed"
    assert conds(status)["Ready"]["reason"] == "ApplyFailed"


def test_rolling_update_is_progressing(owner: Owner) -> None:
    status = compute_status(
        owner, make_spec(), Observed(sts(1, 1, rolling=True), [running_pod()]), {}, now=NOW
    )
    assert conds(status)["Progressing"]["reason"] == "RollingUpdate"


def test_partially_ready_reason_comes_from_progressing(owner: Owner) -> None:
    status = compute_status(
        owner, make_spec(replicas=3), Observed(sts(3, 1), [running_pod()]), {}, now=NOW
    )
    c = conds(status)
    assert c["Available"]["status"] == "True"
    assert c["Ready"]["status"] == "False"
    assert c["Ready"]["reason"] == "PodsStarting"


def test_transition_time_kept_unless_status_flips() -> None:
    first = merge_conditions(
        [{"type": "Ready", "status": "False", "reason": "A", "message": ""}],
        [],
        now=NOW,
        generation=1,
    )
    same = merge_conditions(
        [{"type": "Ready", "status": "False", "reason": "B", "message": ""}],
        first,
        now=LATER,
        generation=1,
    )
    assert same[0]["lastTransitionTime"] == NOW
    flipped = merge_conditions(
        [{"type": "Ready", "status": "True", "reason": "C", "message": ""}],
        first,
        now=LATER,
        generation=1,
    )
    assert flipped[0]["lastTransitionTime"] == LATER


def test_steady_state_computes_identical_status(owner: Owner) -> None:
    spec = make_spec()
    observed = Observed(sts(1, 1), [running_pod()])
    first = compute_status(owner, spec, observed, {}, now=NOW)
    second = compute_status(owner, spec, observed, first, now=LATER)
    assert not status_changed(second, first)
    scaled = compute_status(owner, make_spec(replicas=2), observed, first, now=LATER)
    assert status_changed(scaled, first)


def _report(phase: str, **extra: Any) -> PodReport:
    return PodReport.model_validate({"models": [{"name": "m", "phase": phase, **extra}]})


def test_failed_model_is_readys_reason_when_reported(owner: Owner) -> None:
    """The pod is unready because of the model: say the model's problem, not 0/1 ready."""
    spec = make_spec(models=[{"name": "m"}])
    msg = "pull model manifest: file does not exist"
    observed = Observed(
        sts(1, 0), [running_pod()], reports={"demo-0": _report("Failed", message=msg)}
    )
    ready = conds(compute_status(owner, spec, observed, {}, now=NOW))["Ready"]
    assert ready["reason"] == "ModelsNotReady"
    assert msg in ready["message"]


def test_missing_reports_keep_what_sidecars_said(owner: Owner) -> None:
    """An operator restart (no report yet) must not move a model backwards."""
    spec = make_spec(models=[{"name": "m"}, {"name": "new"}])
    reported = Observed(
        sts(1, 0),
        [running_pod()],
        reports={"demo-0": _report("Pulling", progress=45, digest="sha256:x")},
    )
    first = compute_status(owner, spec, reported, {}, now=NOW)
    silent = Observed(sts(1, 1), [running_pod()])
    after = compute_status(owner, spec, silent, first, now=LATER)
    models = {m["name"]: m for m in after["models"]}
    assert models["m"]["phase"] == "Pulling"
    assert models["m"]["progress"] == 45
    assert models["new"]["phase"] == "Pending"
    assert conds(after)["ModelsReady"]["status"] == "False"


def test_without_any_report_models_follow_pod_readiness(owner: Owner) -> None:
    spec = make_spec(models=[{"name": "m"}])
    status = compute_status(owner, spec, Observed(sts(1, 1), [running_pod()]), {}, now=NOW)
    assert status["models"][0]["phase"] == "Ready"
    assert conds(status)["ModelsReady"]["reason"] == "RequiredModelsPresent"

"""From what the cluster holds to ``OllamaServer.status`` (pure).

Conditions follow the Kubernetes API conventions: every type is present from
the first reconcile (Unknown when nothing is known yet), ``lastTransitionTime``
moves only when ``status`` flips, and ``Ready`` carries the reason of the first
failing sub-condition so ``kubectl get`` names the actual problem. Because the
result is a pure function of its inputs, an unchanged cluster yields an
identical status and the reconcile writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..api.report import PodReport
from ..api.spec import OllamaServerSpec
from ..api.status import OllamaServerStatus, Verdict, condition, stamp
from .builders import gpu_resource
from .models import aggregate_models, memory_condition, models_ready_condition
from .naming import Owner, selector_string

#: Container waiting reasons that will not fix themselves: the server is Degraded.
BAD_WAITING_REASONS = frozenset(
    {
        "CrashLoopBackOff",
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True, slots=True)
class Observed:
    """What the reconcile saw: the StatefulSet and the pods (live objects as dicts)."""

    statefulset: Mapping[str, Any] | None
    pods: Sequence[Mapping[str, Any]]
    #: Set when applying the children failed this time (message for Degraded).
    apply_error: str | None = None
    #: pod name → that pod's sidecar /status document; empty when no pod answered.
    reports: Mapping[str, PodReport] = field(default_factory=dict)


def _pod_condition(pod: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in pod.get("status", {}).get("conditions", []) or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def scheduled_condition(spec: OllamaServerSpec, pods: Sequence[Mapping[str, Any]]) -> Verdict:
    """False with the scheduler's own message as soon as any pod cannot be placed."""
    for pod in pods:
        cond = _pod_condition(pod, "PodScheduled")
        if cond is not None and cond.get("status") == "False":
            name = pod.get("metadata", {}).get("name", "?")
            return condition(
                "Scheduled",
                "False",
                str(cond.get("reason") or "Unschedulable"),
                f"pod {name}: {cond.get('message', '')}".strip(),
            )
    if spec.replicas == 0:
        return condition("Scheduled", "True", "NoReplicas", "spec.replicas is 0")
    if not pods:
        return condition("Scheduled", "Unknown", "NoPods", "no pods exist yet")
    return condition("Scheduled", "True", "AllPodsScheduled", f"{len(pods)} pod(s) placed on nodes")


def degraded_condition(pods: Iterable[Mapping[str, Any]], apply_error: str | None) -> Verdict:
    """True when something will not heal by waiting: an apply error, a crash loop, a bad image."""
    if apply_error:
        return condition("Degraded", "True", "ApplyFailed", apply_error)
    for pod in pods:
        name = pod.get("metadata", {}).get("name", "?")
        for cs in pod.get("status", {}).get("containerStatuses", []) or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason in BAD_WAITING_REASONS:
                message = waiting.get("message") or reason
                return condition(
                    "Degraded",
                    "True",
                    str(reason),
                    f"pod {name} container {cs.get('name')}: {message}",
                )
    return condition("Degraded", "False", "AsExpected", "")


def _sts_numbers(sts: Mapping[str, Any] | None) -> tuple[int, int, int]:
    status = (sts or {}).get("status") or {}
    return (
        int(status.get("readyReplicas") or 0),
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or status.get("readyReplicas") or 0),
    )


def available_condition(spec: OllamaServerSpec, sts: Mapping[str, Any] | None) -> Verdict:
    """True while at least one replica serves."""
    if sts is None:
        return condition(
            "Available", "False", "StatefulSetMissing", "the StatefulSet does not exist yet"
        )
    _, _, available = _sts_numbers(sts)
    if spec.replicas == 0:
        return condition("Available", "False", "ScaledToZero", "spec.replicas is 0")
    if available > 0:
        return condition(
            "Available", "True", "MinimumReplicasAvailable", f"{available}/{spec.replicas} ready"
        )
    return condition("Available", "False", "NoReplicasReady", f"0/{spec.replicas} replicas ready")


def progressing_condition(spec: OllamaServerSpec, sts: Mapping[str, Any] | None) -> Verdict:
    """True while the StatefulSet is rolling out or scaling; False once it has converged."""
    if sts is None:
        return condition("Progressing", "True", "Creating", "creating the StatefulSet")
    status = sts.get("status") or {}
    generation = (sts.get("metadata") or {}).get("generation", 0)
    ready, updated, _ = _sts_numbers(sts)
    if int(status.get("observedGeneration") or 0) < int(generation or 0):
        return condition(
            "Progressing",
            "True",
            "Updating",
            "the StatefulSet controller has not seen the change yet",
        )
    current, update = status.get("currentRevision"), status.get("updateRevision")
    if current and update and current != update:
        return condition(
            "Progressing", "True", "RollingUpdate", f"{updated}/{spec.replicas} replicas updated"
        )
    if ready != spec.replicas or int(status.get("replicas") or 0) != spec.replicas:
        return condition(
            "Progressing", "True", "PodsStarting", f"{ready}/{spec.replicas} replicas ready"
        )
    return condition("Progressing", "False", "Converged", "all replicas are updated and ready")


def models_condition(spec: OllamaServerSpec, sts: Mapping[str, Any] | None) -> tuple[Verdict, int]:
    """ModelsReady, from pod readiness: a pod is Ready only when its sidecar's /readyz says
    every required model is present. Returns the condition and the count of ready models."""
    required = [m for m in spec.models if m.required]
    ready, _, _ = _sts_numbers(sts)
    if not spec.models:
        return condition("ModelsReady", "True", "NoModelsDeclared", "spec.models is empty"), 0
    if ready > 0:
        return (
            condition(
                "ModelsReady",
                "True",
                "RequiredModelsPresent",
                f"{len(required)} required model(s) present on {ready} ready replica(s)",
            ),
            len(spec.models),
        )
    return (
        condition(
            "ModelsReady", "False", "ModelsNotReady", "no replica reports its models ready yet"
        ),
        0,
    )


def ready_condition(
    spec: OllamaServerSpec,
    conds: Mapping[str, Verdict],
    ready_replicas: int,
    *,
    models_reported: bool = False,
) -> Verdict:
    """Ready: every desired replica ready with its models; else the first failing reason.

    When the sidecars reported their models, a failed model comes before Available:
    its pod is unready *because* of the model, and Ollama's message says why.
    """
    checks = [("Scheduled", "False"), ("Degraded", "True")]
    if models_reported:
        checks.append(("ModelsReady", "False"))
    checks += [
        ("Available", "False"),
        ("ModelsReady", "False"),
        ("Scheduled", "Unknown"),
        ("ModelsReady", "Unknown"),
    ]
    for type_, bad in checks:
        cond = conds[type_]
        if cond["status"] == bad:
            return condition("Ready", "False", cond["reason"], cond["message"])
    if ready_replicas < spec.replicas:
        cond = conds["Progressing"]
        return condition("Ready", "False", cond["reason"], cond["message"])
    return condition(
        "Ready", "True", "AllReplicasReady", f"{ready_replicas}/{spec.replicas} replicas ready"
    )


def merge_conditions(
    new: Sequence[Verdict],
    old: Sequence[Mapping[str, Any]],
    *,
    now: str,
    generation: int,
) -> list[dict[str, Any]]:
    """Stamp each condition against the stored one of its type (see :func:`stamp`)."""
    previous = {c.get("type"): c for c in old}
    return [stamp(c, previous.get(c["type"]), now=now, generation=generation) for c in new]


def gpu_summary(spec: OllamaServerSpec) -> str:
    """``2x nvidia`` per replica; the extended resource when overridden; ``-`` for none."""
    if spec.gpu is None:
        return "-"
    if spec.gpu.resource_name:
        return f"{spec.gpu.count}x {gpu_resource(spec)}"
    return f"{spec.gpu.count}x {spec.gpu.vendor}"


def compute_status(
    owner: Owner,
    spec: OllamaServerSpec,
    observed: Observed,
    old_status: Mapping[str, Any],
    *,
    now: str,
) -> dict[str, Any]:
    """The whole ``status`` the OllamaServer should have, as plain JSON data."""
    sts = observed.statefulset
    ready_replicas, _, _ = _sts_numbers(sts)
    models, reported = _models(spec, observed, ready_replicas, old_status, now)
    if reported:
        models_cond, models_ready = models_ready_condition(spec, models)
    else:
        models_cond, models_ready = models_condition(spec, sts)
    conds = {
        "Scheduled": scheduled_condition(spec, observed.pods),
        "Available": available_condition(spec, sts),
        "ModelsReady": models_cond,
        "Progressing": progressing_condition(spec, sts),
        "Degraded": degraded_condition(observed.pods, observed.apply_error),
    }
    memory = memory_condition(spec, models if reported else [])
    ready = ready_condition(spec, conds, ready_replicas, models_reported=reported)
    ordered = [ready, *conds.values(), memory]
    conditions = merge_conditions(
        ordered, old_status.get("conditions") or [], now=now, generation=owner.generation
    )
    replicas = int(((sts or {}).get("status") or {}).get("replicas") or 0)
    status: dict[str, Any] = {
        "observedGeneration": owner.generation,
        "conditions": conditions,
        "replicas": replicas,
        "readyReplicas": ready_replicas,
        "selector": selector_string(owner),
        "endpoint": f"{owner.endpoint}:{spec.service.port}",
        "summary": {
            "replicas": f"{ready_replicas}/{spec.replicas}",
            "models": f"{models_ready}/{len(spec.models)}",
            "gpu": gpu_summary(spec),
        },
    }
    if models:
        status["models"] = models
    # Through the typed model: a field the CRD schema does not have fails here, not as a
    # silently pruned field that differs from what was written on every reconcile.
    return OllamaServerStatus.model_validate(status).to_json()


def _from_report(model: Mapping[str, Any]) -> bool:
    """Whether a stored model entry can only have come from a sidecar's report
    (the readiness fallback writes neither digests nor in-flight phases)."""
    return bool(model.get("digest")) or model.get("phase") in ("Pulling", "Creating", "Failed")


def _models(
    spec: OllamaServerSpec,
    observed: Observed,
    ready_replicas: int,
    old_status: Mapping[str, Any],
    now: str,
) -> tuple[list[dict[str, Any]], bool]:
    """status.models, and whether it rests on the sidecars' reports.

    1. Fresh reports: aggregate them.
    2. None right now, but the stored status came from reports (see _from_report) and
       pods exist: keep it (an operator restart or one missed poll must not move
       a model backwards or repeat an Event); newly declared models are Pending.
    3. Never any report (pod IPs unreachable from the operator): approximate from
       pod readiness, which the sidecar's /readyz holds back until the models are there.
    """
    old = old_status.get("models") or []
    if observed.reports:
        return aggregate_models(spec, observed.reports, old, now=now), True
    previous = {m.get("name"): m for m in old}
    if observed.pods and any(_from_report(m) for m in old):
        kept = []
        for model in spec.models:
            prior = previous.get(model.name)
            kept.append(
                dict(prior)
                if prior is not None
                else {
                    "name": model.name,
                    "phase": "Pending",
                    "readyReplicas": 0,
                    "lastTransitionTime": now,
                }
            )
        return kept, True
    result = []
    for model in spec.models:
        phase = "Ready" if ready_replicas > 0 else "Pending"
        prior = previous.get(model.name) or {}
        entry: dict[str, Any] = {
            "name": model.name,
            "phase": phase,
            "readyReplicas": ready_replicas,
            "lastTransitionTime": (
                prior.get("lastTransitionTime", now) if prior.get("phase") == phase else now
            ),
        }
        result.append(entry)
    return result, False


def status_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` would change anything the controller owns in ``old``."""
    return any(old.get(key) != value for key, value in new.items())

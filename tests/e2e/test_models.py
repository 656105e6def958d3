"""Models end to end: spec → ConfigMap → real sidecar → Ollama → /status → controller → status.

The cluster is real (apiserver, scheduler, controller-manager; kwok plays the
kubelets), the operator is the real process with its ServiceAccount, each pod
runs the real sidecar bound to its loopback pod IP, and the controller polls
it through its unchanged polling path. Only Ollama is emulated (one emulator
per pod, so every replica pulls on its own). See tests/e2e/podsim.py.

Each test asserts what a user sees: ``kubectl get ollama`` columns, the
conditions and ``status.models`` in ``-o yaml``, Events, pods that do not
restart. Sequences (rising progress, ready counts that follow a scale-out, a
status that never goes back) are read from a watch on the OllamaServer
(:class:`~tests.e2e.helpers.StatusRecorder`), so no write is missed.
"""

from __future__ import annotations

from typing import Any

from tests.e2e.helpers import (
    GROUP,
    ScopedOperator,
    StatusRecorder,
    condition,
    converged,
    event_reasons,
    events,
    get,
    model_status,
    server,
    table,
    wait_status,
)
from tests.e2e.podsim import PodSimulator, Pullable
from tests.integration.kube import Kubectl

#: A pull slow enough to be seen moving: 32 progress events, 0.5 s apart (~16 s).
SLOW = Pullable("tinyllama:1.1b", size=64_000_000, chunks=32, delay=0.5)
#: A pull done in about a second.
FAST = Pullable("smollm:135m", size=4_000_000, chunks=4, delay=0.25)
#: Another quick one, for adding to or fixing a spec.
EXTRA = Pullable("qwen2.5:0.5b", size=6_000_000, chunks=4, delay=0.5)
#: In no registry: every pull of it fails with Ollama's own message.
MISSING = "no-such-model:7b"
OLLAMA_NOT_FOUND = "pull model manifest: file does not exist"

Json = dict[str, Any]


def _phases(rec: StatusRecorder, name: str, since: float = 0.0) -> list[str]:
    """The model's phase in every recorded version, consecutive repeats collapsed."""
    seen: list[str] = []
    for _, entry in rec.models(name, since):
        if not seen or seen[-1] != entry["phase"]:
            seen.append(entry["phase"])
    return seen


def _trace(rec: StatusRecorder, name: str) -> str:
    """The model's recorded (phase, progress, readyReplicas), for assertion messages."""
    return str(
        [(e["phase"], e.get("progress"), e.get("readyReplicas")) for _, e in rec.models(name)]
    )


def _phases_from_pulling(rec: StatusRecorder, name: str) -> list[str]:
    """The model's phases from its first Pulling on, repeats collapsed.

    What comes before the first report of a sidecar is the controller's fallback
    (pod readiness), which kwok's instant pod readiness can briefly turn Ready.
    """
    phases = _phases(rec, name)
    return phases[phases.index("Pulling") :] if "Pulling" in phases else phases


def _pulling(rec: StatusRecorder, name: str, since: float = 0.0) -> list[tuple[Json, Json]]:
    return [(o, e) for o, e in rec.models(name, since) if e["phase"] == "Pulling"]


def test_apply_pulls_with_rising_progress_then_ready(
    kubectl: Kubectl, namespace: str, sim: PodSimulator, operator: ScopedOperator
) -> None:
    sim.registry = [SLOW, FAST]
    kubectl.apply(server("pull", [SLOW.name, FAST.name]), "-n", namespace)
    with StatusRecorder(kubectl, namespace, GROUP, "pull") as rec:
        obj = wait_status(kubectl, namespace, "pull", converged, timeout=90, what="Ready")

    # Rising progress, in bytes and percent, while the slow model was pulling.
    pulling = _pulling(rec, SLOW.name)
    percents = [e["progress"] for _, e in pulling if e.get("progress") is not None]
    completed = [e["completedBytes"] for _, e in pulling if e.get("completedBytes") is not None]
    assert len(set(percents)) >= 2, f"progress never moved: {_trace(rec, SLOW.name)}"
    assert percents == sorted(percents), f"progress went back: {_trace(rec, SLOW.name)}"
    assert all(0 <= p < 100 for p in percents), percents
    assert completed == sorted(completed), f"bytes went back: {completed}"
    assert {e.get("totalBytes") for _, e in pulling} <= {SLOW.size, None}
    assert all(e["completedBytes"] <= SLOW.size for _, e in pulling if e.get("completedBytes"))

    # Readiness held the pod back while a required model was missing (the pod turns
    # Ready as soon as its pull ends, possibly before the next poll: look at the first).
    first, entry = pulling[0]
    assert entry["readyReplicas"] == 0
    assert first["status"].get("readyReplicas", 0) == 0, "pod Ready while pulling"
    columns = []
    for version, _ in pulling:
        ready_models = sum(m["phase"] == "Ready" for m in version["status"]["models"])
        columns.append(version["status"]["summary"]["models"])  # the MODELS column
        assert columns[-1] == f"{ready_models}/2"
        models_ready = condition(version, "ModelsReady")
        assert models_ready["status"] == "False"
        assert models_ready["reason"] == "ModelsNotReady"
        assert f"{SLOW.name}: Pulling" in models_ready["message"]
        assert condition(version, "Ready")["status"] == "False"
    assert "1/2" in columns, columns
    assert _phases_from_pulling(rec, SLOW.name) == ["Pulling", "Ready"], _trace(rec, SLOW.name)

    # Converged: what -o yaml shows per model.
    for pullable in (SLOW, FAST):
        entry = model_status(obj, pullable.name)
        assert entry["phase"] == "Ready", entry
        assert entry["progress"] == 100
        assert entry["readyReplicas"] == 1
        assert entry["size"] == pullable.size
        assert entry["digest"] == pullable.model().digest
        assert entry["lastTransitionTime"]
    assert condition(obj, "ModelsReady")["reason"] == "RequiredModelsPresent"
    pod = kubectl.json("-n", namespace, "get", "pod", "pull-0")
    assert {c["type"]: c["status"] for c in pod["status"]["conditions"]}["Ready"] == "True"
    row = table(kubectl, namespace, "pull")
    assert (row["READY"], row["REPLICAS"], row["MODELS"], row["REASON"]) == (
        "True",
        "1/1",
        "2/2",
        "AllReplicasReady",
    )

    # Events: the pull start that was seen, then the model ready; each once.
    reasons = event_reasons(kubectl, namespace, "pull", SLOW.name)
    assert reasons.count("PullStarted") == 1, reasons
    assert reasons[-2:] == ["PullStarted", "ModelReady"], reasons
    assert event_reasons(kubectl, namespace, "pull", FAST.name)[-1:] == ["ModelReady"]
    assert sorted(sim.pulls("pull-0")) == sorted([SLOW.name, FAST.name])


def test_adding_a_model_touches_only_the_configmap(
    kubectl: Kubectl, namespace: str, sim: PodSimulator, operator: ScopedOperator
) -> None:
    sim.registry = [FAST, EXTRA]
    body = server("grow", [FAST.name])
    kubectl.apply(body, "-n", namespace)
    wait_status(kubectl, namespace, "grow", converged, timeout=60, what="Ready with 1 model")
    sts = get(kubectl, namespace, "statefulset", "grow")
    pod = kubectl.json("-n", namespace, "get", "pod", "grow-0")
    before = sim.pods()["grow-0"]
    assert table(kubectl, namespace, "grow")["MODELS"] == "1/1"

    body["spec"]["models"].append({"name": EXTRA.name})
    kubectl.apply(body, "-n", namespace)

    def both_ready(obj: Json) -> bool:
        return converged(obj) and bool(model_status(obj, EXTRA.name))

    obj = wait_status(kubectl, namespace, "grow", both_ready, timeout=90, what="new model Ready")
    assert table(kubectl, namespace, "grow")["MODELS"] == "2/2"
    assert model_status(obj, EXTRA.name)["readyReplicas"] == 1
    assert model_status(obj, EXTRA.name)["digest"] == EXTRA.model().digest

    # Only the ConfigMap changed: same StatefulSet generation, same pod, same sidecar process.
    cm = get(kubectl, namespace, "configmap", "grow-config")
    assert cm is not None
    assert EXTRA.name in cm["data"]["sidecar.yaml"]
    sts_after = get(kubectl, namespace, "statefulset", "grow")
    assert sts is not None
    assert sts_after is not None
    assert sts_after["metadata"]["generation"] == sts["metadata"]["generation"]
    pod_after = kubectl.json("-n", namespace, "get", "pod", "grow-0")
    assert pod_after["metadata"]["uid"] == pod["metadata"]["uid"], "the pod was replaced"
    after = sim.pods()["grow-0"]
    assert (after.uid, after.pid, after.starts) == (before.uid, before.pid, 1)
    assert after.config_writes == before.config_writes + 1, "the sidecar config was not synced"
    assert sim.history == [("grow-0", before.uid)]
    # The running sidecar reloaded its config and pulled the new model.
    assert sim.pulls("grow-0") == [FAST.name, EXTRA.name]
    assert "ModelReady" in event_reasons(kubectl, namespace, "grow", EXTRA.name)


def test_unpullable_model_fails_with_ollamas_message_then_recovers(
    kubectl: Kubectl, namespace: str, sim: PodSimulator, operator: ScopedOperator
) -> None:
    sim.registry = [FAST, EXTRA]
    body = server("typo", [FAST.name, MISSING])
    kubectl.apply(body, "-n", namespace)

    def failed(obj: Json) -> bool:
        return model_status(obj, MISSING).get("phase") == "Failed"

    obj = wait_status(kubectl, namespace, "typo", failed, timeout=60, what=f"{MISSING} Failed")
    entry = model_status(obj, MISSING)
    assert entry["message"] == OLLAMA_NOT_FOUND, entry
    assert entry["readyReplicas"] == 0
    obj = wait_status(
        kubectl,
        namespace,
        "typo",
        lambda o: model_status(o, FAST.name).get("phase") == "Ready",
        timeout=30,
        what=f"{FAST.name} Ready",
    )
    models_ready = condition(obj, "ModelsReady")
    assert models_ready["status"] == "False"
    assert models_ready["reason"] == "ModelsNotReady"
    assert f"{MISSING}: Failed ({OLLAMA_NOT_FOUND})" in models_ready["message"]
    assert condition(obj, "Ready")["status"] == "False"
    row = table(kubectl, namespace, "typo")
    assert (row["READY"], row["MODELS"]) == ("False", "1/2")
    warnings = [
        e
        for e in events(kubectl, namespace, "typo")
        if e["reason"] == "ModelFailed" and MISSING in e["message"]
    ]
    assert warnings, "no ModelFailed Event"
    assert warnings[0]["type"] == "Warning"
    assert OLLAMA_NOT_FOUND in warnings[0]["message"]

    # Fix the spec: the right name instead of the typo.
    body["spec"]["models"] = [{"name": FAST.name}, {"name": EXTRA.name}]
    kubectl.apply(body, "-n", namespace)
    obj = wait_status(kubectl, namespace, "typo", converged, timeout=90, what="Ready after the fix")
    assert [m["name"] for m in obj["status"]["models"]] == [FAST.name, EXTRA.name]
    assert all(m["phase"] == "Ready" for m in obj["status"]["models"])
    assert condition(obj, "ModelsReady")["status"] == "True"
    row = table(kubectl, namespace, "typo")
    assert (row["READY"], row["MODELS"], row["REASON"]) == ("True", "2/2", "AllReplicasReady")
    assert "ModelReady" in event_reasons(kubectl, namespace, "typo", EXTRA.name)
    assert sim.pods()["typo-0"].starts == 1


def test_failed_model_is_readys_reason(
    kubectl: Kubectl, namespace: str, sim: PodSimulator, operator: ScopedOperator
) -> None:
    sim.registry = [FAST]
    kubectl.apply(server("why", [FAST.name, MISSING]), "-n", namespace)

    def failed(obj: Json) -> bool:
        return model_status(obj, MISSING).get("phase") == "Failed"

    obj = wait_status(kubectl, namespace, "why", failed, timeout=60, what=f"{MISSING} Failed")
    ready = condition(obj, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ModelsNotReady"), ready
    assert f"{MISSING}: Failed ({OLLAMA_NOT_FOUND})" in ready["message"]
    assert table(kubectl, namespace, "why")["REASON"] == "ModelsNotReady"


def test_scale_out_per_model_ready_counts_follow(
    kubectl: Kubectl, namespace: str, sim: PodSimulator, operator: ScopedOperator
) -> None:
    medium = Pullable("llama3.2:1b", size=12_000_000, chunks=12, delay=0.5)
    sim.registry = [medium, FAST]
    kubectl.apply(server("fleet", [medium.name, FAST.name]), "-n", namespace)
    wait_status(kubectl, namespace, "fleet", converged, timeout=90, what="Ready at 1 replica")

    with StatusRecorder(kubectl, namespace, GROUP, "fleet") as rec:
        kubectl("-n", namespace, "scale", "ollama/fleet", "--replicas=3")

        def all_three(obj: Json) -> bool:
            models = obj["status"].get("models") or []
            return (
                converged(obj)
                and obj["status"].get("readyReplicas") == 3
                and len(models) == 2
                and all(m["phase"] == "Ready" and m["readyReplicas"] == 3 for m in models)
            )

        obj = wait_status(kubectl, namespace, "fleet", all_three, timeout=90, what="3/3 ready")

    entries = [e for _, e in rec.models(medium.name)]
    counts = [e["readyReplicas"] for e in entries]
    assert counts == sorted(counts), f"ready count went back: {counts}"
    assert (counts[0], counts[-1]) == (1, 3), counts
    assert any(e["phase"] == "Pulling" and e["readyReplicas"] < 3 for e in entries), (
        f"never saw the new replicas pulling: {[(e['phase'], e['readyReplicas']) for e in entries]}"
    )
    row = table(kubectl, namespace, "fleet")
    assert (row["READY"], row["REPLICAS"], row["MODELS"]) == ("True", "3/3", "2/2")
    assert obj["status"]["replicas"] == 3

    pods = sim.pods()
    assert sorted(pods) == ["fleet-0", "fleet-1", "fleet-2"]
    assert len({p.ip for p in pods.values()}) == 3, "pods share an IP"
    for name in pods:
        assert sorted(sim.pulls(name)) == sorted([medium.name, FAST.name]), name
    assert pods["fleet-0"].starts == 1


def test_operator_restart_mid_pull_loses_nothing(
    kubectl: Kubectl, namespace: str, sim: PodSimulator, operator: ScopedOperator
) -> None:
    slow = Pullable("mistral:7b", size=80_000_000, chunks=40, delay=0.5)
    sim.registry = [slow]
    kubectl.apply(server("steady", [slow.name]), "-n", namespace)
    with StatusRecorder(kubectl, namespace, GROUP, "steady") as rec:

        def pulling(obj: Json) -> bool:
            entry = model_status(obj, slow.name)
            return entry.get("phase") == "Pulling" and (entry.get("progress") or 0) > 0

        before = wait_status(kubectl, namespace, "steady", pulling, timeout=60, what="Pulling")
        operator.kill()
        operator.start()
        after = wait_status(kubectl, namespace, "steady", converged, timeout=90, what="Ready")

    progress_before = model_status(before, slow.name)["progress"]
    assert _phases_from_pulling(rec, slow.name) == ["Pulling", "Ready"], (
        f"the model's phase went back across the restart: {_trace(rec, slow.name)}"
    )
    percents = [e["progress"] for _, e in _pulling(rec, slow.name) if e.get("progress")]
    assert percents == sorted(percents), f"progress went back: {_trace(rec, slow.name)}"
    assert max(percents) >= progress_before
    reasons = event_reasons(kubectl, namespace, "steady", slow.name)
    assert reasons.count("PullStarted") == 1, reasons
    assert reasons[-2:] == ["PullStarted", "ModelReady"], reasons
    assert model_status(after, slow.name)["digest"] == slow.model().digest
    # The pull itself never noticed: one pull, one sidecar.
    assert sim.pulls("steady-0") == [slow.name]
    assert sim.pods()["steady-0"].starts == 1
    assert operator.alive(), "the restarted operator died"

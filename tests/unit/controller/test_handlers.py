"""The kopf wiring: what is registered, and how watch events map to servers."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from ollama_operator.controller import handlers
from ollama_operator.controller.reconcile import Reconciler

from .fakes import RecordingKube


def _plurals(registry: object) -> set[str]:
    return {str(s.any_name) for s in registry.get_all_selectors()}  # type: ignore[attr-defined]


def test_watches_servers_and_every_child_kind() -> None:
    registry = handlers.REGISTRY
    watched = _plurals(registry._watching)
    indexed = _plurals(registry._indexing)
    children = {
        "statefulsets",
        "services",
        "configmaps",
        "poddisruptionbudgets",
        "networkpolicies",
        "pods",
    }
    assert watched == {"ollamaservers"} | children
    assert indexed == {"ollamaservers"} | children


def test_no_change_handlers_timers_or_finalizers() -> None:
    """Level-based: kopf must not persist progress or add finalizers."""
    registry = handlers.REGISTRY
    assert not registry._changing.get_all_handlers()
    assert not registry._spawning.get_all_handlers()


def test_startup_and_cleanup_registered() -> None:
    names = {h.id for h in handlers.REGISTRY._activities.get_all_handlers()}
    assert {"startup", "cleanup"} <= names


def test_own_namespace_from_env_then_service_account(tmp_path: Path) -> None:
    sa_file = tmp_path / "namespace"
    assert handlers.own_namespace({"POD_NAMESPACE": "ops"}, sa_file) == "ops"
    assert handlers.own_namespace({}, sa_file) is None
    sa_file.write_text("from-sa\n")
    assert handlers.own_namespace({"POD_NAMESPACE": " "}, sa_file) == "from-sa"


def test_owner_key_from_instance_label() -> None:
    labels = {"app.kubernetes.io/instance": "demo"}
    assert handlers._owner_key("ml", labels) == ("ml", "demo")
    assert handlers._owner_key(None, labels) is None
    assert handlers._owner_key("ml", {}) is None


def test_pods_are_trimmed_to_what_status_reads() -> None:
    pod = {
        "metadata": {"name": "p", "uid": "u", "managedFields": [{"big": True}]},
        "spec": {"nodeName": "n", "containers": [{"name": "x"}]},
        "status": {"phase": "Running", "podIP": "127.1.1.5", "hostIP": "h"},
    }
    trimmed = handlers._trim_pod(pod)
    assert trimmed == {
        "metadata": {"name": "p", "uid": "u"},
        "spec": {"nodeName": "n"},
        "status": {"phase": "Running", "podIP": "127.1.1.5"},
    }


def test_cache_drops_what_the_reconcile_never_reads() -> None:
    body = {
        "metadata": {
            "name": "x",
            "managedFields": [{"manager": "kubectl"}],
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"},
        },
        "spec": {"replicas": 1},
    }
    assert handlers.cached(body) == {
        "metadata": {"name": "x", "annotations": {"a": "b"}},
        "spec": {"replicas": 1},
    }
    assert "managedFields" in body["metadata"], "the original is left alone"


KINDS = ("servers", "statefulsets", "services", "configmaps", "pdbs", "networkpolicies", "pods")


def _server(generation: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "demo",
            "namespace": "ml",
            "uid": "u-1",
            "generation": generation,
            "resourceVersion": str(100 + generation),
        },
        "spec": {"replicas": generation},
    }


async def test_the_newest_spec_wins_over_quick_edits() -> None:
    """Three edits while a reconcile is in flight: the last one is applied, none is dropped.

    The watch caches are faked by plain mappings of the same shape as kopf's indices; the
    reconcile reads them after it takes the server's lock.
    """
    kube = RecordingKube()
    kube.apply_gate = asyncio.Event()  # the first reconcile stalls on the API server
    key = ("ml", "demo")
    indices: dict[str, Any] = {f"{kind}_idx": {} for kind in KINDS}
    indices["servers_idx"] = {key: [_server(1)]}
    memo: dict[str, Any] = {"reconciler": Reconciler(kube)}

    def edit(generation: int) -> asyncio.Task[None]:
        indices["servers_idx"][key] = [_server(generation)]
        return asyncio.create_task(handlers._reconcile_key(memo, key, indices))  # type: ignore[arg-type]

    first = edit(1)
    await asyncio.wait_for(kube.apply_waiting.wait(), timeout=5)
    later = []
    for generation in (2, 3):
        later.append(edit(generation))
        for _ in range(10):
            await asyncio.sleep(0)  # the handler runs up to the server's lock
    kube.apply_gate.set()
    await asyncio.wait_for(asyncio.gather(first, *later), timeout=10)
    assert kube.last_applied("StatefulSet")["spec"]["replicas"] == 3
    assert kube.status is not None
    assert kube.status["observedGeneration"] == 3

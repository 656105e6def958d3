"""The kopf wiring: what is registered, and how watch events map to servers."""

from __future__ import annotations

from ollama_operator.controller import handlers


def _plurals(registry: object) -> set[str]:
    return {str(s.any_name) for s in registry.get_all_selectors()}  # type: ignore[attr-defined]


def test_watches_servers_and_every_child_kind() -> None:
    registry = handlers.REGISTRY
    watched = _plurals(registry._watching)
    indexed = _plurals(registry._indexing)
    children = {"statefulsets", "services", "configmaps", "poddisruptionbudgets", "pods"}
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

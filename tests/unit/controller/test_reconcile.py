"""The reconcile's decisions, with the API server replaced at our own client boundary.

The real API server is exercised in tests/integration; here a recording fake
of :class:`Kube` shows *which* requests one reconcile makes: everything on the
first visit, nothing at all when the cache already matches.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections.abc import Mapping
from typing import Any

import pytest

from ollama_operator.api.report import PodReport
from ollama_operator.api.status import OllamaServerStatus
from ollama_operator.controller import reconcile as reconcile_module
from ollama_operator.controller.reconcile import ClusterView, Reconciler

from .fakes import RecordingKube


async def run(reconciler: Reconciler, body: Mapping[str, Any], view: ClusterView) -> None:
    """One reconcile of ``body`` against a cache that holds ``view``."""
    meta = body["metadata"]
    await reconciler.reconcile((meta["namespace"], meta["name"]), lambda: (body, view))


async def applied(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What a first reconcile of ``body`` applies: what the cache holds once it caught up."""
    kube = RecordingKube()
    await run(Reconciler(kube), body, ClusterView())
    return kube.applied


def server(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "demo", "namespace": "ml", "uid": "u-1", "generation": 1},
        "spec": spec,
    }


def view_from(
    children: list[dict[str, Any]], pods: list[dict[str, Any]] | None = None
) -> ClusterView:
    by_kind: dict[str, Any] = {}
    services = {}
    for child in copy.deepcopy(children):
        if child["kind"] == "Service":
            services[child["metadata"]["name"]] = child
        else:
            by_kind[child["kind"]] = child
    sts = by_kind.get("StatefulSet")
    if sts is not None:
        sts["status"] = {"replicas": 1, "readyReplicas": 1, "observedGeneration": 0}
    return ClusterView(
        statefulset=sts,
        services=services,
        configmap=by_kind.get("ConfigMap"),
        pdb=by_kind.get("PodDisruptionBudget"),
        networkpolicy=by_kind.get("NetworkPolicy"),
        pods=pods or [],
    )


async def test_first_visit_creates_everything() -> None:
    kube = RecordingKube()
    await run(Reconciler(kube), server(models=[{"name": "m"}]), ClusterView())
    kinds = [k for verb, k in kube.calls if verb == "apply"]
    assert kinds == ["NetworkPolicy", "ConfigMap", "Service", "Service", "StatefulSet"]
    assert ("create", "Secret") in kube.calls
    assert ("status", "demo") in kube.calls


async def test_steady_state_makes_no_writes() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server(models=[{"name": "m"}])
    await run(reconciler, body, ClusterView())
    view = view_from(kube.applied)
    body["status"] = kube.status
    await run(reconciler, body, view)  # status catches up with the view
    body["status"] = kube.status
    kube.calls.clear()
    await run(reconciler, body, view)
    assert kube.calls == []


async def test_drift_is_repaired() -> None:
    kube = RecordingKube()
    body = server()
    view = view_from(await applied(body))
    assert view.statefulset is not None
    view.statefulset["spec"]["replicas"] = 7  # type: ignore[index]
    await run(Reconciler(kube), body, view)
    assert [k for verb, k in kube.calls if verb == "apply"] == ["StatefulSet"]


async def test_stale_pdb_is_deleted_when_scaled_down() -> None:
    kube = RecordingKube()
    body = server(replicas=3)
    view = view_from(await applied(body))
    body["spec"] = {"replicas": 1}
    await run(Reconciler(kube), body, view)
    assert ("delete", "PodDisruptionBudget") in kube.calls


async def test_network_policy_deleted_when_disabled_and_repaired_when_drifted() -> None:
    kube = RecordingKube()
    body = server()
    view = view_from(await applied(body))
    assert view.networkpolicy is not None
    view.networkpolicy["spec"]["ingress"] = []  # type: ignore[index]
    await run(Reconciler(kube), body, view)
    assert [k for verb, k in kube.calls if verb == "apply"] == ["NetworkPolicy"]

    kube = RecordingKube()
    body["spec"] = {"networkPolicy": {"enabled": False}}
    await run(Reconciler(kube), body, view)
    assert ("delete", "NetworkPolicy") in kube.calls
    assert "NetworkPolicy" not in [k for verb, k in kube.calls if verb == "apply"]


async def test_apply_error_degrades_and_posts_one_event() -> None:
    kube = RecordingKube()
    kube.fail_kind = "StatefulSet"
    reconciler = Reconciler(kube)
    await run(reconciler, server(), ClusterView())
    await run(reconciler, server(), ClusterView())
    assert kube.calls.count(("event", "ApplyFailed")) == 1
    assert kube.status is not None
    degraded = {c["type"]: c for c in kube.status["conditions"]}["Degraded"]
    assert degraded["status"] == "True"
    assert "forbidden by policy" in degraded["message"]


async def test_invalid_stored_spec_is_reported_not_raised() -> None:
    kube = RecordingKube()
    await run(Reconciler(kube), server(replicas=-3), ClusterView())
    assert kube.status is not None
    ready = {c["type"]: c for c in kube.status["conditions"]}["Ready"]
    assert ready["reason"] == "InvalidSpec"
    assert "spec.replicas" in ready["message"]
    assert not [c for c in kube.calls if c[0] == "apply"]


async def test_a_stale_cache_does_not_write_or_announce_twice() -> None:
    """Until the watch delivers our own status write, the cached body is one version old."""
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server(models=[{"name": "m"}])
    body["metadata"]["resourceVersion"] = "100"
    pulling = {"models": [{"name": "m", "phase": "Pulling", "progress": 5}]}
    reports = {"demo-0": PodReport.model_validate(pulling)}
    view = ClusterView(pods=[{"metadata": {"name": "demo-0"}, "status": {}}], reports=reports)
    await run(reconciler, body, view)
    await run(reconciler, body, view)  # same stale body: nothing new to say
    assert kube.calls.count(("status", "demo")) == 1
    assert kube.calls.count(("event", "PullStarted")) == 1
    body["metadata"]["resourceVersion"] = "101"  # the cache caught up with our write
    body["status"] = kube.status
    await run(reconciler, body, view)
    assert kube.calls.count(("status", "demo")) == 1


async def test_a_lagging_cache_does_not_repeat_applies() -> None:
    """Children applied a moment ago are not applied again before the cache shows them."""
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    await run(reconciler, server(), ClusterView())
    await run(reconciler, server(), ClusterView())  # the cache still has nothing
    applies = [k for verb, k in kube.calls if verb == "apply"]
    assert applies == ["NetworkPolicy", "ConfigMap", "Service", "Service", "StatefulSet"]
    # Once the cache shows the object, a real drift is repaired again.
    body = server()
    view = view_from(kube.applied)
    assert view.statefulset is not None
    view.statefulset["metadata"]["resourceVersion"] = "7"  # type: ignore[index]
    view.statefulset["spec"]["replicas"] = 3  # type: ignore[index]
    kube.calls.clear()
    await run(reconciler, body, view)
    assert [k for verb, k in kube.calls if verb == "apply"] == ["StatefulSet"]


async def test_a_child_deleted_after_the_cache_saw_it_comes_back() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server()
    await run(reconciler, body, ClusterView())
    await run(reconciler, body, view_from(kube.applied))  # the cache caught up
    kube.calls.clear()
    await run(reconciler, body, ClusterView())  # ... and then everything was deleted
    assert [k for verb, k in kube.calls if verb == "apply"] == [
        "NetworkPolicy",
        "ConfigMap",
        "Service",
        "Service",
        "StatefulSet",
    ]


def _pod_spec(kube: RecordingKube) -> dict[str, Any]:
    spec: dict[str, Any] = kube.last_applied("StatefulSet")["spec"]["template"]["spec"]
    return spec


AFFINITY = {
    "nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}]
        }
    }
}

# (spec before, spec after, where the field lived: it must be gone from what is applied)
REMOVALS = {
    "nodeSelector": (
        {"nodeSelector": {"disk": "ssd"}},
        {},
        lambda kube: "nodeSelector" not in _pod_spec(kube),
    ),
    "podAnnotations": (
        {"podAnnotations": {"team": "ml"}},
        {},
        lambda kube: (
            "annotations" not in kube.last_applied("StatefulSet")["spec"]["template"]["metadata"]
        ),
    ),
    "resources.limits.memory": (
        {"resources": {"limits": {"memory": "8Gi", "cpu": "2"}}},
        {"resources": {"limits": {"cpu": "2"}}},
        lambda kube: "memory" not in _pod_spec(kube)["containers"][0]["resources"]["limits"],
    ),
    "service.annotations": (
        {"service": {"annotations": {"lb.example/internal": "true"}}},
        {},
        lambda kube: (
            "lb.example/internal"
            not in (kube.last_applied("Service", "demo")["metadata"].get("annotations") or {})
        ),
    ),
    "runtimeClassName": (
        {"runtimeClassName": "nvidia"},
        {},
        lambda kube: "runtimeClassName" not in _pod_spec(kube),
    ),
    "affinity": ({"affinity": AFFINITY}, {}, lambda kube: "affinity" not in _pod_spec(kube)),
}


@pytest.mark.parametrize("field", list(REMOVALS))
async def test_a_field_removed_from_the_spec_is_removed_from_the_child(field: str) -> None:
    """Server-side apply drops what our field manager no longer sends, so re-applying when
    the desired manifest changed is enough, even when the old live object is a superset."""
    before, after, gone = REMOVALS[field]
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    await run(reconciler, server(**before), ClusterView())
    view = view_from(kube.applied)  # the cache caught up with the first apply
    kube.calls.clear()
    await run(reconciler, server(**after), view)
    assert [k for verb, k in kube.calls if verb == "apply"], f"removing {field} applied nothing"
    assert gone(kube), f"{field} is still in what was applied"


async def test_forgetting_a_server_keeps_the_memo_of_one_whose_name_it_prefixes() -> None:
    """`a` and `a-b` are different servers: `a-b-config` is not a child of `a`."""
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    short, long = server(), server()
    short["metadata"].update(name="a", uid="u-a")
    long["metadata"].update(name="a-b", uid="u-ab")
    await run(reconciler, short, ClusterView())
    await run(reconciler, long, ClusterView())
    reconciler.forget("ml", "a")
    kube.calls.clear()
    await run(reconciler, long, ClusterView())  # the cache still lags a-b's applies
    assert [c for c in kube.calls if c[0] == "apply"] == []


async def test_an_invalid_spec_on_a_stale_cache_is_written_once() -> None:
    """The invalid-spec status goes through the same write memo as any other status."""
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server(replicas=-3)
    body["metadata"]["resourceVersion"] = "100"
    await run(reconciler, body, ClusterView())
    await run(reconciler, body, ClusterView())  # the watch has not delivered our write yet
    assert kube.calls.count(("status", "demo")) == 1


async def test_events_are_posted_without_holding_the_servers_lock() -> None:
    """A slow Event POST must not stall the next reconcile of the same server."""
    kube = RecordingKube()
    kube.fail_kind = "StatefulSet"  # → an ApplyFailed Event
    kube.event_gate = asyncio.Event()
    reconciler = Reconciler(kube)
    first = asyncio.create_task(run(reconciler, server(), ClusterView()))
    await asyncio.wait_for(kube.event_waiting.wait(), timeout=5)
    kube.fail_kind = None
    second = server()
    second["metadata"]["generation"] = 2
    await asyncio.wait_for(run(reconciler, second, ClusterView()), timeout=5)
    assert kube.status is not None
    assert kube.status["observedGeneration"] == 2
    kube.event_gate.set()
    await asyncio.wait_for(first, timeout=5)
    assert ("event", "ApplyFailed") in kube.calls


def _keys_of(kube: RecordingKube, name: str = "demo-api-keys") -> str:
    return base64.b64decode(kube.secrets[name]["data"]["keys"]).decode()


async def test_auth_by_default_generates_one_key_once_and_never_rotates_it() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    await run(reconciler, server(), ClusterView())
    key = _keys_of(kube)
    assert key.startswith("oo_")
    assert key.endswith("\n")
    assert len(key.strip()) >= 40
    assert kube.secrets["demo-api-keys"]["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    # A restarted operator (no memory) and a spec edit keep the key.
    kube.calls.clear()
    await run(Reconciler(kube), server(replicas=2), ClusterView())
    assert _keys_of(kube) == key
    assert ("create", "Secret") not in kube.calls
    sts = kube.last_applied("StatefulSet")
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "demo-api-keys"


async def test_a_users_own_keys_secret_generates_nothing() -> None:
    kube = RecordingKube()
    await run(
        Reconciler(kube),
        server(gateway={"auth": {"apiKeysSecretRef": {"name": "team-keys"}}}),
        ClusterView(),
    )
    assert set(kube.secrets) == {"demo-internal"}


async def test_a_users_own_secret_with_the_generated_name_is_never_generated() -> None:
    """The user's Secret may be applied after the server: it must not find ours there."""
    kube = RecordingKube()
    ref = {"apiKeysSecretRef": {"name": "demo-api-keys"}}
    await run(Reconciler(kube), server(gateway={"auth": ref}), ClusterView())
    assert "demo-api-keys" not in kube.secrets


async def test_auth_disabled_generates_no_key_and_warns_once_per_generation() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server(gateway={"auth": {"mode": "Disabled"}})
    await run(reconciler, body, ClusterView())
    assert "demo-api-keys" not in kube.secrets
    assert kube.calls.count(("event", "AuthDisabled")) == 1
    body["status"] = kube.status
    await run(reconciler, body, view_from(kube.applied))
    await run(Reconciler(kube), body, view_from(kube.applied))  # a restart: still once
    assert kube.calls.count(("event", "AuthDisabled")) == 1
    edited = server(gateway={"auth": {"mode": "Disabled"}}, replicas=2)
    edited["metadata"]["generation"] = 2
    edited["status"] = kube.status
    await run(reconciler, edited, view_from(kube.applied))
    assert kube.calls.count(("event", "AuthDisabled")) == 2


async def test_a_generated_secret_without_the_keys_key_is_reported() -> None:
    kube = RecordingKube()
    kube.secrets["demo-api-keys"] = {"metadata": {"name": "demo-api-keys"}, "data": {"x": "eA=="}}
    await run(Reconciler(kube), server(), ClusterView())
    assert kube.secrets["demo-api-keys"]["data"] == {"x": "eA=="}, "never rewritten"
    assert kube.status is not None
    degraded = {c["type"]: c for c in kube.status["conditions"]}["Degraded"]
    assert degraded["status"] == "True"
    assert "Secret demo-api-keys has no key 'keys'" in degraded["message"]


async def test_a_status_the_typed_model_refuses_is_logged_not_raised_nor_written(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return OllamaServerStatus.model_validate({"replicas": "many"}).to_json()

    monkeypatch.setattr(reconcile_module, "compute_status", broken)
    kube = RecordingKube()
    await run(Reconciler(kube), server(), ClusterView())
    assert kube.status is None, "nothing written"
    assert "computed an invalid status: status.replicas" in caplog.text

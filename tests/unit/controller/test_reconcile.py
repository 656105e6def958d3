"""The reconcile's decisions, with the API server replaced at our own client boundary.

The real API server is exercised in tests/integration; here a recording fake
of :class:`Kube` shows *which* requests one reconcile makes: everything on the
first visit, nothing at all when the cache already matches.
"""

from __future__ import annotations

import copy
from typing import Any

from ollama_operator.controller.builders import BuildContext, build_children
from ollama_operator.controller.kube import ApiError, Kube
from ollama_operator.controller.reconcile import ClusterView, Reconciler, owner_of

from .conftest import make_spec


class RecordingKube(Kube):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.secrets: set[str] = set()
        self.fail_kind: str | None = None
        self.status: dict[str, Any] | None = None

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if manifest["kind"] == self.fail_kind:
            raise ApiError(422, "forbidden by policy")
        self.calls.append(("apply", manifest["kind"]))
        return manifest

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", manifest["kind"]))
        self.secrets.add(manifest["metadata"]["name"])
        return manifest

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        self.calls.append(("get", kind))
        return {"metadata": {"name": name}} if name in self.secrets else None

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", kind))
        return True

    async def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("status", name))
        self.status = status

    async def event(
        self, involved: dict[str, Any], *, type_: str, reason: str, message: str
    ) -> None:
        self.calls.append(("event", reason))


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
        pods=pods or [],
    )


async def test_first_visit_creates_everything() -> None:
    kube = RecordingKube()
    await Reconciler(kube).reconcile(server(models=[{"name": "m"}]), ClusterView())
    kinds = [k for verb, k in kube.calls if verb == "apply"]
    assert kinds == ["ConfigMap", "Service", "Service", "StatefulSet"]
    assert ("create", "Secret") in kube.calls
    assert ("status", "demo") in kube.calls


async def test_steady_state_makes_no_writes() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server(models=[{"name": "m"}])
    await reconciler.reconcile(body, ClusterView())
    spec = make_spec(models=[{"name": "m"}])
    view = view_from(build_children(owner_of(body), spec, BuildContext()))
    body["status"] = kube.status
    await reconciler.reconcile(body, view)  # status catches up with the view
    body["status"] = kube.status
    kube.calls.clear()
    await reconciler.reconcile(body, view)
    assert kube.calls == []


async def test_drift_is_repaired() -> None:
    kube = RecordingKube()
    body = server()
    children = build_children(owner_of(body), make_spec(), BuildContext())
    view = view_from(children)
    assert view.statefulset is not None
    view.statefulset["spec"]["replicas"] = 7  # type: ignore[index]
    await Reconciler(kube).reconcile(body, view)
    assert [k for verb, k in kube.calls if verb == "apply"] == ["StatefulSet"]


async def test_stale_pdb_is_deleted_when_scaled_down() -> None:
    kube = RecordingKube()
    body = server(replicas=3)
    view = view_from(build_children(owner_of(body), make_spec(replicas=3), BuildContext()))
    body["spec"] = {"replicas": 1}
    await Reconciler(kube).reconcile(body, view)
    assert ("delete", "PodDisruptionBudget") in kube.calls


async def test_apply_error_degrades_and_posts_one_event() -> None:
    kube = RecordingKube()
    kube.fail_kind = "StatefulSet"
    reconciler = Reconciler(kube)
    await reconciler.reconcile(server(), ClusterView())
    await reconciler.reconcile(server(), ClusterView())
    assert kube.calls.count(("event", "ApplyFailed")) == 1
    assert kube.status is not None
    degraded = {c["type"]: c for c in kube.status["conditions"]}["Degraded"]
    assert degraded["status"] == "True"
    assert "forbidden by policy" in degraded["message"]


async def test_invalid_stored_spec_is_reported_not_raised() -> None:
    kube = RecordingKube()
    await Reconciler(kube).reconcile(server(replicas=-3), ClusterView())
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
    reports = {"demo-0": {"models": [{"name": "m", "phase": "Pulling", "progress": 5}]}}
    view = ClusterView(pods=[{"metadata": {"name": "demo-0"}, "status": {}}], reports=reports)
    await reconciler.reconcile(body, view)
    await reconciler.reconcile(body, view)  # same stale body: nothing new to say
    assert kube.calls.count(("status", "demo")) == 1
    assert kube.calls.count(("event", "PullStarted")) == 1
    body["metadata"]["resourceVersion"] = "101"  # the cache caught up with our write
    body["status"] = kube.status
    await reconciler.reconcile(body, view)
    assert kube.calls.count(("status", "demo")) == 1


async def test_a_lagging_cache_does_not_repeat_applies() -> None:
    """Children applied a moment ago are not applied again before the cache shows them."""
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    await reconciler.reconcile(server(), ClusterView())
    await reconciler.reconcile(server(), ClusterView())  # the cache still has nothing
    applies = [k for verb, k in kube.calls if verb == "apply"]
    assert applies == ["ConfigMap", "Service", "Service", "StatefulSet"]
    # Once the cache shows the object, a real drift is repaired again.
    body = server()
    view = view_from(build_children(owner_of(body), make_spec(), BuildContext()))
    assert view.statefulset is not None
    view.statefulset["metadata"]["resourceVersion"] = "7"  # type: ignore[index]
    view.statefulset["spec"]["replicas"] = 3  # type: ignore[index]
    kube.calls.clear()
    await reconciler.reconcile(body, view)
    assert [k for verb, k in kube.calls if verb == "apply"] == ["StatefulSet"]


async def test_a_child_deleted_after_the_cache_saw_it_comes_back() -> None:
    kube = RecordingKube()
    reconciler = Reconciler(kube)
    body = server()
    await reconciler.reconcile(body, ClusterView())
    children = build_children(owner_of(body), make_spec(), BuildContext())
    await reconciler.reconcile(body, view_from(children))  # the cache caught up
    kube.calls.clear()
    await reconciler.reconcile(body, ClusterView())  # ... and then everything was deleted
    assert [k for verb, k in kube.calls if verb == "apply"] == [
        "ConfigMap",
        "Service",
        "Service",
        "StatefulSet",
    ]

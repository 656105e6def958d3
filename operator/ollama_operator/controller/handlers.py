"""kopf registration, and nothing else: watches in, one reconcile call out.

Every handler here is one line of glue. Watches on the OllamaServers and on
the children (selected by the ``managed-by`` label) feed kopf *indices*, an
in-memory cache of the live objects, so a reconcile reads nothing from the
API server. Any event on a server or on one of its children triggers that
server's reconcile; a resync loop reconciles every server periodically as a
safety net.

Why ``on.event`` and not ``on.create/on.update/on.resume``: kopf's change
handlers persist their progress and a diff base in annotations (writes to the
object), and its timers add a finalizer (which strands objects when the
operator is uninstalled). A level-based reconcile needs none of that, so the
operator makes no writes of its own bookkeeping at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import kopf

from ..api.spec import API_GROUP, API_VERSION, PLURAL
from . import metrics
from .builders import BuildContext
from .kube import Kube, default_login
from .naming import MANAGER
from .poller import StatusPoller
from .reconcile import ClusterView, Reconciler, State
from .supervise import supervise

log = logging.getLogger(__name__)

REGISTRY = kopf.OperatorRegistry()
MANAGED = {"app.kubernetes.io/managed-by": MANAGER}
INSTANCE = "app.kubernetes.io/instance"
#: Seconds between full resyncs of every server (drift safety net; reads nothing).
RESYNC_SECONDS = float(os.environ.get("OLLAMA_OPERATOR_RESYNC_SECONDS", "60"))

Key = tuple[str, str]


def plain(value: Any) -> Any:
    """A deep plain-dict copy of a kopf body (kopf hands out live views)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


#: Metadata the reconcile never reads, and the largest part of many objects.
_UNREAD_METADATA = ("managedFields",)
_UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def cached(body: Mapping[str, Any]) -> dict[str, Any]:
    """What a watch cache keeps of an object: everything but managedFields and
    kubectl's last-applied copy (the operator's memory grows with every object)."""
    copy: dict[str, Any] = plain(body)
    meta = copy.get("metadata") or {}
    for key in _UNREAD_METADATA:
        meta.pop(key, None)
    annotations = meta.get("annotations") or {}
    for key in _UNREAD_ANNOTATIONS:
        annotations.pop(key, None)
    return copy


def _owner_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    instance = labels.get(INSTANCE)
    if namespace is None or instance is None:
        return None
    return (namespace, instance)


def _trim_pod(body: Mapping[str, Any]) -> dict[str, Any]:
    """Keep what status computation reads; pods are the largest objects cached."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    return {
        "metadata": {"name": meta.get("name"), "uid": meta.get("uid")},
        "spec": {"nodeName": (body.get("spec") or {}).get("nodeName")},
        "status": plain(
            {
                k: status.get(k)
                for k in ("phase", "podIP", "conditions", "containerStatuses")
                if k in status
            }
        ),
    }


@kopf.index(API_GROUP, API_VERSION, PLURAL, registry=REGISTRY)
def servers_idx(
    namespace: str | None, name: str, body: kopf.Body, **_: Any
) -> dict[Key, Any] | None:
    return None if namespace is None else {(namespace, name): cached(body)}


def _child_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Any] | None:
    key = _owner_key(namespace, labels)
    return None if key is None else {key: cached(body)}


def _pod_index(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[Key, Any] | None:
    key = _owner_key(namespace, labels)
    return None if key is None else {key: _trim_pod(body)}


async def _child_event(
    namespace: str | None, labels: kopf.Labels, memo: Any, **kwargs: Any
) -> None:
    """Any change to a child (or a pod: scheduling, crashes) → reconcile its server."""
    key = _owner_key(namespace, labels)
    if key is not None:
        await _reconcile_key(memo, key, _indices(kwargs))


#: (group, version, plural, index id) of every child kind watched through a cache.
CHILD_KINDS = (
    ("apps", "v1", "statefulsets", "statefulsets_idx"),
    ("", "v1", "services", "services_idx"),
    ("", "v1", "configmaps", "configmaps_idx"),
    ("policy", "v1", "poddisruptionbudgets", "pdbs_idx"),
    ("networking.k8s.io", "v1", "networkpolicies", "networkpolicies_idx"),
    ("", "v1", "pods", "pods_idx"),
)

for _group, _version, _plural, _index_id in CHILD_KINDS:
    # The index id is the keyword under which kopf passes the cache to every handler.
    kopf.index(_group, _version, _plural, id=_index_id, labels=MANAGED, registry=REGISTRY)(
        _pod_index if _plural == "pods" else _child_index
    )
    kopf.on.event(
        _group, _version, _plural, id=f"{_plural}_event", labels=MANAGED, registry=REGISTRY
    )(_child_event)


def _values(index: kopf.Index[Key, Any], key: Key) -> list[Any]:
    try:
        return list(index[key])
    except KeyError:
        return []


def _one(index: kopf.Index[Key, Any], key: Key, name: str | None = None) -> Any:
    for body in _values(index, key):
        if name is None or (body.get("metadata") or {}).get("name") == name:
            return body
    return None


def view_of(
    key: Key,
    indices: Mapping[str, kopf.Index[Key, Any]],
    poller: StatusPoller | None = None,
) -> ClusterView:
    """The cached children of one server, and what its pods last reported."""
    services = {
        str((s.get("metadata") or {}).get("name")): s for s in _values(indices["services_idx"], key)
    }
    return ClusterView(
        statefulset=_one(indices["statefulsets_idx"], key, key[1]),
        services=services,
        configmap=_one(indices["configmaps_idx"], key),
        pdb=_one(indices["pdbs_idx"], key),
        networkpolicy=_one(indices["networkpolicies_idx"], key),
        pods=_values(indices["pods_idx"], key),
        reports=poller.reports(key) if poller is not None else {},
    )


def poll_targets(indices: Mapping[str, kopf.Index[Key, Any]]) -> dict[Key, dict[str, str]]:
    """Running pods with an IP, per server: whom the poller asks for /status."""
    targets: dict[Key, dict[str, str]] = {}
    for key in list(indices["servers_idx"]):
        pods = {}
        for pod in _values(indices["pods_idx"], key):
            status = pod.get("status") or {}
            if status.get("phase") == "Running" and status.get("podIP"):
                pods[str(pod["metadata"]["name"])] = str(status["podIP"])
        if pods:
            targets[key] = pods
    return targets


def _indices(kwargs: Mapping[str, Any]) -> dict[str, kopf.Index[Key, Any]]:
    names = ("servers_idx", *(index_id for *_, index_id in CHILD_KINDS))
    return {n: kwargs[n] for n in names}


def read_state(
    key: Key,
    indices: Mapping[str, kopf.Index[Key, Any]],
    poller: StatusPoller | None = None,
) -> State | None:
    """The server and its children as the caches hold them *now* (None: gone or going).

    kopf's indices are live views, so calling this later reads newer state.
    """
    body = _one(indices["servers_idx"], key)
    if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
        return None
    return body, view_of(key, indices, poller)


async def _reconcile_key(
    memo: kopf.Memo, key: Key, indices: dict[str, kopf.Index[Key, Any]]
) -> None:
    """Reconcile ``key``; the reconciler reads the caches once it holds the server's lock."""
    reconciler: Reconciler = memo["reconciler"]
    await reconciler.reconcile(key, lambda: read_state(key, indices, memo.get("poller")))


#: Where a pod's ServiceAccount token volume names the pod's namespace.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def own_namespace(
    env: Mapping[str, str] = os.environ, sa_file: Path = SERVICE_ACCOUNT_NAMESPACE
) -> str | None:
    """The operator's namespace: ``POD_NAMESPACE`` (the chart and manifests set it from the
    downward API), else the ServiceAccount volume's, else None (run outside a cluster).

    The NetworkPolicies admit this namespace to the admin port, where the status poller
    reads /status.
    """
    configured = env.get("POD_NAMESPACE", "").strip()
    if configured:
        return configured
    try:
        return sa_file.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In-cluster ServiceAccount credentials, else the kubeconfig (a dedicated registry
    has none of kopf's default login handlers)."""
    return default_login(kwargs["settings"])()


@kopf.on.startup(registry=REGISTRY)
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    """Quiet kopf's own writes, connect, and start the resync loop."""
    settings.posting.level = logging.WARNING  # our Events are posted by reconcile
    settings.scanning.disabled = True  # no cluster-wide CRD/namespace listing: less RBAC
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.worker_limit = 64
    image = os.environ.get("OLLAMA_OPERATOR_IMAGE") or BuildContext().operator_image
    namespace = own_namespace()
    if namespace is None:
        log.warning(
            "POD_NAMESPACE is unset and there is no ServiceAccount namespace file: the "
            "NetworkPolicies admit no operator to the sidecars' admin port"
        )
    ctx = BuildContext(operator_image=image, operator_namespace=namespace)
    reconciler = Reconciler(await Kube.connect(settings), ctx)
    memo["reconciler"] = reconciler
    indices = _indices(kwargs)

    async def on_report(key: Key) -> None:
        await _reconcile_key(memo, key, indices)

    poller = StatusPoller(on_report, reconciler.token_for)
    reconciler.on_config_applied = poller.poke
    memo["poller"] = poller
    # Supervised: a loop that dies is logged and restarted with backoff, never lost.
    memo["resync"] = asyncio.create_task(
        supervise("resync", lambda: _resync_forever(memo, indices))
    )
    memo["poll"] = asyncio.create_task(
        supervise("status poller", lambda: poller.run(lambda: poll_targets(indices)))
    )


@kopf.on.cleanup(registry=REGISTRY)
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for name in ("resync", "poll"):
        task = memo.get(name)
        if isinstance(task, asyncio.Task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    reconciler = memo.get("reconciler")
    if isinstance(reconciler, Reconciler):
        await reconciler.kube.close()


async def _resync_forever(memo: kopf.Memo, indices: dict[str, kopf.Index[Key, Any]]) -> None:
    """Reconcile every server every RESYNC_SECONDS; one failure never ends the loop."""
    while True:
        await asyncio.sleep(RESYNC_SECONDS)
        try:
            keys: Iterable[Key] = list(indices["servers_idx"])
            metrics.SERVERS.set(len(indices["servers_idx"]))
        except Exception:
            log.exception("resync pass failed")
            continue
        for key in keys:
            try:
                await _reconcile_key(memo, key, indices)
            except Exception:
                log.exception("resync of %s/%s failed", *key)


@kopf.on.event(API_GROUP, API_VERSION, PLURAL, registry=REGISTRY)
async def server_event(
    type: str, namespace: str | None, name: str, memo: Any, **kwargs: Any
) -> None:
    """Any change to a server (spec, or our own status write) → reconcile it."""
    if namespace is None:
        return
    if type == "DELETED":
        memo["reconciler"].forget(namespace, name)
        if memo.get("poller") is not None:
            memo["poller"].forget((namespace, name))
        return
    await _reconcile_key(memo, (namespace, name), _indices(kwargs))

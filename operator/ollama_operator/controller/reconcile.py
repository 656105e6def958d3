"""One level-based reconcile of an OllamaServer (I/O around pure functions).

Given the object and what the watch caches hold about its children, it
(1) makes sure the internal token Secret exists, created once and never
rotated here; (2) builds every child with :mod:`.builders` and server-side
applies only those whose managed fields differ from the live object
(:mod:`.diff`), so drift is repaired and a steady cluster causes no writes;
(3) deletes children that should no longer exist (the PDB below 2 replicas);
(4) computes the status (:mod:`.status`) and patches it only when it changed.
It does not care what triggered it, so any event, a restart or the periodic
resync converge to the same result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ..api.sidecar_config import TOKEN_KEY
from ..api.spec import API_GROUP, API_VERSION, KIND, OllamaServerSpec
from ..api.validation import describe
from . import metrics
from .builders import BuildContext, build_children, build_internal_secret
from .diff import needs_apply
from .kube import ApiError, Kube
from .models import transitions
from .naming import Owner
from .status import Observed, compute_status, status_changed

log = logging.getLogger(__name__)

#: How long a verified internal Secret is trusted before it is looked up again.
SECRET_RECHECK_SECONDS = 600.0


def now_rfc3339() -> str:
    """Current time as metav1.Time (second precision, UTC)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ClusterView:
    """The live children of one OllamaServer, as the watch caches hold them."""

    statefulset: Mapping[str, Any] | None = None
    services: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    configmap: Mapping[str, Any] | None = None
    pdb: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    #: pod name → the pod's sidecar /status report (empty: none answered yet).
    reports: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def live(self, kind: str, name: str) -> Mapping[str, Any] | None:
        """The live child of that kind and name, if cached."""
        if kind == "StatefulSet":
            return self.statefulset
        if kind == "ConfigMap":
            return self.configmap
        if kind == "PodDisruptionBudget":
            return self.pdb
        if kind == "Service":
            return self.services.get(name)
        return None


def _version(obj: Mapping[str, Any] | None) -> str | None:
    return None if obj is None else str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _owned_name(child: str, server: str) -> bool:
    return child == server or child.startswith(f"{server}-")


def _decode_token(secret: Mapping[str, Any]) -> str:
    raw = (secret.get("data") or {}).get(TOKEN_KEY, "")
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def owner_of(body: Mapping[str, Any]) -> Owner:
    meta = body.get("metadata") or {}
    return Owner(
        name=str(meta["name"]),
        namespace=str(meta["namespace"]),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
    )


def involved(owner: Owner) -> dict[str, Any]:
    """An ObjectReference to the OllamaServer, for Events."""
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": owner.name,
        "namespace": owner.namespace,
        "uid": owner.uid,
    }


class Reconciler:
    """Holds what outlives one reconcile: the client, locks, which Secrets are known."""

    def __init__(self, kube: Kube, ctx: BuildContext | None = None) -> None:
        self.kube = kube
        self.ctx = ctx or BuildContext()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: set[tuple[str, str]] = set()
        self._secret_seen: dict[tuple[str, str, str], float] = {}
        self._last_error: dict[tuple[str, str], str] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        #: Per server: (resourceVersion the last status write was computed from, the status
        #: written). The watch cache lags our own writes; a reconcile that still sees the
        #: old version must compare against what was written, or it writes (and posts
        #: Events) twice.
        self._written: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}
        #: Per child (kind, namespace, name): (resourceVersion the cache showed when we
        #: applied, the manifest applied). The same lag as for the status: until the cache
        #: shows a newer version, re-applying the same manifest would only repeat a write.
        self._applied: dict[tuple[str, str, str], tuple[str | None, dict[str, Any]]] = {}
        #: Called with (namespace, name) after the sidecar config changed (the poller's poke).
        self.on_config_applied: Callable[[tuple[str, str]], None] | None = None

    def token_for(self, key: tuple[str, str]) -> str | None:
        """The internal token of a server, once its Secret was seen or created."""
        return self._tokens.get(key)

    def forget(self, namespace: str, name: str) -> None:
        """Drop per-object state once the OllamaServer is gone."""
        self._locks.pop((namespace, name), None)
        self._last_error.pop((namespace, name), None)
        self._tokens.pop((namespace, name), None)
        self._written.pop((namespace, name), None)
        for key in [k for k in self._applied if k[1] == namespace and _owned_name(k[2], name)]:
            del self._applied[key]
        with contextlib.suppress(KeyError):
            metrics.SERVER_READY.remove(namespace, name)
        for key in [k for k in self._secret_seen if k[:2] == (namespace, name)]:
            del self._secret_seen[key]

    async def reconcile(self, body: Mapping[str, Any], view: ClusterView) -> None:
        """Serialised per object; a reconcile that would only queue behind another is dropped,
        because the one already waiting will read the newest cached state anyway."""
        owner = owner_of(body)
        key = (owner.namespace, owner.name)
        if key in self._waiting:
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting.add(key)
        try:
            async with lock:
                self._waiting.discard(key)
                started = time.perf_counter()
                try:
                    await self._reconcile(owner, body, view)
                    metrics.RECONCILES.labels("ok").inc()
                except ApiError as exc:
                    metrics.RECONCILES.labels("error").inc()
                    log.warning("reconcile of %s/%s failed: %s", *key, exc)
                finally:
                    metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        finally:
            self._waiting.discard(key)

    def _last_status(
        self, owner: Owner, body: Mapping[str, Any], version: str
    ) -> Mapping[str, Any]:
        """The status to compare against: the cached one, unless our own newer write is not
        in the cache yet."""
        written = self._written.get((owner.namespace, owner.name))
        if written is not None and written[0] == version:
            return written[1]
        return body.get("status") or {}

    async def _reconcile(self, owner: Owner, body: Mapping[str, Any], view: ClusterView) -> None:
        version = _version(body) or ""
        old_status = self._last_status(owner, body, version)
        try:
            spec = OllamaServerSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            # The CRD schema refuses nearly everything first; whatever slips through
            # (e.g. an object stored before a schema change) is reported, never crashes.
            await self._write_invalid(owner, old_status, exc)
            return
        await self._ensure_secret(owner)
        apply_error = await self._apply_children(owner, spec, view)
        status = compute_status(
            owner,
            spec,
            Observed(view.statefulset, view.pods, apply_error, view.reports),
            old_status,
            now=now_rfc3339(),
        )
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
        metrics.SERVER_READY.labels(owner.namespace, owner.name).set(1 if ready else 0)
        if status_changed(status, old_status):
            await self.kube.patch_status(owner.namespace, owner.name, status)
            self._written[(owner.namespace, owner.name)] = (version, {**old_status, **status})
            metrics.STATUS_WRITES.inc()
            # Derived from the stored status, so a restart never repeats an Event.
            for event in transitions(old_status.get("models") or [], status.get("models") or []):
                await self.kube.event(
                    involved(owner), type_=event.type, reason=event.reason, message=event.message
                )

    async def _ensure_secret(self, owner: Owner) -> None:
        key = (owner.namespace, owner.name, owner.uid)
        seen = self._secret_seen.get(key)
        if seen is not None and time.monotonic() - seen < SECRET_RECHECK_SECONDS:
            return
        existing = await self.kube.get("v1", "Secret", owner.namespace, owner.internal_secret)
        if existing is None:
            token = secrets.token_urlsafe(32)
            try:
                await self.kube.create(build_internal_secret(owner, token))
                metrics.APPLIES.labels("Secret").inc()
            except ApiError as exc:
                if exc.status != 409:
                    raise
                # Created meanwhile (another reconcile, a restart): read the winner's token.
                existing = await self.kube.get(
                    "v1", "Secret", owner.namespace, owner.internal_secret
                )
        if existing is not None:
            token = _decode_token(existing)
        self._tokens[(owner.namespace, owner.name)] = token
        self._secret_seen[key] = time.monotonic()

    async def _apply_children(
        self, owner: Owner, spec: OllamaServerSpec, view: ClusterView
    ) -> str | None:
        errors: list[str] = []
        for child in build_children(owner, spec, self.ctx):
            kind, name = child["kind"], child["metadata"]["name"]
            live = view.live(kind, name)
            memo_key = (kind, owner.namespace, name)
            if not needs_apply(child, dict(live) if live is not None else None):
                self._applied.pop(memo_key, None)  # the cache shows our apply: forget it
                continue
            seen = _version(live)
            if self._applied.get(memo_key) == (seen, child):
                continue  # applied already; the cache has not caught up yet
            try:
                await self.kube.apply(child)
                self._applied[memo_key] = (seen, child)
                metrics.APPLIES.labels(kind).inc()
                log.info("applied %s %s/%s", kind, owner.namespace, name)
                if kind == "ConfigMap" and self.on_config_applied is not None:
                    self.on_config_applied((owner.namespace, owner.name))
            except ApiError as exc:
                errors.append(f"applying {kind} {name}: {exc.message}")
        if spec.replicas <= 1 and view.pdb is not None:
            await self.kube.delete("policy/v1", "PodDisruptionBudget", owner.namespace, owner.pdb)
            metrics.DELETES.labels("PodDisruptionBudget").inc()
        message = "; ".join(errors) or None
        await self._report_error(owner, message)
        return message

    async def _report_error(self, owner: Owner, message: str | None) -> None:
        """One Warning Event per distinct error, not one per reconcile."""
        key = (owner.namespace, owner.name)
        if message is None:
            self._last_error.pop(key, None)
            return
        if self._last_error.get(key) == message:
            return
        self._last_error[key] = message
        await self.kube.event(
            involved(owner), type_="Warning", reason="ApplyFailed", message=message
        )

    async def _write_invalid(
        self, owner: Owner, old_status: Mapping[str, Any], exc: ValidationError
    ) -> None:
        message = "; ".join(describe(exc))[:2048]
        now = now_rfc3339()
        old = {c.get("type"): c for c in old_status.get("conditions") or []}
        conditions = []
        for type_, state in (("Ready", "False"), ("Degraded", "True")):
            prior = old.get(type_) or {}
            stamp = prior.get("lastTransitionTime", now) if prior.get("status") == state else now
            conditions.append(
                {
                    "type": type_,
                    "status": state,
                    "reason": "InvalidSpec",
                    "message": message,
                    "lastTransitionTime": stamp,
                    "observedGeneration": owner.generation,
                }
            )
        status: dict[str, Any] = {
            "observedGeneration": owner.generation,
            "conditions": conditions,
        }
        if status_changed(status, old_status):
            await self.kube.patch_status(owner.namespace, owner.name, status)
            metrics.STATUS_WRITES.inc()

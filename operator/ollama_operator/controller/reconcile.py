"""One level-based reconcile of an OllamaServer (I/O around pure functions).

Given the object and what the watch caches hold about its children, it
(1) makes sure the internal token Secret and (auth being on by default) the
generated API key Secret exist, each created once and never rotated here;
(2) builds every child with :mod:`.builders` and server-side applies only
those whose desired manifest changed or whose managed fields drifted
(:mod:`.diff`), so edits (removals too) reach the children, drift is repaired
and a steady cluster causes no writes; (3) deletes children that should no
longer exist (the PDB below 2 replicas, the NetworkPolicy once disabled);
(4) computes the status (:mod:`.status`) and patches it only when it changed;
(5) posts the Events it decided on, after releasing the server's lock.
It does not care what triggered it, so any event, a restart or the periodic
resync converge to the same result; it reads its inputs only once it holds
the server's lock, so the newest spec always wins.
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

from ..api.report import PodReport
from ..api.sidecar_config import TOKEN_KEY
from ..api.spec import API_GROUP, API_VERSION, GENERATED_KEYS_KEY, KIND, OllamaServerSpec
from ..api.status import ConditionStatus, OllamaServerStatus, condition, stamp
from ..api.validation import describe
from . import metrics
from .builders import (
    BuildContext,
    build_api_keys_secret,
    build_children,
    build_internal_secret,
)
from .diff import needs_apply, stamped
from .kube import ApiError, Kube
from .models import Event, transitions
from .naming import Owner
from .status import Observed, compute_status, status_changed

log = logging.getLogger(__name__)

#: Posted when a generation of a server turns the gateway's auth off.
AUTH_DISABLED = Event(
    "Warning",
    "AuthDisabled",
    "gateway.auth.mode is Disabled: anyone who can reach the Service can use this Ollama",
)

#: How long a verified internal Secret is trusted before it is looked up again.
SECRET_RECHECK_SECONDS = 600.0

Key = tuple[str, str]


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
    networkpolicy: Mapping[str, Any] | None = None
    pods: Sequence[Mapping[str, Any]] = ()
    #: pod name → the pod's sidecar /status report (empty: none answered yet).
    reports: Mapping[str, PodReport] = field(default_factory=dict)

    def live(self, kind: str, name: str) -> Mapping[str, Any] | None:
        """The live child of that kind and name, if cached."""
        if kind == "StatefulSet":
            return self.statefulset
        if kind == "ConfigMap":
            return self.configmap
        if kind == "PodDisruptionBudget":
            return self.pdb
        if kind == "NetworkPolicy":
            return self.networkpolicy
        if kind == "Service":
            return self.services.get(name)
        return None


def _version(obj: Mapping[str, Any] | None) -> str | None:
    return None if obj is None else str((obj.get("metadata") or {}).get("resourceVersion", ""))


def _decode(secret: Mapping[str, Any], key: str) -> str:
    raw = (secret.get("data") or {}).get(key, "")
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _seen_key(owner: Owner, secret: str) -> tuple[str, str, str, str]:
    """Which Secret of which incarnation of a server (a recreated one has a new uid)."""
    return (owner.namespace, owner.name, owner.uid, secret)


def new_token() -> str:
    """A fresh internal token (what the controller shows the sidecars' /status)."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    """A fresh API key for a server whose spec names no keys (256 bits, recognisable)."""
    return f"oo_{secrets.token_urlsafe(32)}"


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


#: What a reconcile reads: the server as cached and its cached children, or None when
#: there is nothing to reconcile (the server is gone or being deleted).
State = tuple[Mapping[str, Any], ClusterView]
Read = Callable[[], State | None]


class Reconciler:
    """Holds what outlives one reconcile: the client, locks, which Secrets are known."""

    def __init__(self, kube: Kube, ctx: BuildContext | None = None) -> None:
        self.kube = kube
        self.ctx = ctx or BuildContext()
        self._locks: dict[Key, asyncio.Lock] = {}
        #: Servers with a reconcile queued on their lock (it reads the state once it runs).
        self._waiting: set[Key] = set()
        self._secret_seen: dict[tuple[str, str, str, str], float] = {}
        self._last_error: dict[Key, str] = {}
        self._tokens: dict[Key, str] = {}
        #: Per server: (resourceVersion the last status write was computed from, the status
        #: written). The watch cache lags our own writes; a reconcile that still sees the
        #: old version must compare against what was written, or it writes (and posts
        #: Events) twice.
        self._written: dict[Key, tuple[str, dict[str, Any]]] = {}
        #: Per server, per child (kind, name): (resourceVersion the cache showed when we
        #: applied, the manifest applied). The same lag as for the status: until the cache
        #: shows a newer version, re-applying the same manifest would only repeat a write.
        self._applied: dict[Key, dict[tuple[str, str], tuple[str | None, dict[str, Any]]]] = {}
        #: Called with (namespace, name) after the sidecar config changed (the poller's poke).
        self.on_config_applied: Callable[[tuple[str, str]], None] | None = None

    def token_for(self, key: tuple[str, str]) -> str | None:
        """The internal token of a server, once its Secret was seen or created."""
        return self._tokens.get(key)

    def forget(self, namespace: str, name: str) -> None:
        """Drop per-object state once the OllamaServer is gone.

        Everything is keyed by the server itself, never matched by child names: ``a`` and
        ``a-b`` are two servers, and ``a-b-config`` is no child of ``a``.
        """
        key = (namespace, name)
        self._locks.pop(key, None)
        self._last_error.pop(key, None)
        self._tokens.pop(key, None)
        self._written.pop(key, None)
        self._applied.pop(key, None)
        with contextlib.suppress(KeyError):
            metrics.SERVER_READY.remove(namespace, name)
        for seen in [k for k in self._secret_seen if k[:2] == key]:
            del self._secret_seen[seen]

    async def reconcile(self, key: Key, read: Read) -> None:
        """Reconcile one server; serialised per server, coalesced, never stale.

        ``read`` is called only once this call holds the server's lock, so a reconcile
        that waited behind another sees the newest cached spec, not the one current
        when it was triggered. While one call waits for the lock, further calls return
        at once: the waiting one has not read yet, so it will see whatever they were
        triggered by (coalesced, not dropped). Events are posted after the lock is
        released: a slow Event POST never holds back the next reconcile.
        """
        if key in self._waiting:
            return
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting.add(key)
        events: list[Event] = []
        owner: Owner | None = None
        try:
            async with lock:
                # No await between leaving the waiting set and reading: a trigger that
                # arrives from here on queues a reconcile of its own.
                self._waiting.discard(key)
                state = read()
                if state is None:
                    return
                body, view = state
                owner = owner_of(body)
                started = time.perf_counter()
                try:
                    await self._reconcile(owner, body, view, events)
                    metrics.RECONCILES.labels("ok").inc()
                except ApiError as exc:
                    metrics.RECONCILES.labels("error").inc()
                    log.warning("reconcile of %s/%s failed: %s", *key, exc)
                except ValidationError as exc:
                    # A status the typed model refuses is our bug, not the user's: say so
                    # and write nothing (the API server would refuse or prune it).
                    metrics.RECONCILES.labels("error").inc()
                    problem = "; ".join(describe(exc, prefix="status"))[:1000]
                    log.error("reconcile of %s/%s computed an invalid status: %s", *key, problem)
                finally:
                    metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        finally:
            self._waiting.discard(key)
        if owner is not None:
            for event in events:
                await self.kube.event(
                    involved(owner), type_=event.type, reason=event.reason, message=event.message
                )

    def _last_status(
        self, owner: Owner, body: Mapping[str, Any], version: str
    ) -> Mapping[str, Any]:
        """The status to compare against: the cached one, unless our own newer write is not
        in the cache yet."""
        written = self._written.get((owner.namespace, owner.name))
        if written is not None and written[0] == version:
            return written[1]
        return body.get("status") or {}

    async def _reconcile(
        self, owner: Owner, body: Mapping[str, Any], view: ClusterView, events: list[Event]
    ) -> None:
        version = _version(body) or ""
        old_status = self._last_status(owner, body, version)
        try:
            spec = OllamaServerSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            # The CRD schema refuses nearly everything first; whatever slips through
            # (e.g. an object stored before a schema change) is reported, never crashes.
            await self._write_status(
                owner, version, old_status, invalid_status(owner, exc, old_status, now_rfc3339())
            )
            return
        secret_error = await self._ensure_secrets(owner, spec)
        apply_error = await self._apply_children(owner, spec, view, events, secret_error)
        status = compute_status(
            owner,
            spec,
            Observed(view.statefulset, view.pods, apply_error, view.reports),
            old_status,
            now=now_rfc3339(),
        )
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in status["conditions"])
        metrics.SERVER_READY.labels(owner.namespace, owner.name).set(1 if ready else 0)
        if await self._write_status(owner, version, old_status, status):
            # Derived from the stored status, so a restart never repeats an Event.
            events.extend(transitions(old_status.get("models") or [], status.get("models") or []))
            if spec.gateway.auth.mode == "Disabled" and old_status.get(
                "observedGeneration"
            ) != status.get("observedGeneration"):
                events.append(AUTH_DISABLED)  # once per generation that keeps auth off

    async def _write_status(
        self, owner: Owner, version: str, old_status: Mapping[str, Any], status: dict[str, Any]
    ) -> bool:
        """Merge-patch ``status`` when it changes anything; remember what the object holds
        then (the old status merged with the patch), keyed by the version it was computed
        from, until the watch cache catches up. True when it wrote."""
        if not status_changed(status, old_status):
            return False
        await self.kube.patch_status(owner.namespace, owner.name, status)
        self._written[(owner.namespace, owner.name)] = (version, {**old_status, **status})
        metrics.STATUS_WRITES.inc()
        return True

    async def _ensure_secrets(self, owner: Owner, spec: OllamaServerSpec) -> str | None:
        """The internal token Secret and, when auth uses it, the generated API key Secret:
        each created once, never rotated. A problem the user must fix, as a message."""
        token_secret = await self._ensure_secret(
            owner, owner.internal_secret, lambda: build_internal_secret(owner, new_token())
        )
        if token_secret is not None:
            self._tokens[(owner.namespace, owner.name)] = _decode(token_secret, TOKEN_KEY)
        if not spec.gateway.auth.generated:
            # Auth off, or the user's own Secret (even one named <name>-api-keys, which
            # may simply not be applied yet): nothing to generate.
            return None
        keys_secret = await self._ensure_secret(
            owner, owner.api_keys_secret, lambda: build_api_keys_secret(owner, new_api_key())
        )
        if keys_secret is not None and GENERATED_KEYS_KEY not in (keys_secret.get("data") or {}):
            # Not ours to rewrite (never rotated, maybe a user's): say what blocks the pods.
            self._secret_seen.pop(_seen_key(owner, owner.api_keys_secret), None)
            return (
                f"Secret {owner.api_keys_secret} has no key {GENERATED_KEYS_KEY!r}: add the API"
                " keys there, one per line, or delete the Secret to have a new key generated"
            )
        return None

    async def _ensure_secret(
        self, owner: Owner, name: str, build: Callable[[], dict[str, Any]]
    ) -> Mapping[str, Any] | None:
        """The Secret ``name``, created from ``build()`` when absent; never rewritten.

        None when it was verified less than :data:`SECRET_RECHECK_SECONDS` ago (no
        lookup then). A create that loses a race reads the winner's Secret."""
        seen_key = _seen_key(owner, name)
        seen = self._secret_seen.get(seen_key)
        if seen is not None and time.monotonic() - seen < SECRET_RECHECK_SECONDS:
            return None
        existing = await self.kube.get("v1", "Secret", owner.namespace, name)
        if existing is None:
            created = build()
            try:
                await self.kube.create(created)
                metrics.APPLIES.labels("Secret").inc()
                log.info("created Secret %s/%s", owner.namespace, name)
                existing = created
            except ApiError as exc:
                if exc.status != 409:
                    raise
                existing = await self.kube.get("v1", "Secret", owner.namespace, name)
        if existing is None:
            return None
        self._secret_seen[seen_key] = time.monotonic()
        return existing

    async def _apply_children(
        self,
        owner: Owner,
        spec: OllamaServerSpec,
        view: ClusterView,
        events: list[Event],
        secret_error: str | None = None,
    ) -> str | None:
        errors: list[str] = [secret_error] if secret_error else []
        applied = self._applied.setdefault((owner.namespace, owner.name), {})
        for child in map(stamped, build_children(owner, spec, self.ctx)):
            kind, name = child["kind"], child["metadata"]["name"]
            live = view.live(kind, name)
            memo_key = (kind, name)
            if not needs_apply(child, dict(live) if live is not None else None):
                applied.pop(memo_key, None)  # the cache shows our apply: forget it
                continue
            seen = _version(live)
            if applied.get(memo_key) == (seen, child):
                continue  # applied already; the cache has not caught up yet
            try:
                await self.kube.apply(child)
                applied[memo_key] = (seen, child)
                metrics.APPLIES.labels(kind).inc()
                log.info("applied %s %s/%s", kind, owner.namespace, name)
                if kind == "ConfigMap" and self.on_config_applied is not None:
                    self.on_config_applied((owner.namespace, owner.name))
            except ApiError as exc:
                errors.append(f"applying {kind} {name}: {exc.message}")
        if spec.replicas <= 1 and view.pdb is not None:
            await self.kube.delete("policy/v1", "PodDisruptionBudget", owner.namespace, owner.pdb)
            metrics.DELETES.labels("PodDisruptionBudget").inc()
        if not spec.network_policy.enabled and view.networkpolicy is not None:
            await self.kube.delete(
                "networking.k8s.io/v1", "NetworkPolicy", owner.namespace, owner.network_policy
            )
            metrics.DELETES.labels("NetworkPolicy").inc()
        message = "; ".join(errors) or None
        event = self._error_event(owner, message)
        if event is not None:
            events.append(event)
        return message

    def _error_event(self, owner: Owner, message: str | None) -> Event | None:
        """One Warning Event per distinct error, not one per reconcile."""
        key = (owner.namespace, owner.name)
        if message is None:
            self._last_error.pop(key, None)
            return None
        if self._last_error.get(key) == message:
            return None
        self._last_error[key] = message
        return Event("Warning", "ApplyFailed", message)


_INVALID_SPEC_STATES: tuple[tuple[str, ConditionStatus], ...] = (
    ("Ready", "False"),
    ("Degraded", "True"),
)


def invalid_status(
    owner: Owner, exc: ValidationError, old_status: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """The status of a server whose stored spec the controller cannot read: Ready False,
    Degraded True, both ``InvalidSpec`` with a message naming the field. A condition
    keeps its ``lastTransitionTime`` unless its status flips."""
    message = "; ".join(describe(exc))[:2048]
    old = {c.get("type"): c for c in old_status.get("conditions") or []}
    conditions = [
        stamp(
            condition(type_, state, "InvalidSpec", message),
            old.get(type_),
            now=now,
            generation=owner.generation,
        )
        for type_, state in _INVALID_SPEC_STATES
    ]
    return OllamaServerStatus.model_validate(
        {"observedGeneration": owner.generation, "conditions": conditions}
    ).to_json()

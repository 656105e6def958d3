"""The controller's only door to the API server (I/O, kept thin).

A handful of verbs over one aiohttp session: server-side apply of a manifest,
create, get, delete, a merge patch of the status subresource, and Events.
Resource paths come from one small table so the RBAC in ``manifests/`` can
list exactly these kinds and verbs. Every write uses the field manager
``ollama-operator``. A request the API server sheds under load (API priority
and fairness answers 429, or 503, with ``Retry-After``) is retried after the
delay it asks for, a few times and never longer than a cap, as client-go does.

Why not a generated client library: these six verbs on plain dicts are all the
controller needs, and kopf already resolves the credentials (ServiceAccount or
kubeconfig) into a :class:`kopf.ConnectionInfo` that yields the TLS context and
the ``Authorization`` header. kubernetes_asyncio costs about 38 MiB of resident
memory just to import (thousands of generated model classes), and kopf imports
it too whenever it is installed; without it the operator stays within its
memory budget (docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp
import kopf

from ..api.spec import API_GROUP, API_VERSION, PLURAL
from .naming import MANAGER

log = logging.getLogger(__name__)

#: (apiVersion, kind) → plural, for every kind the controller writes.
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "Event"): "events",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudgets",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicies",
    (f"{API_GROUP}/{API_VERSION}", "OllamaServer"): PLURAL,
}

#: Seconds one API request may take, connection included.
REQUEST_TIMEOUT = 30.0
#: Retries of one request the API server asked us to repeat later (429/503 + Retry-After).
MAX_THROTTLE_RETRIES = 3
#: The longest Retry-After honoured, in seconds (a longer one is waited this long).
MAX_RETRY_AFTER = 10.0
#: Statuses whose Retry-After we honour: too many requests, and service unavailable.
RETRY_AFTER_STATUSES = frozenset({429, 503})

Login = Callable[[], kopf.ConnectionInfo | None]


class ApiError(Exception):
    """An API request failed; ``status`` is the HTTP status (0 when none came back)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def resource_path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    """``/api/v1/namespaces/ns/configmaps/name`` and friends."""
    plural = PLURALS[(api_version, kind)]
    prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{path}/{name}" if name else path


def error_message(status: int, reason: str, text: str) -> str:
    """The ``message`` of a metav1.Status body, else the HTTP reason."""
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return reason or f"HTTP {status}"


def retry_after(status: int, header: str | None) -> float | None:
    """Seconds to wait before repeating a request, or None when it is not to be repeated.

    Only 429 and 503 with a ``Retry-After`` in seconds count (an HTTP-date is not used by
    kube-apiserver); the wait is capped at :data:`MAX_RETRY_AFTER`.
    """
    if status not in RETRY_AFTER_STATUSES or header is None:
        return None
    try:
        seconds = float(header.strip())
    except ValueError:
        return None
    if seconds != seconds:  # NaN
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


def default_login(settings: kopf.OperatorSettings) -> Login:
    """The operator's credentials: in-cluster ServiceAccount, else the kubeconfig.

    Called again after a 401: a projected ServiceAccount token is rotated on disk.
    """

    def login() -> kopf.ConnectionInfo | None:
        in_cluster = kopf.login_with_service_account(settings=settings)
        if in_cluster is not None:
            return dataclasses.replace(in_cluster, server=in_cluster_server(in_cluster.server))
        return kopf.login_with_kubeconfig(settings=settings)

    return login


def in_cluster_server(default: str, env: Mapping[str, str] = os.environ) -> str:
    """The API server's address inside a pod, as client-go's InClusterConfig finds it.

    kopf's ServiceAccount login names ``https://kubernetes.default.svc``, which needs the
    cluster's DNS: an operator started before CoreDNS is ready, or on a cluster without
    it, could not reach the API at all. The kubelet puts the ``kubernetes`` Service's
    address in every pod's environment; the API server's certificate covers it.
    """
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        return default
    if ":" in host:  # IPv6
        host = f"[{host}]"
    return f"https://{host}:{port}"


class Kube:
    """Thin async client; one per operator process."""

    def __init__(
        self,
        login: Login,
        *,
        timeout: float = REQUEST_TIMEOUT,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._login = login
        self._sleep = sleep
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._info: kopf.ConnectionInfo | None = None
        self._auth: dict[str, str] = {}
        self._relogin = asyncio.Lock()

    @classmethod
    async def connect(cls, settings: kopf.OperatorSettings) -> Kube:
        """A client with the operator's own credentials (see :func:`default_login`)."""
        kube = cls(default_login(settings))
        kube._connection()
        return kube

    def _log_in(self) -> kopf.ConnectionInfo:
        info = self._login()
        if info is None:
            raise ApiError(0, "no credentials: neither a ServiceAccount token nor a kubeconfig")
        self._info, self._auth = info, info.as_http_headers()
        return info

    def _connection(self) -> tuple[aiohttp.ClientSession, kopf.ConnectionInfo]:
        """The session (TLS set up once, at the first login) and the current credentials."""
        info = self._info or self._log_in()
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"Accept": "application/json"},
                connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()),
                timeout=self._timeout,
                trust_env=info.trust_env,
            )
        return self._session, info

    async def _refresh(self, rejected: kopf.ConnectionInfo) -> None:
        """Log in again after a 401, once for all the requests that got it together."""
        async with self._relogin:
            if self._info is rejected:
                self._log_in()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """One API request; the decoded JSON object, or :class:`ApiError`.

        A 401 logs in again once (a projected token is rotated on disk) and retries;
        the session, and requests in flight on it, are left alone. A 429/503 with
        ``Retry-After`` is repeated after that delay, at most MAX_THROTTLE_RETRIES times.
        """
        data = None if body is None else json.dumps(body, separators=(",", ":"))
        logged_in_again = False
        throttled = 0
        while True:
            status, reason, text, used, wait = await self._send(
                method, path, data, query, content_type
            )
            if status == 401 and not logged_in_again:
                logged_in_again = True
                await self._refresh(used)
                continue
            if wait is not None and throttled < MAX_THROTTLE_RETRIES:
                throttled += 1
                log.info("%s %s: HTTP %d, retrying in %.1fs", method, path, status, wait)
                await self._sleep(wait)
                continue
            break
        if status >= 400:
            raise ApiError(status, error_message(status, reason, text))
        try:
            result = json.loads(text) if text else {}
        except ValueError:
            raise ApiError(status, f"{method} {path}: the answer is not JSON") from None
        return result if isinstance(result, dict) else {}

    async def _send(
        self,
        method: str,
        path: str,
        data: str | None,
        query: list[tuple[str, str]] | None,
        content_type: str,
    ) -> tuple[int, str, str, kopf.ConnectionInfo, float | None]:
        """One HTTP exchange: status, reason, body, the credentials used, and how long
        the server asked us to wait before repeating it (None: do not repeat)."""
        session, info = self._connection()
        try:
            async with session.request(
                method,
                info.server.rstrip("/") + path,
                params=query or [],
                data=data,
                headers={"Content-Type": content_type, **self._auth},
                proxy=info.proxy_url,
            ) as resp:
                wait = retry_after(resp.status, resp.headers.get("Retry-After"))
                return resp.status, resp.reason or "", await resp.text(), info, wait
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(0, f"{method} {path}: {str(exc) or type(exc).__name__}") from None

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (force: the operator owns these fields)."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        return await self.request(
            "PATCH",
            path,
            body=manifest,
            query=[("fieldManager", MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
        return await self.request("POST", path, body=manifest, query=[("fieldManager", MANAGER)])

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self.request("GET", resource_path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (background propagation); False when it was already gone."""
        try:
            await self.request(
                "DELETE",
                resource_path(api_version, kind, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Merge-patch the OllamaServer's status subresource; returns the updated object."""
        path = resource_path(f"{API_GROUP}/{API_VERSION}", "OllamaServer", namespace, name)
        return await self.request(
            "PATCH",
            f"{path}/status",
            body={"status": status},
            query=[("fieldManager", MANAGER)],
            content_type="application/merge-patch+json",
        )

    async def event(
        self, involved: dict[str, Any], *, type_: str, reason: str, message: str
    ) -> None:
        """Post a core/v1 Event about ``involved`` (an object reference). Never raises."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "generateName": f"{involved['name']}.",
                "namespace": involved["namespace"],
            },
            "involvedObject": involved,
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": MANAGER},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": MANAGER,
            "reportingInstance": MANAGER,
        }
        try:
            await self.create(body)
        except ApiError as exc:
            log.warning("could not post event %s: %s", reason, exc)

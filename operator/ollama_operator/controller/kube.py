"""The controller's only door to the API server (I/O, kept thin).

A handful of verbs over kubernetes_asyncio's generic ``call_api``: server-side
apply of a manifest, create, get, delete, a merge patch of the status
subresource, and Events. Resource paths come from one small table so the
RBAC in ``manifests/`` can list exactly these kinds and verbs. Every write
uses the field manager ``ollama-operator``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from kubernetes_asyncio import client, config

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
    (f"{API_GROUP}/{API_VERSION}", "OllamaServer"): PLURAL,
}

_JSON = {200: "object", 201: "object"}


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


def _message(exc: client.ApiException) -> str:
    try:
        body = json.loads(exc.body or "{}")
        return str(body.get("message") or exc.reason)
    except (ValueError, AttributeError):
        return str(exc.reason)


class Kube:
    """Thin async client; one per operator process."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    @classmethod
    async def connect(cls) -> Kube:
        """In-cluster credentials when running in a pod, else the kubeconfig."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            await config.load_kube_config()
        return cls(client.ApiClient())

    async def close(self) -> None:
        await self._api.close()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        try:
            result = await self._api.call_api(
                path,
                method,
                query_params=query or [],
                header_params={"Content-Type": content_type, "Accept": "application/json"},
                body=body,
                response_types_map=_JSON,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=30,
            )
        except client.ApiException as exc:
            raise ApiError(int(exc.status or 0), _message(exc)) from None
        return result if isinstance(result, dict) else {}

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply (force: the operator owns these fields)."""
        meta = manifest["metadata"]
        path = resource_path(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]
        )
        return await self._call(
            "PATCH",
            path,
            body=manifest,
            query=[("fieldManager", MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        meta = manifest["metadata"]
        path = resource_path(manifest["apiVersion"], manifest["kind"], meta["namespace"])
        return await self._call("POST", path, body=manifest, query=[("fieldManager", MANAGER)])

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        """The object, or None when it does not exist."""
        try:
            return await self._call("GET", resource_path(api_version, kind, namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        """Delete (background propagation); False when it was already gone."""
        try:
            await self._call(
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
        return await self._call(
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

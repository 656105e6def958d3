"""A recording fake of the controller's API client, shared by the reconcile tests.

It replaces the API server at our own client boundary (:class:`Kube`): the tests
see *which* requests a reconcile makes and *what* it applied. The real API server
is exercised in tests/integration.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from ollama_operator.controller.kube import ApiError, Kube


class RecordingKube(Kube):
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        #: Every manifest applied, in order (deep copies, as the API server received them).
        self.applied: list[dict[str, Any]] = []
        #: Secrets by name, as created (or put there by a test).
        self.secrets: dict[str, dict[str, Any]] = {}
        self.fail_kind: str | None = None
        self.status: dict[str, Any] | None = None
        #: When set, apply() waits for it (a slow API server holding a reconcile).
        self.apply_gate: asyncio.Event | None = None
        #: Set when an apply() is waiting at the gate.
        self.apply_waiting = asyncio.Event()
        #: When set, event() waits for it (a slow Event POST).
        self.event_gate: asyncio.Event | None = None
        self.event_waiting = asyncio.Event()

    async def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        if self.apply_gate is not None:
            self.apply_waiting.set()
            await self.apply_gate.wait()
        if manifest["kind"] == self.fail_kind:
            raise ApiError(422, "forbidden by policy")
        self.calls.append(("apply", manifest["kind"]))
        self.applied.append(copy.deepcopy(manifest))
        return manifest

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", manifest["kind"]))
        self.secrets[manifest["metadata"]["name"]] = copy.deepcopy(manifest)
        return manifest

    async def get(
        self, api_version: str, kind: str, namespace: str, name: str
    ) -> dict[str, Any] | None:
        self.calls.append(("get", kind))
        found = self.secrets.get(name)
        return copy.deepcopy(found) if found is not None else None

    async def delete(self, api_version: str, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", kind))
        return True

    async def patch_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.calls.append(("status", name))
        self.status = copy.deepcopy(status)
        return {}

    async def event(
        self, involved: dict[str, Any], *, type_: str, reason: str, message: str
    ) -> None:
        if self.event_gate is not None:
            self.event_waiting.set()
            await self.event_gate.wait()
        self.calls.append(("event", reason))

    def last_applied(self, kind: str, name: str | None = None) -> dict[str, Any]:
        """The newest manifest of that kind (and name) this fake received."""
        for manifest in reversed(self.applied):
            if manifest["kind"] == kind and name in (None, manifest["metadata"]["name"]):
                return manifest
        raise AssertionError(f"no {kind} {name or ''} was applied")

"""The API client: the requests it sends, the errors it raises, a token rotated under it.

The server is a small aiohttp app on 127.0.0.1 answering like kube-apiserver does
for these calls (objects as JSON, failures as a metav1.Status); the real API
server is exercised by the integration suite.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import kopf
import pytest
from aiohttp import web

from ollama_operator.controller.kube import (
    MAX_RETRY_AFTER,
    MAX_THROTTLE_RETRIES,
    ApiError,
    Kube,
    default_login,
    error_message,
    in_cluster_server,
    resource_path,
)
from ollama_operator.controller.naming import MANAGER


@dataclass
class FakeApiServer:
    """Records requests; accepts only the current token; answers 404 for unknown objects."""

    token: str = "token-1"
    #: The token each login read, in order.
    logins: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (HTTP status, Retry-After) to answer first, one per request, as API priority and
    #: fairness does when it sheds load.
    throttle: list[tuple[int, str | None]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "content_type": request.headers.get("Content-Type"),
                "authorization": request.headers.get("Authorization"),
                "body": json.loads(body) if body else None,
            }
        )
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if self.throttle:
            code, retry_after = self.throttle.pop(0)
            answer = _status(code, "TooManyRequests", "the server is busy")
            if retry_after is not None:
                answer.headers["Retry-After"] = retry_after
            return answer
        if request.method == "GET":
            if request.path not in self.objects:
                name = request.path.rsplit("/", 1)[-1]
                return _status(404, "NotFound", f'configmaps "{name}" not found')
            return web.json_response(self.objects[request.path])
        if request.method == "PATCH" and request.path.endswith("/status"):
            return _status(422, "Invalid", "status.conditions[0].type: Required value")
        return web.json_response(json.loads(body) if body else {})


def _status(code: int, reason: str, message: str) -> web.Response:
    status = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    return web.json_response(status, status=code)


@pytest.fixture
async def apiserver() -> AsyncIterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield fake, f"http://127.0.0.1:{port}"
    await runner.cleanup()


@pytest.fixture
async def kube(apiserver: tuple[FakeApiServer, str]) -> AsyncIterator[Kube]:
    """A client whose login reads the token as a rotated ServiceAccount file would be read."""
    fake, server = apiserver

    def login() -> kopf.ConnectionInfo:
        fake.logins.append(fake.token)
        return kopf.ConnectionInfo(server=server, token=fake.token)

    client = Kube(login)
    yield client
    await client.close()


CONFIGMAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "demo-config", "namespace": "ml"},
    "data": {"models": "[]"},
}


async def test_apply_is_a_forced_server_side_apply_by_our_field_manager(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    answer = await kube.apply(CONFIGMAP)
    assert answer == CONFIGMAP
    [sent] = fake.requests
    assert sent["method"] == "PATCH"
    assert sent["path"] == "/api/v1/namespaces/ml/configmaps/demo-config"
    assert sent["query"] == [("fieldManager", MANAGER), ("force", "true")]
    assert sent["content_type"] == "application/apply-patch+yaml"
    assert sent["body"] == CONFIGMAP


async def test_get_returns_none_for_a_missing_object_and_the_object_otherwise(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    path = resource_path("v1", "ConfigMap", "ml", "demo-config")
    fake.objects[path] = CONFIGMAP
    assert await kube.get("v1", "ConfigMap", "ml", "demo-config") == CONFIGMAP
    assert await kube.get("v1", "ConfigMap", "ml", "other") is None


async def test_a_failure_carries_the_api_servers_message(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    with pytest.raises(ApiError) as caught:
        await kube.patch_status("ml", "demo", {"conditions": [{}]})
    assert caught.value.status == 422
    assert caught.value.message == "status.conditions[0].type: Required value"
    assert fake.requests[0]["content_type"] == "application/merge-patch+json"
    assert fake.requests[0]["path"].endswith("/namespaces/ml/ollamaservers/demo/status")


async def test_a_rotated_token_is_read_again_after_a_401(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    await kube.create(CONFIGMAP)
    fake.token = "token-2"  # the kubelet rotated the projected token
    await kube.create(CONFIGMAP)
    assert fake.logins == ["token-1", "token-2"]
    assert [r["authorization"] for r in fake.requests] == [
        "Bearer token-1",
        "Bearer token-1",
        "Bearer token-2",
    ]


async def test_requests_rejected_together_log_in_once_and_all_succeed(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    await kube.create(CONFIGMAP)
    fake.token = "token-2"
    answers = await asyncio.gather(*(kube.create(CONFIGMAP) for _ in range(8)))
    assert answers == [CONFIGMAP] * 8
    assert fake.logins == ["token-1", "token-2"]


async def test_a_401_after_logging_in_again_is_an_error(
    apiserver: tuple[FakeApiServer, str],
) -> None:
    fake, server = apiserver

    def stale() -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=server, token="revoked")

    kube = Kube(stale)
    try:
        with pytest.raises(ApiError) as caught:
            await kube.create(CONFIGMAP)
    finally:
        await kube.close()
    assert caught.value.status == 401
    assert len(fake.requests) == 2


async def test_an_unreachable_server_is_an_api_error_with_status_0() -> None:
    kube = Kube(lambda: kopf.ConnectionInfo(server="http://127.0.0.1:9", token="t"), timeout=2)
    try:
        with pytest.raises(ApiError) as caught:
            await kube.get("v1", "ConfigMap", "ml", "demo-config")
    finally:
        await kube.close()
    assert caught.value.status == 0
    assert "/api/v1/namespaces/ml/configmaps/demo-config" in caught.value.message


async def test_no_credentials_at_all_is_a_clear_error() -> None:
    kube = Kube(lambda: None)
    with pytest.raises(ApiError, match="no credentials"):
        await kube.get("v1", "ConfigMap", "ml", "x")
    await kube.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"kind": "Status", "message": "quota exceeded"}', "quota exceeded"),
        ("<html>bad gateway</html>", "Bad Gateway"),
        ('{"kind": "Status"}', "Bad Gateway"),
    ],
)
def test_error_message_prefers_the_status_message(text: str, expected: str) -> None:
    assert error_message(502, "Bad Gateway", text) == expected


async def test_a_429_with_retry_after_is_retried(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    fake.throttle = [(429, "0")]
    assert await kube.create(CONFIGMAP) == CONFIGMAP
    assert len(fake.requests) == 2


async def test_retry_after_is_honoured_and_the_retries_are_bounded(
    apiserver: tuple[FakeApiServer, str],
) -> None:
    fake, server = apiserver
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    kube = Kube(lambda: kopf.ConnectionInfo(server=server, token=fake.token), sleep=sleep)
    try:
        fake.throttle = [(503, "2"), (429, "1")]
        assert await kube.create(CONFIGMAP) == CONFIGMAP
        assert waited == [2.0, 1.0]
        fake.throttle = [(429, "3600")] * 100  # an absurd wait is capped, the tries bounded
        with pytest.raises(ApiError) as caught:
            await kube.create(CONFIGMAP)
    finally:
        await kube.close()
    assert caught.value.status == 429
    assert len(fake.requests) == 3 + 1 + MAX_THROTTLE_RETRIES
    assert waited[2:] == [MAX_RETRY_AFTER] * MAX_THROTTLE_RETRIES


async def test_a_429_without_retry_after_is_an_error(
    apiserver: tuple[FakeApiServer, str], kube: Kube
) -> None:
    fake, _ = apiserver
    fake.throttle = [(429, None)]
    with pytest.raises(ApiError) as caught:
        await kube.create(CONFIGMAP)
    assert caught.value.status == 429
    assert len(fake.requests) == 1


def test_in_cluster_the_api_server_is_reached_by_the_service_address() -> None:
    # No DNS needed: the kubelet sets these in every pod (client-go reads the same).
    default = "https://kubernetes.default.svc"
    env = {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert in_cluster_server(default, env) == "https://10.96.0.1:443"
    v6 = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "6443"}
    assert in_cluster_server(default, v6) == "https://[fd00::1]:6443"
    assert in_cluster_server(default, {}) == default


def test_the_service_account_login_uses_the_service_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = kopf.ConnectionInfo(server="https://kubernetes.default.svc", token="t")
    monkeypatch.setattr(kopf, "login_with_service_account", lambda **_: info)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    got = default_login(kopf.OperatorSettings())()
    assert got is not None
    assert got.server == "https://10.96.0.1:443"
    assert got.token == "t"

"""The pod simulator's kubelet imitation, without a cluster.

The full-loop tests trust the simulator to hand each sidecar what the kubelet
would: the pod's ConfigMap and Secrets as files (``items`` and ``subPath``
honoured), a config whose only changes are the ones a shared host forces, and a
readiness verdict written the way the kubelet writes it. A mistake here would
make the e2e tests pass or fail for the wrong reason, so it is pinned down here.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.podsim import (
    MissingSource,
    _probe_target,
    _readiness_patch,
    pod_mounts,
    render_config,
    write_atomically,
)

CONFIG = "/etc/ollama-operator/config/sidecar.yaml"
SIDECAR_YAML = yaml.safe_dump(
    {
        "upstream": "http://127.0.0.1:11434",
        "listenHost": "0.0.0.0",
        "internalTokenFile": "/etc/ollama-operator/token/token",
        "apiKeysFile": "/etc/ollama-operator/keys/keys",
        "models": [{"name": "llama3.2:1b"}],
    }
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _pod() -> dict[str, Any]:
    return {
        "metadata": {"name": "demo-0", "uid": "u1"},
        "spec": {
            "containers": [
                {
                    "name": "sidecar",
                    "args": ["sidecar", "--config", CONFIG],
                    "ports": [{"name": "admin", "containerPort": 9090}],
                    "readinessProbe": {"httpGet": {"path": "/readyz", "port": "admin"}},
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/ollama-operator/config"},
                        {"name": "internal-token", "mountPath": "/etc/ollama-operator/token"},
                        {"name": "api-keys", "mountPath": "/etc/ollama-operator/keys"},
                        {"name": "tmp", "mountPath": "/tmp", "subPath": "sidecar"},
                    ],
                }
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "demo-config"}},
                {"name": "internal-token", "secret": {"secretName": "demo-internal"}},
                {
                    "name": "api-keys",
                    "secret": {
                        "secretName": "team-keys",
                        "items": [{"key": "keys.txt", "path": "keys"}],
                    },
                },
                {"name": "tmp", "emptyDir": {}},
            ],
        },
        "status": {
            "podIP": "127.1.1.9",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "ollama", "ready": True, "image": "ollama/ollama"},
                {"name": "sidecar", "ready": True, "image": "ollama-operator:test"},
            ],
        },
    }


CONFIGMAPS = {"demo-config": {"data": {"sidecar.yaml": SIDECAR_YAML}}}
SECRETS = {
    "demo-internal": {"data": {"token": _b64("s3cret")}},
    "team-keys": {"data": {"keys.txt": _b64("key-1\n"), "other": _b64("x")}},
}


def test_mounts_show_what_the_kubelet_would(tmp_path: Path) -> None:
    pod = _pod()
    mounts = pod_mounts(pod, pod["spec"]["containers"][0], tmp_path, CONFIGMAPS, SECRETS)
    by_path = {
        str(p.relative_to(tmp_path / "mounts").parent.name) + "/" + p.name: c
        for p, c in mounts.files.items()
    }
    assert by_path == {
        "0-etc-ollama-operator-config/sidecar.yaml": SIDECAR_YAML.encode(),
        "1-etc-ollama-operator-token/token": b"s3cret",
        "2-etc-ollama-operator-keys/keys": b"key-1\n",  # items: only the listed key, renamed
    }
    token = mounts.translate("/etc/ollama-operator/token/token")
    assert token is not None
    assert mounts.files[token] == b"s3cret"
    assert mounts.translate("/var/run/elsewhere") is None


def test_a_missing_source_waits(tmp_path: Path) -> None:
    pod = _pod()
    only_token = {"demo-internal": SECRETS["demo-internal"]}
    with pytest.raises(MissingSource, match="Secret team-keys"):
        pod_mounts(pod, pod["spec"]["containers"][0], tmp_path, CONFIGMAPS, only_token)


def test_config_rewrites_only_what_a_shared_host_forces(tmp_path: Path) -> None:
    pod = _pod()
    mounts = pod_mounts(pod, pod["spec"]["containers"][0], tmp_path, CONFIGMAPS, SECRETS)
    rendered = yaml.safe_load(
        render_config(
            SIDECAR_YAML.encode(), mounts, upstream="http://127.0.0.1:40000", host="127.1.1.9"
        )
    )
    original = yaml.safe_load(SIDECAR_YAML)
    assert rendered["upstream"] == "http://127.0.0.1:40000"
    assert rendered["listenHost"] == "127.1.1.9"
    assert rendered["internalTokenFile"] == str(
        mounts.translate("/etc/ollama-operator/token/token")
    )
    assert rendered["apiKeysFile"] == str(mounts.translate("/etc/ollama-operator/keys/keys"))
    changed = {"upstream", "listenHost", "internalTokenFile", "apiKeysFile"}
    assert {k: v for k, v in rendered.items() if k not in changed} == {
        k: v for k, v in original.items() if k not in changed
    }


def test_files_are_replaced_atomically_and_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "dir" / "f"
    assert write_atomically(path, b"one")
    inode = path.stat().st_ino
    assert not write_atomically(path, b"one")
    assert path.stat().st_ino == inode
    assert write_atomically(path, b"two")
    assert path.read_bytes() == b"two"
    assert path.stat().st_ino != inode, "a reader must see a new file, never a half-written one"


def test_readiness_probe_target_and_verdict() -> None:
    pod = _pod()
    assert _probe_target(pod["spec"]["containers"][0]) == (9090, "/readyz")
    patch = _readiness_patch(pod, ready=False)["status"]
    conditions = {c["type"]: c for c in patch["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["ContainersReady"]["reason"] == "ContainersNotReady"
    # The whole list is sent (it is replaced, not merged), only the sidecar's flag changes.
    assert patch["containerStatuses"] == [
        {"name": "ollama", "ready": True, "image": "ollama/ollama"},
        {"name": "sidecar", "ready": False, "image": "ollama-operator:test"},
    ]
    ready = {c["type"]: c for c in _readiness_patch(pod, ready=True)["status"]["conditions"]}
    assert ready["Ready"]["status"] == "True"
    assert ready["Ready"]["reason"] is None, "a stale reason must be deleted"

"""What a user's cluster does, on a kubelet that runs the real images.

One OllamaServer per module (a real model pull and load is the expensive part), declared
the way a user would: one model from the in-cluster registry, auth left at its default
(a key the operator generates), a volume per replica. The tests then check what a user
would check, in order: the pull and readiness, ``kubectl get ollama``, the containers, a
generate through the Service (port-forward and from a pod), the token metrics, a model
added live, the Ollama container killed, the pod deleted, and finally the logs.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from ollama_operator.controller.builders import RUN_AS_USER
from tests.integration.kube import Kubectl, wait_for
from tests.realnode.conftest import MODEL, MODEL2, Release
from tests.realnode.portforward import port_forward

NAME = "gemma"
PULL_TIMEOUT_S = 420
PROMPT = "Name one colour of the sky."


@dataclass
class Sample:
    """One look at the server while it came up."""

    elapsed: float
    phase: str | None
    progress: int | None
    pod_ready: bool


@dataclass
class Served:
    namespace: str
    key: str
    samples: list[Sample]
    generated: list[int] = field(default_factory=list)

    @property
    def pod(self) -> str:
        return f"{NAME}-0"


def _server(kubectl: Kubectl, ns: str) -> dict[str, Any]:
    obj: dict[str, Any] = kubectl.json("-n", ns, "get", "ollamaserver", NAME)
    return obj


def _models(kubectl: Kubectl, ns: str) -> dict[str, dict[str, Any]]:
    status = _server(kubectl, ns).get("status") or {}
    return {m["name"]: m for m in status.get("models") or []}


def _pod(kubectl: Kubectl, ns: str) -> dict[str, Any] | None:
    result = kubectl("-n", ns, "get", "pod", f"{NAME}-0", "-o", "json", check=False)
    if result.returncode != 0:
        return None
    pod: dict[str, Any] = json.loads(result.stdout)
    return pod


def _pod_ready(pod: dict[str, Any] | None) -> bool:
    if pod is None:
        return False
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _registry_blob_gets(kubectl: Kubectl) -> list[str]:
    """Access-log lines of blob downloads the registry answered (GET, 200 or 206)."""
    logs = kubectl("-n", "model-registry", "logs", "registry", timeout=60).stdout
    return [
        line
        for line in logs.splitlines()
        if re.search(r'"GET /v2/library/[^ ]+/blobs/sha256:[0-9a-f]{64} HTTP/1\.1" 20[06] ', line)
    ]


def _generate(port: int, key: str | None, model: str = MODEL) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {"model": model, "prompt": PROMPT, "stream": False, "options": {"num_predict": 8}}
    return httpx.post(
        f"http://127.0.0.1:{port}/api/generate", json=body, headers=headers, timeout=180
    )


@pytest.fixture(scope="module")
def served(rn_kubectl: Kubectl, release: Release) -> Iterator[Served]:
    """The server applied and watched (status and pod, every few hundred ms) until Ready."""
    ns = release.take()
    rn_kubectl.apply(
        {
            "apiVersion": "ollama.operator.dev/v1alpha1",
            "kind": "OllamaServer",
            "metadata": {"name": NAME},
            "spec": {
                "models": [{"name": MODEL, "insecure": True, "preload": True}],
                "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}},
                "storage": {"size": "2Gi"},
                # No gateway.auth: auth is on by default, with a key the operator generates.
            },
        },
        "-n",
        ns,
    )
    samples: list[Sample] = []
    start = time.monotonic()
    while True:
        model = _models(rn_kubectl, ns).get(MODEL, {})
        ready = _pod_ready(_pod(rn_kubectl, ns))
        samples.append(
            Sample(time.monotonic() - start, model.get("phase"), model.get("progress"), ready)
        )
        if ready and model.get("phase") == "Ready":
            break
        if time.monotonic() - start > PULL_TIMEOUT_S:
            describe = rn_kubectl("-n", ns, "describe", "ollamaserver,pod", check=False).stdout
            last = samples[-5:]
            tail = describe[-6000:]
            pytest.fail(f"not Ready after {PULL_TIMEOUT_S}s; last samples {last}\n{tail}")
        time.sleep(0.3)
    secret = rn_kubectl.json("-n", ns, "get", "secret", f"{NAME}-api-keys")
    key = base64.b64decode(secret["data"]["keys"]).decode().strip()
    yield Served(namespace=ns, key=key, samples=samples)
    # Free the node's memory for what runs next; the namespace goes with the session.
    rn_kubectl("-n", ns, "delete", "ollamaserver", NAME, "--wait=false", check=False)


def test_model_pulled_from_registry_then_ready_with_readiness_gated(
    served: Served, rn_kubectl: Kubectl
) -> None:
    phases = [s.phase for s in served.samples]
    assert phases[-1] == "Ready"
    assert set(phases) <= {None, "Pending", "Pulling", "Ready"}, phases
    # Readiness waits for the required model: the pod was seen not Ready first, and never
    # Ready while the model had not even started. (status.models is the controller's last
    # poll, up to a few seconds behind the pod, so a Pulling sample may overlap.)
    assert not served.samples[0].pod_ready, served.samples[0]
    early = [s for s in served.samples if s.pod_ready and s.phase in (None, "Pending")]
    assert not early, early
    # Progress only rises while pulling.
    progress = [s.progress for s in served.samples if s.phase == "Pulling" and s.progress]
    assert progress == sorted(progress), progress
    # The bytes came from the registry in the cluster, and status shows what arrived.
    assert _registry_blob_gets(rn_kubectl), "the registry served no blob"
    model = _models(rn_kubectl, served.namespace)[MODEL]
    assert model["digest"]
    assert model["readyReplicas"] == 1
    events = rn_kubectl(
        "-n", served.namespace, "get", "events", "--field-selector", f"involvedObject.name={NAME}"
    ).stdout
    assert "ModelReady" in events or "is ready on" in events, events


def test_kubectl_get_ollama_columns(served: Served, rn_kubectl: Kubectl) -> None:
    out = rn_kubectl("-n", served.namespace, "get", "ollama", NAME).stdout.splitlines()
    header, row = out[0].split(), out[1].split()
    assert header[:7] == ["NAME", "READY", "REPLICAS", "MODELS", "GPU", "AUTH", "ENDPOINT"], header
    values = dict(zip(header, row, strict=False))
    assert values["READY"] == "True"
    assert values["REPLICAS"] == "1/1"
    assert values["MODELS"] == "1/1"
    assert values["AUTH"] == "APIKeys"
    assert values["ENDPOINT"] == f"http://{NAME}.{served.namespace}.svc:11434"


def test_pod_runs_both_containers_non_root_read_only(served: Served, rn_kubectl: Kubectl) -> None:
    pod = _pod(rn_kubectl, served.namespace)
    assert pod is not None
    statuses = {c["name"]: c for c in pod["status"]["containerStatuses"]}
    assert set(statuses) == {"ollama", "sidecar"}
    assert all(c["ready"] and "running" in c["state"] for c in statuses.values()), statuses
    for container in ("ollama", "sidecar"):
        uid = rn_kubectl(
            "-n", served.namespace, "exec", served.pod, "-c", container, "--", "id", "-u"
        )
        assert uid.stdout.strip() == str(RUN_AS_USER)
        touch = rn_kubectl(
            "-n",
            served.namespace,
            "exec",
            served.pod,
            "-c",
            container,
            "--",
            "touch",
            "/x",
            check=False,
        )
        assert touch.returncode != 0
        assert "Read-only file system" in touch.stderr + touch.stdout
    # Ollama keeps its identity key under HOME, on the volume.
    home = rn_kubectl(
        "-n",
        served.namespace,
        "exec",
        served.pod,
        "-c",
        "ollama",
        "--",
        "sh",
        "-c",
        'ls "$HOME/.ollama"',
    )
    assert "id_ed25519" in home.stdout


def test_generate_through_the_service_with_a_key(served: Served, rn_kubectl: Kubectl) -> None:
    with port_forward(rn_kubectl, served.namespace, f"svc/{NAME}", 11434) as port:
        answer = _generate(port, served.key)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["response"].strip(), body
        assert body["eval_count"] > 0
        served.generated.append(body["eval_count"])
        assert _generate(port, None).status_code == 401
        assert _generate(port, "not-" + served.key).status_code == 401


def test_generate_from_a_pod_through_the_cluster_ip(served: Served, rn_kubectl: Kubectl) -> None:
    ns = served.namespace
    ip = rn_kubectl("-n", ns, "get", "svc", NAME, "-o", "jsonpath={.spec.clusterIP}").stdout
    script = (
        "import json,sys,urllib.request as u;"
        f"r=u.Request('http://{ip}:11434/api/generate',"
        f"data=json.dumps({{'model':'{MODEL}','prompt':'{PROMPT}','stream':False,"
        "'options':{'num_predict':8}}).encode(),"
        "headers={'Authorization':'Bearer '+sys.argv[1],'Content-Type':'application/json'});"
        "print(u.urlopen(r,timeout=170).read().decode())"
    )
    rn_kubectl.apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "client"},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "client",
                        "image": "ollama-operator:0.1.0",
                        "imagePullPolicy": "IfNotPresent",
                        "command": ["python", "-c", script, served.key],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
            },
        },
        "-n",
        ns,
    )
    phase = wait_for(
        lambda: (
            rn_kubectl("-n", ns, "get", "pod", "client", "-o", "jsonpath={.status.phase}").stdout
            in ("Succeeded", "Failed")
            and rn_kubectl(
                "-n", ns, "get", "pod", "client", "-o", "jsonpath={.status.phase}"
            ).stdout
        ),
        timeout=240,
        what="the client pod to finish",
    )
    logs = rn_kubectl("-n", ns, "logs", "client").stdout
    assert phase == "Succeeded", logs
    body = json.loads(logs.strip().splitlines()[-1])
    assert body["response"].strip()
    assert body["eval_count"] > 0
    served.generated.append(body["eval_count"])


def test_sidecar_metrics_count_the_tokens(served: Served, rn_kubectl: Kubectl) -> None:
    assert served.generated, "the generate tests did not run"
    with port_forward(rn_kubectl, served.namespace, f"pod/{served.pod}", 9090) as port:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    pattern = r'^ollama_gateway_generated_tokens_total\{model="' + re.escape(MODEL) + r'"\} (\S+)$'
    match = re.search(pattern, text, re.MULTILINE)
    assert match, "no generated-token counter for the model"
    assert float(match.group(1)) >= sum(served.generated)


def test_a_second_model_is_pulled_into_the_running_pod(served: Served, rn_kubectl: Kubectl) -> None:
    ns = served.namespace
    before = _pod(rn_kubectl, ns)
    assert before is not None
    patch = {
        "spec": {
            "models": [
                {"name": MODEL, "insecure": True, "preload": True},
                {"name": MODEL2, "insecure": True},
            ]
        }
    }
    rn_kubectl("-n", ns, "patch", "ollamaserver", NAME, "--type", "merge", "-p", json.dumps(patch))
    wait_for(
        lambda: (_models(rn_kubectl, ns).get(MODEL2) or {}).get("phase") == "Ready",
        timeout=PULL_TIMEOUT_S,
        what=f"{MODEL2} Ready",
    )
    after = _pod(rn_kubectl, ns)
    assert after is not None
    assert after["metadata"]["uid"] == before["metadata"]["uid"]
    assert all(c["restartCount"] == 0 for c in after["status"]["containerStatuses"])
    with port_forward(rn_kubectl, ns, f"svc/{NAME}", 11434) as port:
        answer = _generate(port, served.key, MODEL2)
    assert answer.status_code == 200, answer.text
    assert answer.json()["eval_count"] > 0
    served.generated.append(answer.json()["eval_count"])


def test_a_killed_ollama_is_restarted_and_rewarmed(served: Served, rn_kubectl: Kubectl) -> None:
    ns = served.namespace
    rn_kubectl("-n", ns, "exec", served.pod, "-c", "ollama", "--", "sh", "-c", "kill 1")

    def restarted_and_ready() -> bool:
        pod = _pod(rn_kubectl, ns)
        if pod is None:
            return False
        ollama = next(c for c in pod["status"]["containerStatuses"] if c["name"] == "ollama")
        return ollama["restartCount"] >= 1 and _pod_ready(pod)

    wait_for(restarted_and_ready, timeout=300, what="the ollama container restarted and Ready")
    # The agent loads the preloaded model into the new Ollama again.
    wait_for(
        lambda: _models(rn_kubectl, ns)[MODEL].get("loaded") is True,
        timeout=300,
        what=f"{MODEL} loaded again",
    )
    with port_forward(rn_kubectl, ns, f"svc/{NAME}", 11434) as port:
        answer = _generate(port, served.key)
    assert answer.status_code == 200, answer.text
    served.generated.append(answer.json()["eval_count"])


def test_a_deleted_pod_comes_back_on_its_volume_without_a_download(
    served: Served, rn_kubectl: Kubectl
) -> None:
    ns = served.namespace
    claim = f"data-{NAME}-0"
    volume = rn_kubectl("-n", ns, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}").stdout
    assert volume
    downloads = len(_registry_blob_gets(rn_kubectl))
    old = _pod(rn_kubectl, ns)
    assert old is not None
    rn_kubectl("-n", ns, "delete", "pod", served.pod, "--wait=true", timeout=180)

    def back() -> bool:
        pod = _pod(rn_kubectl, ns)
        return (
            pod is not None
            and pod["metadata"]["uid"] != old["metadata"]["uid"]
            and _pod_ready(pod)
            and all(m.get("phase") == "Ready" for m in _models(rn_kubectl, ns).values())
        )

    wait_for(back, timeout=300, what="the recreated pod Ready with its models")
    assert (
        rn_kubectl("-n", ns, "get", "pvc", claim, "-o", "jsonpath={.spec.volumeName}").stdout
        == volume
    )
    assert len(_registry_blob_gets(rn_kubectl)) == downloads, "a model was downloaded again"


def test_logs_hold_no_key_token_or_traceback(
    served: Served, rn_kubectl: Kubectl, release: Release
) -> None:
    ns = served.namespace
    token_data = rn_kubectl.json("-n", ns, "get", "secret", f"{NAME}-internal")["data"]
    import base64

    token = base64.b64decode(next(iter(token_data.values()))).decode()
    logs = {
        c: rn_kubectl("-n", ns, "logs", served.pod, "-c", c).stdout for c in ("ollama", "sidecar")
    }
    logs["operator"] = rn_kubectl(
        "-n",
        release.namespace,
        "logs",
        "deployment/" + release.name + "-ollama-operator",
        check=False,
    ).stdout
    assert all(logs.values()), {k: len(v) for k, v in logs.items()}
    for name, text in logs.items():
        assert served.key not in text, name
        assert token not in text, name
        assert "Traceback" not in text, f"{name}: {text[-3000:]}"

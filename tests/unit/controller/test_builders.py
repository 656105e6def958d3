"""The pure builders across the matrix of specs users write."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ollama_operator.api import SidecarConfig
from ollama_operator.controller.builders import (
    BuildContext,
    build_api_keys_secret,
    build_children,
    build_configmap,
    build_internal_secret,
    build_network_policy,
    build_pdb,
    build_service,
    build_statefulset,
)
from ollama_operator.controller.naming import Owner
from ollama_operator.sidecar.settings import GatewaySettings

from .conftest import make_spec


def containers(sts: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container["env"]}


def test_no_gpu_by_default(owner: Owner, ctx: BuildContext) -> None:
    sts = build_statefulset(owner, make_spec(), ctx)
    ollama = containers(sts)["ollama"]
    assert ollama["image"] == "ollama/ollama:0.11.4"
    assert "limits" not in ollama["resources"]
    assert "tolerations" not in sts["spec"]["template"]["spec"]


def test_nvidia_gpu_limit_and_toleration(owner: Owner, ctx: BuildContext) -> None:
    sts = build_statefulset(owner, make_spec(gpu={"count": 2}), ctx)
    ollama = containers(sts)["ollama"]
    assert ollama["resources"]["limits"] == {"nvidia.com/gpu": 2}
    tolerations = sts["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations
    assert ollama["image"] == "ollama/ollama:0.11.4"


def test_amd_gpu_uses_rocm_image(owner: Owner, ctx: BuildContext) -> None:
    sts = build_statefulset(owner, make_spec(gpu={"count": 1, "vendor": "amd"}), ctx)
    ollama = containers(sts)["ollama"]
    assert ollama["resources"]["limits"] == {"amd.com/gpu": 1}
    assert ollama["image"] == "ollama/ollama:0.11.4-rocm"
    assert "tolerations" not in sts["spec"]["template"]["spec"]


def test_explicit_image_wins_over_rocm(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(image="my/ollama:1", gpu={"vendor": "amd"})
    assert containers(build_statefulset(owner, spec, ctx))["ollama"]["image"] == "my/ollama:1"


def test_mig_resource_name(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(gpu={"count": 1, "resourceName": "nvidia.com/mig-1g.10gb"})
    ollama = containers(build_statefulset(owner, spec, ctx))["ollama"]
    assert ollama["resources"]["limits"] == {"nvidia.com/mig-1g.10gb": 1}


def test_memory_requests_and_limits_with_gpu(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(
        resources={"requests": {"memory": "8Gi", "cpu": "2"}, "limits": {"memory": "16Gi"}},
        gpu={"count": 1},
    )
    resources = containers(build_statefulset(owner, spec, ctx))["ollama"]["resources"]
    assert resources == {
        "requests": {"memory": "8Gi", "cpu": "2"},
        "limits": {"memory": "16Gi", "nvidia.com/gpu": 1},
    }


def test_per_replica_storage(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(storage={"size": "50Gi", "storageClassName": "fast", "retainOnDelete": True})
    sts = build_statefulset(owner, spec, ctx)
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "data"
    assert claim["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    volumes = {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "data" not in volumes


def test_per_replica_claims_deleted_by_default(owner: Owner, ctx: BuildContext) -> None:
    sts = build_statefulset(owner, make_spec(), ctx)
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"


def test_shared_storage_mounts_existing_claim(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(storage={"mode": "Shared", "existingClaim": "models"})
    sts = build_statefulset(owner, spec, ctx)
    assert "volumeClaimTemplates" not in sts["spec"]
    volumes = {v["name"]: v for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "persistentVolumeClaim": {"claimName": "models"}}


def test_ephemeral_storage_is_bounded_empty_dir(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(storage={"mode": "Ephemeral", "size": "30Gi"})
    volumes = {
        v["name"]: v
        for v in build_statefulset(owner, spec, ctx)["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["data"]["emptyDir"] == {"sizeLimit": "30Gi"}


def test_scheduling_passthrough(owner: Owner, ctx: BuildContext) -> None:
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                ]
            }
        }
    }
    spec = make_spec(
        nodeSelector={"pool": "gpu"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
        ],
        affinity=affinity,
        runtimeClassName="nvidia",
        priorityClassName="high",
        imagePullSecrets=[{"name": "regcred"}],
        podLabels={"team": "ml"},
        podAnnotations={"note": "x"},
    )
    template = build_statefulset(owner, spec, ctx)["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"pool": "gpu"}
    assert pod["tolerations"] == [
        {"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
    ]
    assert pod["affinity"] == affinity
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["priorityClassName"] == "high"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert template["metadata"]["labels"]["team"] == "ml"
    assert template["metadata"]["annotations"] == {"note": "x"}


def test_ollama_env_from_typed_knobs_and_passthrough(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(
        ollama={
            "keepAlive": "10m",
            "numParallel": 4,
            "maxLoadedModels": 2,
            "maxQueue": 100,
            "contextLength": 8192,
            "flashAttention": True,
            "debug": True,
            "env": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
            "envFrom": [{"secretRef": {"name": "extra"}}],
        }
    )
    ollama = containers(build_statefulset(owner, spec, ctx))["ollama"]
    env = env_of(ollama)
    assert env["OLLAMA_HOST"] == "127.0.0.1:11434"
    assert env["OLLAMA_KEEP_ALIVE"] == "10m"
    assert env["OLLAMA_NUM_PARALLEL"] == "4"
    assert env["OLLAMA_MAX_LOADED_MODELS"] == "2"
    assert env["OLLAMA_MAX_QUEUE"] == "100"
    assert env["OLLAMA_CONTEXT_LENGTH"] == "8192"
    assert env["OLLAMA_FLASH_ATTENTION"] == "1"
    assert env["OLLAMA_DEBUG"] == "1"
    assert env["HTTPS_PROXY"] == "http://proxy:3128"
    assert ollama["envFrom"] == [{"secretRef": {"name": "extra"}}]


def test_unset_knobs_are_not_rendered(owner: Owner, ctx: BuildContext) -> None:
    env = env_of(containers(build_statefulset(owner, make_spec(), ctx))["ollama"])
    assert set(env) == {"OLLAMA_HOST", "OLLAMA_MODELS", "HOME", "OLLAMA_NO_CLOUD"}


def test_cloud_models_are_off_by_default_in_ollama_and_the_gateway(
    owner: Owner, ctx: BuildContext
) -> None:
    env = env_of(containers(build_statefulset(owner, make_spec(), ctx))["ollama"])
    assert env["OLLAMA_NO_CLOUD"] == "1"
    config = SidecarConfig.from_mapping(
        yaml.safe_load(build_configmap(owner, make_spec())["data"]["sidecar.yaml"])
    )
    assert GatewaySettings.from_config(config).cloud_allowed is False
    allowed = make_spec(ollama={"cloud": "Allowed"}, models=[{"name": "glm-4.6:cloud"}])
    env = env_of(containers(build_statefulset(owner, allowed, ctx))["ollama"])
    assert "OLLAMA_NO_CLOUD" not in env
    config = SidecarConfig.from_mapping(
        yaml.safe_load(build_configmap(owner, allowed)["data"]["sidecar.yaml"])
    )
    assert GatewaySettings.from_config(config).cloud_allowed is True


def test_ollama_is_loopback_only_and_sidecar_exposed(owner: Owner, ctx: BuildContext) -> None:
    c = containers(build_statefulset(owner, make_spec(), ctx))
    assert "ports" not in c["ollama"]
    assert [p["containerPort"] for p in c["sidecar"]["ports"]] == [8080, 9090]
    assert c["sidecar"]["image"] == "registry.example/ollama-operator:test"
    assert c["sidecar"]["args"][:1] == ["sidecar"]
    assert c["sidecar"]["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "admin"}
    assert c["sidecar"]["startupProbe"]["failureThreshold"] * 5 >= 600
    assert c["sidecar"]["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_restricted_pod_security(owner: Owner, ctx: BuildContext) -> None:
    sts = build_statefulset(owner, make_spec(gpu={"count": 1}), ctx)
    pod = sts["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["runAsNonRoot"] is True


def test_statefulset_shape(owner: Owner, ctx: BuildContext) -> None:
    sts = build_statefulset(owner, make_spec(replicas=3), ctx)
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == "demo-headless"
    selector = sts["spec"]["selector"]["matchLabels"]
    assert selector == {"app.kubernetes.io/name": "ollama", "app.kubernetes.io/instance": "demo"}
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()
    assert labels["app.kubernetes.io/managed-by"] == "ollama-operator"


def test_owner_reference_on_every_child(owner: Owner, ctx: BuildContext) -> None:
    for child in build_children(owner, make_spec(replicas=2), ctx):
        (ref,) = child["metadata"]["ownerReferences"]
        assert ref["uid"] == "0000-1111"
        assert ref["controller"] is True
        assert ref["kind"] == "OllamaServer"
        assert child["metadata"]["namespace"] == "ml"


def test_service_maps_ollama_port_to_sidecar(owner: Owner) -> None:
    svc = build_service(owner, make_spec(service={"type": "LoadBalancer", "port": 80}))
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


def test_pdb_only_for_several_replicas(owner: Owner) -> None:
    assert build_pdb(owner, make_spec(replicas=1)) is None
    pdb = build_pdb(owner, make_spec(replicas=3))
    assert pdb is not None
    assert pdb["spec"]["maxUnavailable"] == 1
    kinds = [c["kind"] for c in build_children(owner, make_spec(replicas=1), BuildContext())]
    assert "PodDisruptionBudget" not in kinds


def test_configmap_carries_models_and_gateway(owner: Owner) -> None:
    spec = make_spec(
        models=[{"name": "llama3.2:1b", "preload": True}],
        gateway={"auth": {"apiKeysSecretRef": {"name": "keys"}}, "maxConcurrent": 2},
    )
    cm = build_configmap(owner, spec)
    config = SidecarConfig.from_mapping(yaml.safe_load(cm["data"]["sidecar.yaml"]))
    assert [m.name for m in config.models] == ["llama3.2:1b"]
    assert config.models[0].preload is True
    assert config.gateway.max_concurrent == 2
    assert config.api_keys_file == "/etc/ollama-operator/keys/keys"
    assert config.internal_token_file == "/etc/ollama-operator/token/token"


def rendered_config(owner: Owner, **spec: Any) -> tuple[dict[str, Any], SidecarConfig]:
    """The ConfigMap's sidecar.yaml, parsed, and as the sidecar loads it."""
    text = build_configmap(owner, make_spec(**spec))["data"]["sidecar.yaml"]
    return yaml.safe_load(text), SidecarConfig.from_mapping(yaml.safe_load(text))


def test_cache_policy_rendered_into_the_top_level_cache_block(owner: Owner) -> None:
    raw, config = rendered_config(
        owner, gateway={"cache": {"enabled": True, "shared": True, "maxBytes": 1048576}}
    )
    assert raw["cache"] == {"shared": True, "maxBytes": 1048576}
    # Once only: the sidecar reads them from the top-level block, not from gateway.cache.
    assert raw["gateway"]["cache"] == {"enabled": True, "ttl": "5m", "maxEntries": 1000}
    assert config.cache is not None
    assert (config.cache.shared, config.cache.max_bytes) == (True, 1048576)
    assert config.gateway.cache.enabled is True


def test_cache_policy_one_field_set_takes_the_sidecar_default_for_the_other(
    owner: Owner,
) -> None:
    raw, _ = rendered_config(owner, gateway={"cache": {"maxBytes": 2048}})
    assert raw["cache"] == {"shared": False, "maxBytes": 2048}
    raw, config = rendered_config(owner, gateway={"cache": {"shared": False}})
    assert raw["cache"] == {"shared": False, "maxBytes": 64 * 1024 * 1024}
    assert config.cache is not None
    assert config.cache.shared is False


def test_cache_policy_not_rendered_when_unset(owner: Owner) -> None:
    raw, config = rendered_config(owner, gateway={"cache": {"enabled": True, "ttl": "1m"}})
    assert "cache" not in raw
    assert config.cache is None
    assert raw["gateway"]["cache"] == {"enabled": True, "ttl": "1m", "maxEntries": 1000}


def test_sidecar_runs_with_the_rendered_cache_policy(owner: Owner) -> None:
    _, config = rendered_config(owner, gateway={"cache": {"shared": True, "maxBytes": 4096}})
    settings = GatewaySettings.from_config(config)
    assert (settings.cache_shared, settings.cache_max_bytes) == (True, 4096)
    _, config = rendered_config(owner)
    settings = GatewaySettings.from_config(config)
    assert (settings.cache_shared, settings.cache_max_bytes) == (False, 64 * 1024 * 1024)


def test_models_change_only_the_configmap(owner: Owner, ctx: BuildContext) -> None:
    before = make_spec(models=[{"name": "a"}])
    after = make_spec(models=[{"name": "a"}, {"name": "b"}])
    assert build_statefulset(owner, before, ctx) == build_statefulset(owner, after, ctx)
    assert build_configmap(owner, before) != build_configmap(owner, after)


def test_api_keys_secret_mounted_with_fixed_path(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(gateway={"auth": {"apiKeysSecretRef": {"name": "k", "key": "tokens"}}})
    pod = build_statefulset(owner, spec, ctx)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["api-keys"]["secret"] == {
        "secretName": "k",
        "items": [{"key": "tokens", "path": "keys"}],
    }


def test_auth_is_on_by_default_with_the_generated_secret(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec()
    pod = build_statefulset(owner, spec, ctx)["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["api-keys"]["secret"] == {
        "secretName": "demo-api-keys",
        "items": [{"key": "keys", "path": "keys"}],
    }
    mounts = {
        m["name"]: m
        for m in containers(build_statefulset(owner, spec, ctx))["sidecar"]["volumeMounts"]
    }
    assert mounts["api-keys"]["mountPath"] == "/etc/ollama-operator/keys"
    config = SidecarConfig.from_mapping(
        yaml.safe_load(build_configmap(owner, spec)["data"]["sidecar.yaml"])
    )
    assert config.api_keys_file == "/etc/ollama-operator/keys/keys"
    assert GatewaySettings.from_config(config).api_keys_file == config.api_keys_file


def test_auth_disabled_by_name_mounts_no_keys(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(gateway={"auth": {"mode": "Disabled"}})
    sts = build_statefulset(owner, spec, ctx)
    assert "api-keys" not in {v["name"] for v in sts["spec"]["template"]["spec"]["volumes"]}
    assert "api-keys" not in {m["name"] for m in containers(sts)["sidecar"]["volumeMounts"]}
    config = SidecarConfig.from_mapping(
        yaml.safe_load(build_configmap(owner, spec)["data"]["sidecar.yaml"])
    )
    assert config.api_keys_file is None
    assert config.gateway.auth.mode == "Disabled"


def test_generated_api_keys_secret_holds_one_key_line(owner: Owner) -> None:
    secret = build_api_keys_secret(owner, "oo_k3y")
    assert secret["metadata"]["name"] == "demo-api-keys"
    assert secret["metadata"]["ownerReferences"] == [owner.reference]
    assert secret["data"] == {"keys": "b29fazN5Cg=="}  # "oo_k3y\n"


def test_internal_secret_holds_given_token(owner: Owner) -> None:
    secret = build_internal_secret(owner, "t0k3n")
    assert secret["data"] == {"token": "dDBrM24="}
    assert secret["metadata"]["name"] == "demo-internal"


@pytest.mark.parametrize("replicas", [0, 1, 5])
def test_builders_are_deterministic(owner: Owner, ctx: BuildContext, replicas: int) -> None:
    spec = make_spec(replicas=replicas, models=[{"name": "m"}], gpu={"count": 1})
    assert build_children(owner, spec, ctx) == build_children(owner, spec, ctx)


def _rules_by_port(policy: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {rule["ports"][0]["port"]: rule for rule in policy["spec"]["ingress"]}


def test_network_policy_by_default_opens_the_gateway_and_admits_the_operator_to_admin(
    owner: Owner,
) -> None:
    ctx = BuildContext(operator_namespace="ollama-system")
    policy = build_network_policy(owner, make_spec(), ctx)
    assert policy is not None
    assert policy["apiVersion"] == "networking.k8s.io/v1"
    assert policy["metadata"]["ownerReferences"] == [owner.reference]
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "ollama", "app.kubernetes.io/instance": "demo"}
    }
    assert policy["spec"]["policyTypes"] == ["Ingress"], "egress stays open: models are pulled"
    rules = _rules_by_port(policy)
    assert sorted(rules) == [8080, 9090], "nothing else is reachable (Ollama is on loopback)"
    assert "from" not in rules[8080], "no ingress peers: the gateway is not narrowed"
    assert rules[9090]["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ollama-system"}}}
    ]
    assert rules[9090]["ports"] == [{"protocol": "TCP", "port": 9090}]


def test_network_policy_narrows_the_gateway_to_the_listed_peers(owner: Owner) -> None:
    peers = [
        {"namespaceSelector": {"matchLabels": {"team": "ml"}}, "podSelector": {}},
        {"podSelector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}},
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
    ]
    spec = make_spec(networkPolicy={"ingress": peers})
    policy = build_network_policy(owner, spec, BuildContext(operator_namespace="op"))
    assert policy is not None
    # Exactly as written: an empty podSelector (every pod) is kept, unset lists are left out.
    assert _rules_by_port(policy)[8080]["from"] == peers


def test_metrics_from_joins_the_operator_on_the_admin_port(owner: Owner) -> None:
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "mon"}}}
    spec = make_spec(networkPolicy={"metricsFrom": [monitoring]})
    policy = build_network_policy(owner, spec, BuildContext(operator_namespace="op"))
    assert policy is not None
    admin = _rules_by_port(policy)[9090]["from"]
    assert admin[1:] == [monitoring]
    assert admin[0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "op"}


def test_admin_port_closed_when_nobody_may_reach_it(owner: Owner) -> None:
    """An ingress rule with no ``from`` admits everyone: without any admin peer the rule
    must be absent, not empty."""
    policy = build_network_policy(owner, make_spec(), BuildContext(operator_namespace=None))
    assert policy is not None
    assert sorted(_rules_by_port(policy)) == [8080]


def test_network_policy_disabled_is_not_built(owner: Owner, ctx: BuildContext) -> None:
    spec = make_spec(networkPolicy={"enabled": False})
    assert build_network_policy(owner, spec, ctx) is None
    assert "NetworkPolicy" not in [c["kind"] for c in build_children(owner, spec, ctx)]


def test_network_policy_is_created_before_the_pods(owner: Owner, ctx: BuildContext) -> None:
    kinds = [c["kind"] for c in build_children(owner, make_spec(), ctx)]
    assert kinds.index("NetworkPolicy") < kinds.index("StatefulSet")

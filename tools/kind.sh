#!/usr/bin/env bash
# A kind cluster for machines with Docker (laptops), as an alternative to the
# kwok-based `make cluster-up`. Real kubelets, so the GPU nodes are faked by
# labelling, tainting and patching one worker's capacity.
#
# Needs `kind`, `kubectl` and a running Docker engine; writes its kubeconfig to
# $CACHE_DIR/kubeconfig-kind (the kwok cluster's $CACHE_DIR/kubeconfig is left alone).
set -euo pipefail

CACHE_DIR="${CACHE_DIR:-$HOME/.cache/ollama-operator}"
CLUSTER_NAME="${CLUSTER_NAME:-ollama-operator}"
KUBECONFIG_PATH="$CACHE_DIR/kubeconfig-kind"

log() { printf '[kind] %s\n' "$*" >&2; }
die() { printf '[kind] ERROR: %s\n' "$*" >&2; exit 1; }

if ! command -v kind >/dev/null 2>&1; then
	die "'kind' is not installed, so no kind cluster was created.
       Install kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) and Docker,
       or use 'make cluster-up', which needs neither (kwok + binaries built by 'make tools')."
fi
if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
	die "'kind' needs a running Docker engine ('docker info' failed); or use 'make cluster-up'"
fi

KUBECTL="$CACHE_DIR/bin/kubectl"
[[ -x "$KUBECTL" ]] || KUBECTL="$(command -v kubectl || true)"
[[ -n "$KUBECTL" ]] || die "no kubectl: run 'make tools' or install kubectl"
kubectl() { "$KUBECTL" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

mkdir -p "$CACHE_DIR"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
	log "kind cluster '$CLUSTER_NAME' already exists; reusing it"
	kind export kubeconfig --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_PATH"
else
	log "creating kind cluster '$CLUSTER_NAME' (1 control plane, 2 workers)"
	kind create cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_PATH" --wait 180s --config - <<'EOF'
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
  - role: worker
EOF
fi

# The last worker plays a one-GPU node: label, taint, and advertise nvidia.com/gpu
# in its status, as in the Kubernetes task "Advertise Extended Resources for a Node".
gpu_node="$(kubectl get nodes -l '!node-role.kubernetes.io/control-plane' -o name | sort | tail -n 1)"
gpu_node="${gpu_node#node/}"
kubectl label node "$gpu_node" nvidia.com/gpu.present=true nvidia.com/gpu.count=1 --overwrite >/dev/null
kubectl taint node "$gpu_node" nvidia.com/gpu=present:NoSchedule --overwrite >/dev/null
kubectl patch node "$gpu_node" --subresource=status --type=merge \
	-p '{"status":{"capacity":{"nvidia.com/gpu":"1"},"allocatable":{"nvidia.com/gpu":"1"}}}' >/dev/null
log "fake GPU node: $gpu_node (nvidia.com/gpu: 1, tainted nvidia.com/gpu=present:NoSchedule)"
log "export KUBECONFIG=$KUBECONFIG_PATH"

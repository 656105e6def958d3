#!/usr/bin/env bash
# A default StorageClass and a pool of pre-made PersistentVolumes, for a cluster
# without a provisioner: claims are bound by the real PV controller to these
# static volumes. Released volumes are recycled, so test runs and demos can
# create and delete claims again and again.
#
# usage: tools/cluster/storage.sh KUBECTL KUBECONFIG [COUNT] [LOCAL_DIR NODE]
#
# Without LOCAL_DIR (the kwok cluster): hostPath volumes that are never mounted
# (kwok plays the kubelet). With LOCAL_DIR and NODE (the real node): `local`
# volumes in LOCAL_DIR/<i>, pinned to NODE, which the kubelet mounts; a recycled
# one is wiped first, so a model an old test left cannot make a new pull look
# instant.
set -euo pipefail
KUBECTL=${1:?kubectl path}
KCFG=${2:?kubeconfig path}
COUNT=${3:-48}
LOCAL_DIR=${4:-}
NODE=${5:-}
k() { "$KUBECTL" --kubeconfig "$KCFG" "$@"; }

if [[ -n "$LOCAL_DIR" ]]; then
  [[ -n "$NODE" ]] || { echo "[storage] LOCAL_DIR needs NODE" >&2; exit 2; }
  pool=realnode prefix=local size=50Gi
else
  pool=local prefix=pool size=500Gi
fi

volume_source() {
  if [[ -n "$LOCAL_DIR" ]]; then
    mkdir -p "$LOCAL_DIR/$1"
    cat <<YAML
  local: {path: $LOCAL_DIR/$1}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE]}]
YAML
  else
    echo "  hostPath: {path: /var/lib/ollama-operator-pool/$1}"
  fi
}

{
  cat <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
  for i in $(seq 1 "$COUNT"); do
    cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $prefix-$i
  labels: {ollama.operator.dev/pool: $pool}
spec:
  capacity: {storage: $size}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
YAML
    volume_source "$i"
  done
} | k apply -f - >/dev/null

# Recycle: a Released volume becomes Available again once its claimRef is gone.
for pv in $(k get pv -l "ollama.operator.dev/pool=$pool" \
    -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
  if [[ -n "$LOCAL_DIR" ]]; then
    path="$(k get pv "$pv" -o jsonpath='{.spec.local.path}')"
    [[ "$path" == "$LOCAL_DIR/"* ]] || continue
    find "$path" -mindepth 1 -delete
  fi
  k patch pv "$pv" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null
done
echo "[storage] StorageClass standard (default) and $COUNT pooled volumes ready"

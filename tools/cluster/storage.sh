#!/usr/bin/env bash
# A default StorageClass and a pool of pre-made PersistentVolumes for the local
# cluster. kwok runs no volume plugin and there is no provisioner, so claims
# are bound by the real PV controller to these static volumes (nothing is ever
# mounted: kwok plays the kubelet). Released volumes are recycled, so test
# runs and demos can create and delete claims again and again.
#
# usage: tools/cluster/storage.sh KUBECTL KUBECONFIG [COUNT]
set -euo pipefail
KUBECTL=${1:?kubectl path}
KCFG=${2:?kubeconfig path}
COUNT=${3:-48}
k() { "$KUBECTL" --kubeconfig "$KCFG" "$@"; }

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
  name: pool-$i
  labels: {ollama.operator.dev/pool: local}
spec:
  capacity: {storage: 500Gi}
  accessModes: [ReadWriteOnce, ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  hostPath: {path: /var/lib/ollama-operator-pool/$i}
YAML
  done
} | k apply -f - >/dev/null

# Recycle: a Released volume becomes Available again once its claimRef is gone.
for pv in $(k get pv -l ollama.operator.dev/pool=local \
    -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}'); do
  k patch pv "$pv" --type json -p '[{"op":"remove","path":"/spec/claimRef"}]' >/dev/null
done
echo "[storage] StorageClass standard (default) and $COUNT pooled volumes ready"

#!/usr/bin/env bash
# make demo / make demo-down: the local cluster, the CRD, the operator in the
# background, and the basic sample, ending with `kubectl get ollama`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE_DIR=${CACHE_DIR:-$HOME/.cache/ollama-operator}
KUBECTL="$CACHE_DIR/bin/kubectl"
KCFG=${KUBECONFIG_DEMO:-$CACHE_DIR/kubeconfig}
VENV_BIN=${VENV_BIN:-$ROOT/.venv/bin}
PID_FILE="$CACHE_DIR/demo-operator.pid"
LOG_FILE="$CACHE_DIR/demo-operator.log"
NS=${DEMO_NAMESPACE:-ollama-demo}
k() { "$KUBECTL" --kubeconfig "$KCFG" "$@"; }

stop_operator() {
  if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")" && echo "[demo] operator stopped"
  fi
  rm -f "$PID_FILE"
}

up() {
  "$ROOT/tools/cluster.sh" up
  "$ROOT/tools/cluster/storage.sh" "$KUBECTL" "$KCFG"
  k apply --server-side --force-conflicts -f "$ROOT/crds" >/dev/null
  k wait --for=condition=Established crd/ollamaservers.ollama.operator.dev --timeout=60s >/dev/null
  stop_operator
  KUBECONFIG="$KCFG" nohup "$VENV_BIN/ollama-operator" run --liveness= --metrics-port=0 \
    >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  echo "[demo] operator running (pid $(cat "$PID_FILE"), log $LOG_FILE)"
  k create namespace "$NS" --dry-run=client -o yaml | k apply -f - >/dev/null
  k -n "$NS" apply -f "$ROOT/manifests/samples/ollamaserver-basic.yaml"
  echo "[demo] waiting for the OllamaServer to turn Ready ..."
  if ! k -n "$NS" wait --for=condition=Ready ollama/basic --timeout=120s >/dev/null; then
    echo "[demo] not Ready in time; operator log tail:" >&2
    tail -n 40 "$LOG_FILE" >&2
  fi
  echo
  echo "\$ kubectl get ollama -o wide"
  k -n "$NS" get ollama -o wide
  echo
  echo "\$ kubectl describe ollama basic"
  k -n "$NS" describe ollama basic
  echo
  echo "[demo] try: KUBECONFIG=$KCFG $KUBECTL -n $NS get ollama,statefulset,pods,svc"
  echo "[demo] stop: make demo-down"
}

down() {
  stop_operator
  if [[ -f "$KCFG" ]]; then
    k delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  echo "[demo] removed the demo namespace (the cluster stays: make cluster-down)"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# make demo / make demo-down.
#
# Where the real node can run (root, network namespaces, containerd: see
# tools/realnode.sh check), the demo is real: the chart installs the operator
# image, an OllamaServer pulls a real model from the registry in the cluster,
# and a request through a port-forward to its Service prints generated text.
# Elsewhere it says why and falls back to the kwok cluster, where the operator
# runs as a local process and no container runs.
#
# Either way the demo's operator watches only the demo namespace, so a demo
# left running never touches the objects `make test` creates.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE_DIR=${CACHE_DIR:-$HOME/.cache/ollama-operator}
KUBECTL="$CACHE_DIR/bin/kubectl"
HELM="$CACHE_DIR/bin/helm"
VENV_BIN=${VENV_BIN:-$ROOT/.venv/bin}
PID_FILE="$CACHE_DIR/demo-operator.pid"
LOG_FILE="$CACHE_DIR/demo-operator.log"
NS=${DEMO_NAMESPACE:-ollama-demo}
OPERATOR_NS=ollama-demo-operator
REAL_KCFG="$CACHE_DIR/realnode.kubeconfig"
KWOK_KCFG="$CACHE_DIR/kubeconfig"
SAMPLE_REAL="$ROOT/manifests/samples/ollamaserver-registry.yaml"
SAMPLE_KWOK="$ROOT/manifests/samples/ollamaserver-basic.yaml"
say() { printf '[demo] %s\n' "$*"; }

stop_operator() {
  if [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null; then
    kill "$(cat "$PID_FILE")" && say "operator stopped"
  fi
  rm -f "$PID_FILE"
}

show() { # <kubeconfig> <server name>
  local k=("$KUBECTL" --kubeconfig "$1" -n "$NS")
  echo
  echo "\$ kubectl get ollama -o wide"
  "${k[@]}" get ollama -o wide
  echo
  echo "\$ kubectl describe ollama $2"
  "${k[@]}" describe ollama "$2"
}

real_up() {
  "$ROOT/tools/realnode.sh" up
  local k=("$KUBECTL" --kubeconfig "$REAL_KCFG")
  "${k[@]}" create namespace "$OPERATOR_NS" --dry-run=client -o yaml | "${k[@]}" apply -f - >/dev/null
  "${k[@]}" create namespace "$NS" --dry-run=client -o yaml | "${k[@]}" apply -f - >/dev/null
  say "installing the chart (operator image ollama-operator:$(sed -n 's/^appVersion: *//p' "$ROOT/charts/ollama-operator/Chart.yaml" | tr -d '"'), watching $NS only)"
  KUBECONFIG="$REAL_KCFG" "$HELM" upgrade --install ollama-operator "$ROOT/charts/ollama-operator" \
    --namespace "$OPERATOR_NS" --set "watchNamespaces={$NS}" --set logFormat=plain \
    --wait --timeout 5m >/dev/null
  "${k[@]}" -n "$NS" apply -f "$SAMPLE_REAL"
  say "waiting for the model to be pulled and the server to turn Ready ..."
  if ! "${k[@]}" -n "$NS" wait --for=condition=Ready ollama/registry --timeout=600s >/dev/null; then
    say "not Ready in time:" >&2
    "${k[@]}" -n "$NS" describe ollama registry >&2 || true
    exit 1
  fi
  show "$REAL_KCFG" registry
  local key port
  key=$("${k[@]}" -n "$NS" get secret registry-api-keys -o jsonpath='{.data.keys}' | base64 -d | grep -v '^#' | head -n1)
  "${k[@]}" -n "$NS" port-forward --address 127.0.0.1 svc/registry :11434 >"$CACHE_DIR/demo-port-forward.log" 2>&1 &
  PORT_FORWARD_PID=$!
  trap 'kill "$PORT_FORWARD_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do
    port=$(sed -n 's/^Forwarding from 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$CACHE_DIR/demo-port-forward.log" | head -n1)
    [[ -n "$port" ]] && break
    sleep 0.2
  done
  [[ -n "$port" ]] || { say "port-forward did not start: $(cat "$CACHE_DIR/demo-port-forward.log")" >&2; exit 1; }
  echo
  echo "\$ kubectl -n $NS port-forward svc/registry 11434 &"
  echo "\$ curl -s localhost:11434/api/generate -H \"Authorization: Bearer \$KEY\" \\"
  echo "    -d '{\"model\": \"10.96.0.50:5000/library/gemma3:270m\", \"prompt\": \"Why is the sky blue? One sentence.\", \"stream\": false}'"
  curl -s "127.0.0.1:$port/api/generate" -H "Authorization: Bearer $key" \
    -d '{"model": "10.96.0.50:5000/library/gemma3:270m", "prompt": "Why is the sky blue? One sentence.", "stream": false, "options": {"num_predict": 48}}' \
    | "$VENV_BIN/python" -c 'import json,sys; b=json.load(sys.stdin); print(b["response"].strip()); print("(%d tokens in %.1f s)" % (b["eval_count"], b["total_duration"] / 1e9))'
  echo
  say "try: export KUBECONFIG=$REAL_KCFG; $KUBECTL -n $NS get ollama,statefulset,pods,svc"
  say "stop: make demo-down (the node stays: make realnode-down)"
}

kwok_up() {
  "$ROOT/tools/cluster.sh" up
  "$ROOT/tools/cluster/storage.sh" "$KUBECTL" "$KWOK_KCFG"
  local k=("$KUBECTL" --kubeconfig "$KWOK_KCFG")
  "${k[@]}" apply --server-side --force-conflicts -f "$ROOT/crds" >/dev/null
  "${k[@]}" wait --for=condition=Established crd/ollamaservers.ollama.operator.dev --timeout=60s >/dev/null
  stop_operator
  "${k[@]}" create namespace "$NS" --dry-run=client -o yaml | "${k[@]}" apply -f - >/dev/null
  KUBECONFIG="$KWOK_KCFG" nohup "$VENV_BIN/ollama-operator" run --liveness= --metrics-port=0 \
    --namespace "$NS" >"$LOG_FILE" 2>&1 &
  echo $! >"$PID_FILE"
  say "operator running (pid $(cat "$PID_FILE"), watching $NS only, log $LOG_FILE)"
  "${k[@]}" -n "$NS" apply -f "$SAMPLE_KWOK"
  say "waiting for the OllamaServer to turn Ready ..."
  if ! "${k[@]}" -n "$NS" wait --for=condition=Ready ollama/basic --timeout=120s >/dev/null; then
    say "not Ready in time; operator log tail:" >&2
    tail -n 40 "$LOG_FILE" >&2
  fi
  show "$KWOK_KCFG" basic
  echo
  say "try: KUBECONFIG=$KWOK_KCFG $KUBECTL -n $NS get ollama,statefulset,pods,svc"
  say "stop: make demo-down"
}

up() {
  local why
  if [[ "${DEMO_RUNTIME:-}" == kwok ]]; then
    kwok_up
  elif why=$("$ROOT/tools/realnode.sh" check 2>&1); then
    real_up
  else
    say "the real node cannot run on this machine, so this demo runs on the kwok cluster (no container runs):"
    printf '%s\n' "$why" >&2
    kwok_up
  fi
}

down() {
  stop_operator
  local cfg
  for cfg in "$KWOK_KCFG" "$REAL_KCFG"; do
    [[ -f "$cfg" ]] || continue
    "$KUBECTL" --kubeconfig "$cfg" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  done
  if [[ -f "$REAL_KCFG" ]]; then
    KUBECONFIG="$REAL_KCFG" "$HELM" uninstall ollama-operator --namespace "$OPERATOR_NS" >/dev/null 2>&1 || true
    "$KUBECTL" --kubeconfig "$REAL_KCFG" delete namespace "$OPERATOR_NS" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  say "removed the demo (the clusters stay: make cluster-down, make realnode-down)"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac

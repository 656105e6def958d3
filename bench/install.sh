#!/usr/bin/env bash
# What `make bench` needs beyond the project's virtualenv, installed once; a second run
# checks and does nothing:
#   - wrk (the load generator) and nginx (the reference proxy): the distribution's packages;
#   - LiteLLM's proxy: PyPI `litellm[proxy]`, pinned, in a virtualenv of its own under
#     $CACHE_DIR (it is heavy and must not touch the project's dependencies).
# A LiteLLM that will not install is not fatal: the log stays in $LITELLM_INSTALL_LOG,
# the benchmark records the error in docs/benchmarks.md and measures the others.
set -euo pipefail

CACHE_DIR="${CACHE_DIR:-$HOME/.cache/ollama-operator}"
LITELLM_VENV="${LITELLM_VENV:-$CACHE_DIR/litellm-venv}"
LITELLM_SPEC="${LITELLM_SPEC:-litellm[proxy]==1.108.7}"
LITELLM_INSTALL_LOG="${LITELLM_INSTALL_LOG:-$CACHE_DIR/litellm-install.log}"
BENCH_LITELLM="${BENCH_LITELLM:-1}"

log() { printf '[bench] %s\n' "$*" >&2; }

have() { command -v "$1" >/dev/null 2>&1 || [[ -x "/usr/sbin/$1" ]]; }

if ! have wrk || ! have nginx; then
	if [[ $(id -u) -eq 0 ]]; then
		sudo=()
	elif command -v sudo >/dev/null 2>&1; then
		sudo=(sudo)
	else
		log "wrk and nginx are needed: install the packages wrk and nginx-light (or nginx)"
		exit 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		log "no apt-get here: install wrk and nginx with this system's package manager"
		exit 1
	fi
	log "installing wrk and nginx-light (apt)"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
		wrk nginx-light >/dev/null
fi

case "$BENCH_LITELLM" in 0 | false | no) exit 0 ;; esac
if [[ -x "$LITELLM_VENV/bin/litellm" ]] && "$LITELLM_VENV/bin/python" -c 'import litellm' 2>/dev/null; then
	exit 0
fi
mkdir -p "$CACHE_DIR"
log "installing $LITELLM_SPEC into $LITELLM_VENV (log: $LITELLM_INSTALL_LOG)"
python="${PYTHON:-python3}"
if ! { "$python" -m venv "$LITELLM_VENV" &&
	"$LITELLM_VENV/bin/pip" install -q --upgrade pip &&
	"$LITELLM_VENV/bin/pip" install -q "$LITELLM_SPEC"; } >"$LITELLM_INSTALL_LOG" 2>&1; then
	log "LiteLLM did not install; the benchmark goes on without it (see $LITELLM_INSTALL_LOG)"
	rm -f "$LITELLM_VENV/bin/litellm"
fi
exit 0

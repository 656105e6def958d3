# ollama-operator — every target installs what it needs itself.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Expensive builds (Kubernetes binaries, etcd, kwok, helm) are cached outside the
# checkout, keyed by version, so a warm machine skips them.
CACHE_DIR ?= $(HOME)/.cache/ollama-operator
export CACHE_DIR
PYTEST_ARGS ?=

.PHONY: help venv test test-unit test-integration lint fmt crds crds-check run demo demo-down bench clean

# tools, cluster-up, cluster-down, kind-up, ollama: the local cluster (tools/tools.mk).
-include tools/tools.mk
# bench: benchmarks -> docs/benchmarks.md (bench/bench.mk); not part of `make test`.
-include bench/bench.mk

help:
	@echo "make demo         local cluster + CRDs + operator + a sample, then kubectl get ollama"
	@echo "make test         unit + integration tests (installs everything it needs)"
	@echo "make lint         ruff + mypy --strict"
	@echo "make crds         regenerate crds/ from ollama_operator.api"
	@echo "make run          run the controller against \$$KUBECONFIG"
	@echo "make tools        build/install the local cluster's binaries into \$$CACHE_DIR"
	@echo "make cluster-up   start the local cluster (kwokctl, binary runtime)"
	@echo "make images       build the operator, test Ollama, pause and registry images (buildah)"
	@echo "make realnode-up  start the real node: real containers on a kubelet (root)"
	@echo "make bench        benchmarks -> docs/benchmarks.md"

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,fast]'
	touch $@

# Everything in one pytest run (one summary line): unit, integration, e2e, real node.
# The real node (tools/realnode.sh) needs root; elsewhere its tests are skipped with the
# reason, except under CI, where it must run.
test: venv crds-check tools ollama
	$(if $(KUBECONFIG),,$(MAKE) cluster-up)
	@tools/realnode.sh test-up
	$(BIN)/pytest tests $(PYTEST_ARGS)

test-unit: venv
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

# Starts (or reuses) the local cluster; with KUBECONFIG set, uses that cluster.
test-integration: venv
	$(if $(KUBECONFIG),,$(MAKE) cluster-up)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check operator tests bench
	$(BIN)/ruff format --check operator tests bench
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format operator tests bench
	$(BIN)/ruff check --fix operator tests bench

# The CRD is generated once and kept in every place that ships it.
CRD_DIRS := crds manifests/crds charts/ollama-operator/crds

crds: venv
	for d in $(CRD_DIRS); do $(BIN)/ollama-operator crds --output-dir $$d || exit 1; done

crds-check: venv
	for d in $(CRD_DIRS); do $(BIN)/ollama-operator crds --check --output-dir $$d || exit 1; done

run: venv
	$(BIN)/ollama-operator run

## demo: local cluster + CRDs + operator + the basic sample, then kubectl get ollama
demo: venv cluster-up ollama
	VENV_BIN=$(abspath $(BIN)) tools/demo.sh up

demo-down:
	tools/demo.sh down

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

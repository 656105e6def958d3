#!/usr/bin/env bash
# Build the local cluster's binaries from Go modules, offline apart from the Go
# module proxy, into $CACHE_DIR/bin/<name>-<version>.
#
# Each wrapper module under tools/ pins one upstream release in its go.mod and
# go.sum (committed), so a build is reproducible. The Go module and build caches
# live under $CACHE_DIR/go, so a warm machine rebuilds nothing: when every
# binary of a given version is already there, this script only says so.
#
# Usage: tools/build.sh            build what is missing
#        tools/build.sh --print    print the binary paths it would use
#        FORCE=1 tools/build.sh    rebuild everything
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/ollama-operator}"
BIN_DIR="$CACHE_DIR/bin"
FORCE="${FORCE:-0}"

log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf '[tools] ERROR: %s\n' "$*" >&2; exit 1; }

# The version a wrapper module requires, read from its go.mod (no network).
module_version() { # <wrapper dir> <module path>
	awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$TOOLS_DIR/$1/go.mod"
}

K8S_VERSION="$(module_version k8s k8s.io/kubernetes)"
ETCD_VERSION="$(module_version etcd go.etcd.io/etcd/server/v3)"
KWOK_VERSION="$(module_version kwok sigs.k8s.io/kwok)"
HELM_VERSION="$(module_version helm helm.sh/helm/v3)"
HELM_K8S_VERSION="$(module_version helm k8s.io/client-go)" # v0.MINOR.PATCH
REGISTRY_VERSION="$(module_version registry github.com/distribution/distribution/v3)"
for v in K8S_VERSION ETCD_VERSION KWOK_VERSION HELM_VERSION HELM_K8S_VERSION REGISTRY_VERSION; do
	[[ -n "${!v}" ]] || die "could not read $v from the go.mod files under $TOOLS_DIR"
done

# name -> "<wrapper dir> <version> <package>"
declare -A TOOL=(
	[etcd]="etcd $ETCD_VERSION go.etcd.io/etcd/server/v3"
	[kube-apiserver]="k8s $K8S_VERSION k8s.io/kubernetes/cmd/kube-apiserver"
	[kube-controller-manager]="k8s $K8S_VERSION k8s.io/kubernetes/cmd/kube-controller-manager"
	[kube-scheduler]="k8s $K8S_VERSION k8s.io/kubernetes/cmd/kube-scheduler"
	[kubectl]="k8s $K8S_VERSION k8s.io/kubernetes/cmd/kubectl"
	# The real node's kubelet and kube-proxy (tools/realnode.sh), same release.
	[kubelet]="k8s $K8S_VERSION k8s.io/kubernetes/cmd/kubelet"
	[kube-proxy]="k8s $K8S_VERSION k8s.io/kubernetes/cmd/kube-proxy"
	# The OCI registry that holds the test model on the real node.
	[registry]="registry $REGISTRY_VERSION github.com/distribution/distribution/v3/cmd/registry"
	[kwok]="kwok $KWOK_VERSION sigs.k8s.io/kwok/cmd/kwok"
	[kwokctl]="kwok $KWOK_VERSION sigs.k8s.io/kwok/cmd/kwokctl"
	[helm]="helm $HELM_VERSION helm.sh/helm/v3/cmd/helm"
)
ORDER=(etcd kwok kwokctl helm registry kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

binary_path() { # <name>
	local dir version pkg
	read -r dir version pkg <<<"${TOOL[$1]}"
	printf '%s/%s-%s\n' "$BIN_DIR" "$1" "$version"
}

if [[ "${1:-}" == "--print" ]]; then
	for name in "${ORDER[@]}"; do printf '%s=%s\n' "$name" "$(binary_path "$name")"; done
	exit 0
fi

# Linker flags per wrapper: strip symbols, and stamp the versions the upstream
# release builds would carry (kwokctl and kubectl read the Kubernetes one).
ldflags_for() { # <wrapper dir>
	local flags="-s -w"
	case "$1" in
	k8s)
		local minor="${K8S_VERSION#v1.}"
		minor="${minor%%.*}"
		local p
		for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
			flags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
			flags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
		done
		;;
	helm)
		local hminor="${HELM_K8S_VERSION#v0.}"
		hminor="${hminor%%.*}"
		flags+=" -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
		flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
		flags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
		flags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$hminor"
		flags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
		flags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$hminor"
		;;
	esac
	printf '%s' "$flags"
}

# Which binaries are missing (or all of them with FORCE=1)?
missing=()
for name in "${ORDER[@]}"; do
	if [[ "$FORCE" == "1" || ! -x "$(binary_path "$name")" ]]; then missing+=("$name"); fi
done

link_stable_names() {
	# Stable, unversioned names for scripts and tests: bin/kubectl -> kubectl-v1.34.4.
	local name
	for name in "${ORDER[@]}"; do
		ln -sfn "$(basename "$(binary_path "$name")")" "$BIN_DIR/$name"
	done
}

if [[ ${#missing[@]} -eq 0 ]]; then
	link_stable_names
	log "all tools are up to date in $BIN_DIR (kubernetes $K8S_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION, helm $HELM_VERSION); nothing to do"
	exit 0
fi

command -v go >/dev/null 2>&1 || die "'go' is not on PATH; install Go 1.26 or newer (https://go.dev/doc/install) and retry"
mkdir -p "$BIN_DIR" "$CACHE_DIR/go/mod" "$CACHE_DIR/go/build"

# One build at a time per cache directory.
exec 9>"$CACHE_DIR/.tools.lock"
if ! flock -n 9; then
	log "another build holds $CACHE_DIR/.tools.lock; waiting for it"
	flock 9
fi

export GOMODCACHE="$CACHE_DIR/go/mod"
export GOCACHE="$CACHE_DIR/go/build"
export CGO_ENABLED=0
# go.mod/go.sum are committed and complete: never rewrite them, never stamp VCS info.
export GOFLAGS="-mod=readonly -buildvcs=false -trimpath"
export GOWORK=off

log "go: $(go version) (GOMODCACHE=$GOMODCACHE, GOCACHE=$GOCACHE)"
log "building: ${missing[*]}"
start_all=$SECONDS

# Build per wrapper module, every missing package of it in one 'go build' (so
# the shared dependencies compile once, in parallel).
for dir in etcd kwok helm registry k8s; do
	pkgs=()
	names=()
	for name in "${missing[@]}"; do
		read -r d version pkg <<<"${TOOL[$name]}"
		if [[ "$d" == "$dir" ]]; then
			pkgs+=("$pkg")
			names+=("$name")
		fi
	done
	[[ ${#pkgs[@]} -gt 0 ]] || continue

	out="$(mktemp -d "$BIN_DIR/.build-$dir.XXXXXX")"
	trap 'rm -rf "$out"' EXIT
	start=$SECONDS
	log "[$dir] downloading modules"
	(cd "$TOOLS_DIR/$dir" && go mod download) || die "[$dir] 'go mod download' failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
	log "[$dir] go build ${pkgs[*]}"
	if [[ ${#pkgs[@]} -eq 1 ]]; then
		(cd "$TOOLS_DIR/$dir" && go build -ldflags "$(ldflags_for "$dir")" -o "$out/${names[0]}" "${pkgs[0]}")
	else
		# With several packages, -o <dir>/ names each binary after its package's last element.
		(cd "$TOOLS_DIR/$dir" && go build -ldflags "$(ldflags_for "$dir")" -o "$out/" "${pkgs[@]}")
	fi
	for i in "${!names[@]}"; do
		built="$out/${names[$i]}"
		[[ -x "$built" ]] || built="$out/$(basename "${pkgs[$i]}")"
		[[ -x "$built" ]] || die "[$dir] expected a binary for ${pkgs[$i]} in $out"
		mv -f "$built" "$(binary_path "${names[$i]}")"
	done
	rm -rf "$out"
	trap - EXIT
	log "[$dir] done in $((SECONDS - start))s"
done

link_stable_names
log "built ${missing[*]} in $((SECONDS - start_all))s"
for name in "${ORDER[@]}"; do
	printf '  %-24s %s\n' "$name" "$(binary_path "$name")" >&2
done
log "disk use: bin $(du -sh "$BIN_DIR" | cut -f1), go caches $(du -sh "$CACHE_DIR/go" | cut -f1)"

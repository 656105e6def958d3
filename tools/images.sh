#!/usr/bin/env bash
# Build the container images of the real-node tests, fully offline (apart from
# Debian's package mirror and PyPI), without a container engine or registry:
#
#   docker.io/library/ollama-operator:<pyproject version>  the project's Dockerfile, as it is
#   docker.io/ollama/ollama:<version>                      CPU Ollama built by tools/ollama.sh
#   localhost/ollama-operator/pause:1.0                    tools/pause, a static Go binary
#   localhost/ollama-operator/registry:<version>           the distribution registry of tools/build.sh
#
# plus a stand-in docker.io/library/python:3.11-slim-bookworm (Debian 12's
# python3 is 3.11) made with mmdebstrap, so that the Dockerfile's FROM resolves
# locally and nothing is ever pulled from Docker Hub.
#
# Every runtime image is written as a docker-archive tar under
# $CACHE_DIR/images/, named by a hash of everything that goes into it (the
# Dockerfile and build context, the binary, the pause source, the base's
# package list, this script), so a change rebuilds exactly what it affects and
# a warm run only hashes its inputs and says so. The archives keep their image
# name through `ctr -n k8s.io images import`. buildah works in its own storage
# under $CACHE_DIR/containers; the host's /var/lib/containers is never used.
#
# Networking: RUN steps use the host's network namespace (--network host).
# buildah's default ("private") RUN networking would set up a bridge, switch
# on net.ipv4.ip_forward and add netfilter rules on the host; this script never
# changes the host's forwarding, routes, netfilter rules or resolv.conf.
#
# Usage: tools/images.sh                      build what is missing
#        tools/images.sh --print              print "<ref> <archive>" per runtime image
#        tools/images.sh --push HOST[:PORT]/PREFIX [--with-ollama]
#                                             copy the operator (and the test Ollama) image
#                                             to a registry with skopeo; TLS_VERIFY=false
#                                             for a plain-HTTP or self-signed registry
#        tools/images.sh --verify             import every archive into a throwaway
#                                             containerd and check the names it lists
# Environment: CACHE_DIR (default ~/.cache/ollama-operator), FORCE=1 (rebuild
#        everything), STORAGE_DRIVER (overlay or vfs; chosen once per storage),
#        WAIT_FOR_BINARIES=<seconds> (wait that long for tools/build.sh and
#        tools/ollama.sh running elsewhere to produce their binaries).
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT_DIR="$(dirname "$TOOLS_DIR")"
SELF="$TOOLS_DIR/$(basename "${BASH_SOURCE[0]}")"
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/ollama-operator}"
IMAGES_DIR="$CACHE_DIR/images"
BASES_DIR="$IMAGES_DIR/bases"
STORE_DIR="$CACHE_DIR/containers"
FORCE="${FORCE:-0}"
TLS_VERIFY="${TLS_VERIFY:-true}"
WAIT_FOR_BINARIES="${WAIT_FOR_BINARIES:-0}"

log() { printf '[images] %s\n' "$*" >&2; }
die() {
	printf '[images] ERROR: %s\n' "$*" >&2
	exit 1
}

# ---------------------------------------------------------------------------
# What to build: names and versions, each read from the one place that owns it.
# ---------------------------------------------------------------------------

# The operator's version is pyproject.toml's; the chart's appVersion must agree
# (it is the chart's default image tag).
OPERATOR_VERSION="$(awk '/^\[/ { p = ($0 == "[project]") } p && /^version *=/ { gsub(/[" ]/, "", $0); sub(/^version=/, ""); print; exit }' "$ROOT_DIR/pyproject.toml")"
[[ -n "$OPERATOR_VERSION" ]] || die "could not read [project].version from $ROOT_DIR/pyproject.toml"
CHART_APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\} *$/\1/p' "$ROOT_DIR/charts/ollama-operator/Chart.yaml")"
[[ "$CHART_APP_VERSION" == "$OPERATOR_VERSION" ]] ||
	die "pyproject.toml says version $OPERATOR_VERSION but charts/ollama-operator/Chart.yaml says appVersion '$CHART_APP_VERSION'; make them agree"
OPERATOR_REF="docker.io/library/ollama-operator:$OPERATOR_VERSION"

# The test Ollama: the binary (and its version) come from tools/ollama.sh, the
# image name from the operator's DEFAULT_IMAGE, so pods that do not set
# spec.image get exactly this image.
SPEC_PY="$ROOT_DIR/operator/ollama_operator/api/spec.py"
OLLAMA_BIN="$("$TOOLS_DIR/ollama.sh" --print | sed -n 's/^ollama=//p')"
[[ -n "$OLLAMA_BIN" ]] || die "tools/ollama.sh --print named no ollama binary"
OLLAMA_VERSION="${OLLAMA_BIN##*/ollama-v}"
SPEC_OLLAMA_VERSION="$(sed -n 's/^OLLAMA_VERSION = "\(.*\)"$/\1/p' "$SPEC_PY")"
SPEC_OLLAMA_REPO="$(sed -n 's/^DEFAULT_IMAGE = f"\([^:]*\):{OLLAMA_VERSION}"$/\1/p' "$SPEC_PY")"
[[ -n "$SPEC_OLLAMA_REPO" ]] || die "could not read DEFAULT_IMAGE from $SPEC_PY"
[[ "$SPEC_OLLAMA_VERSION" == "$OLLAMA_VERSION" ]] ||
	die "tools/ollama.sh builds Ollama $OLLAMA_VERSION but $SPEC_PY defaults to $SPEC_OLLAMA_VERSION; make them agree"
OLLAMA_REF="docker.io/$SPEC_OLLAMA_REPO:$OLLAMA_VERSION"

# The registry binary and its version come from tools/build.sh.
REGISTRY_BIN="$("$TOOLS_DIR/build.sh" --print | sed -n 's/^registry=//p')"
[[ -n "$REGISTRY_BIN" ]] || die "tools/build.sh --print named no registry binary"
REGISTRY_VERSION="${REGISTRY_BIN##*/registry-v}"
REGISTRY_REF="localhost/ollama-operator/registry:$REGISTRY_VERSION"

PAUSE_SRC="$TOOLS_DIR/pause"
PAUSE_REF="localhost/ollama-operator/pause:1.0"

# The Dockerfile's base image (every stage uses the same one), fully qualified
# the way buildah stores it: python:3.11-slim-bookworm -> docker.io/library/...
qualify() { # <image reference as written in a FROM line>
	local ref="$1" first="${1%%/*}"
	if [[ "$ref" != */* ]]; then
		printf 'docker.io/library/%s\n' "$ref"
	elif [[ "$first" != *.* && "$first" != *:* && "$first" != localhost ]]; then
		printf 'docker.io/%s\n' "$ref"
	else
		printf '%s\n' "$ref"
	fi
}
mapfile -t dockerfile_bases < <(awk 'toupper($1) == "FROM" { print $2 }' "$ROOT_DIR/Dockerfile" | sort -u)
[[ ${#dockerfile_bases[@]} -eq 1 ]] ||
	die "expected one base image in the Dockerfile's FROM lines, found: ${dockerfile_bases[*]:-none}"
PYTHON_BASE_REF="$(qualify "${dockerfile_bases[0]}")"

# The two Debian roots. minbase is the smallest variant that still has apt and
# dpkg (like the python slim images). The Ollama root gets what `ldd` lists for
# the cgo binary (libstdc++ and libgcc_s beyond libc; checked at build time).
DEBIAN_SUITE=bookworm
DEBIAN_MIRRORS=(
	"deb http://deb.debian.org/debian $DEBIAN_SUITE main"
	"deb http://deb.debian.org/debian $DEBIAN_SUITE-updates main"
	"deb http://deb.debian.org/debian-security $DEBIAN_SUITE-security main"
)
PYTHON_BASE_PACKAGES="python3,python3-venv,python-is-python3,ca-certificates"
OLLAMA_BASE_PACKAGES="ca-certificates,libstdc++6,libgcc-s1"
# Options that shape the root, part of its cache key: merged /usr through the
# debootstrap-style hook (the usrmerge package would drag in perl), no docs,
# man pages or translations (about 50 MB), and no /dev (the runtime makes it).
MMDEBSTRAP_OPTS=(
	--variant=minbase --mode=root --format=tar --skip=output/dev
	--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
	--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
	--dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias'
)
MERGED_USR_HOOK=/usr/share/mmdebstrap/hooks/merged-usr
# Host apt options the mirror needs (e.g. snapshot mirrors with expired Release
# files); passed to mmdebstrap, removed from the image afterwards.
APT_OPTION_FILES=()
[[ -f /etc/apt/apt.conf.d/99artifact-registry ]] && APT_OPTION_FILES+=(/etc/apt/apt.conf.d/99artifact-registry)

# The registry's configuration, baked into its image: filesystem storage, plain
# HTTP on :5000 (the real node publishes it on 127.0.0.1 only), deletes allowed
# so tests can clean up, and access logs on stdout (combined log format, with
# the bytes of every response, so what a pull served can be read off the log).
REGISTRY_CONFIG='version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: /var/lib/registry
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: :5000
  # Ollama (through at least 0.11.4) takes a blob'"'"'s download address from the Location
  # header of its first GET and refuses a registry that serves the blob directly ("http:
  # no Location header in response"), as registry.ollama.ai always redirects to its CDN.
  # A fragment-only Location resolves to the request'"'"'s own URL: pulls then read the blob
  # from this registry. Handlers that set their own Location (uploads) replace it.
  headers:
    Location: ["#blob"]
'

# ---------------------------------------------------------------------------
# Content keys
# ---------------------------------------------------------------------------

sha() { sha256sum | cut -c1-16; }

# "<sha256>  <path relative to the repository>" for each file, in a fixed order.
file_sums() { # <file>...
	local f
	for f in "$@"; do
		[[ -f "$f" ]] || die "input file missing: $f"
	done
	(cd "$ROOT_DIR" && sha256sum -- "${@#"$ROOT_DIR"/}")
}

# The operator/ tree as the build context sees it: .dockerignore drops
# bytecode and egg-info, so they must not change the key either.
operator_tree() {
	(cd "$ROOT_DIR" && find operator -type f \
		! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 |
		LC_ALL=C sort -z | xargs -0 sha256sum --)
}

base_key() { # <comma-separated packages>
	printf '%s\n' "$DEBIAN_SUITE" "${DEBIAN_MIRRORS[@]}" "$1" "${MMDEBSTRAP_OPTS[@]}" | sha
}
PYTHON_BASE_KEY="$(base_key "$PYTHON_BASE_PACKAGES")"
OLLAMA_BASE_KEY="$(base_key "$OLLAMA_BASE_PACKAGES")"
PYTHON_BASE_TAR="$BASES_DIR/python-$DEBIAN_SUITE-$PYTHON_BASE_KEY.tar"
OLLAMA_BASE_TAR="$BASES_DIR/ollama-$DEBIAN_SUITE-$OLLAMA_BASE_KEY.tar"

# The binaries may still be being built by tools/build.sh or tools/ollama.sh
# in another process; never start a second build of them from here.
wait_for_binary() { # <path> <how to build it>
	local deadline=$((SECONDS + WAIT_FOR_BINARIES))
	if [[ ! -x "$1" && "$WAIT_FOR_BINARIES" -gt 0 ]]; then
		log "waiting up to ${WAIT_FOR_BINARIES}s for $1"
		while [[ ! -x "$1" && $SECONDS -lt $deadline ]]; do sleep 2; done
	fi
	[[ -x "$1" ]] || die "$1 is missing: build it with $2 first (or set WAIT_FOR_BINARIES=<seconds> while it is being built)"
}
wait_for_binary "$OLLAMA_BIN" "'make ollama' (tools/ollama.sh)"
wait_for_binary "$REGISTRY_BIN" "'make tools' (tools/build.sh)"

# The sha256 of a big binary, remembered by its inode, size and times: a warm
# run then reads no binary (tools/build.sh and tools/ollama.sh move new builds
# into place, so a rebuild is a new inode).
binary_sum() { # <file>
	local id memo
	id="$(stat -c '%d:%i:%s:%.9Y:%.9Z' "$1")"
	memo="$IMAGES_DIR/.sums/$(basename "$1")"
	if [[ -f "$memo" && "$(sed -n 1p "$memo")" == "$id" ]]; then
		sed -n 2p "$memo"
		return
	fi
	local sum
	sum="$(sha256sum <"$1" | cut -d' ' -f1)"
	if mkdir -p "$IMAGES_DIR/.sums" 2>/dev/null; then
		{ printf '%s\n%s\n' "$id" "$sum" >"$memo.$$" && mv -f "$memo.$$" "$memo"; } 2>/dev/null || true
	fi
	printf '%s\n' "$sum"
}

SCRIPT_SUM="$(sha256sum "$SELF" | cut -d' ' -f1)"
OPERATOR_KEY="$( {
	echo "$SCRIPT_SUM" "$PYTHON_BASE_KEY"
	file_sums "$ROOT_DIR/Dockerfile" "$ROOT_DIR/.dockerignore" "$ROOT_DIR/pyproject.toml" "$ROOT_DIR/README.md"
	operator_tree
} | sha)"
OLLAMA_KEY="$( {
	echo "$SCRIPT_SUM" "$OLLAMA_BASE_KEY" "$OLLAMA_REF"
	binary_sum "$OLLAMA_BIN"
} | sha)"
PAUSE_KEY="$( {
	echo "$SCRIPT_SUM" "$PAUSE_REF"
	file_sums "$PAUSE_SRC/go.mod" "$PAUSE_SRC/main.go"
} | sha)"
REGISTRY_KEY="$( {
	echo "$SCRIPT_SUM" "$REGISTRY_REF"
	binary_sum "$REGISTRY_BIN"
} | sha)"

OPERATOR_TAR="$IMAGES_DIR/operator-$OPERATOR_VERSION-$OPERATOR_KEY.tar"
OLLAMA_TAR="$IMAGES_DIR/ollama-$OLLAMA_VERSION-$OLLAMA_KEY.tar"
PAUSE_TAR="$IMAGES_DIR/pause-1.0-$PAUSE_KEY.tar"
REGISTRY_TAR="$IMAGES_DIR/registry-$REGISTRY_VERSION-$REGISTRY_KEY.tar"

# name ref archive, in the order --print lists them.
IMAGES=(
	"operator $OPERATOR_REF $OPERATOR_TAR"
	"ollama $OLLAMA_REF $OLLAMA_TAR"
	"pause $PAUSE_REF $PAUSE_TAR"
	"registry $REGISTRY_REF $REGISTRY_TAR"
)

print_images() {
	local name ref tar
	for entry in "${IMAGES[@]}"; do
		read -r name ref tar <<<"$entry"
		printf '%s %s\n' "$ref" "$tar"
	done
}

missing_images() {
	local name ref tar
	for entry in "${IMAGES[@]}"; do
		read -r name ref tar <<<"$entry"
		if [[ "$FORCE" == "1" || ! -s "$tar" ]]; then printf '%s\n' "$name"; fi
	done
}

# ---------------------------------------------------------------------------
# Tools, storage and helpers for the cold path
# ---------------------------------------------------------------------------

APT_UPDATED=0
ensure_commands() { # <command>=<debian package>...
	local pair cmd pkgs=()
	for pair in "$@"; do
		cmd="${pair%%=*}"
		type -P "$cmd" >/dev/null 2>&1 || pkgs+=("${pair#*=}") # the binary, not a wrapper function
	done
	[[ ${#pkgs[@]} -gt 0 ]] || return 0
	command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get to install them with; install them and retry"
	log "installing ${pkgs[*]} with apt-get"
	if [[ "$APT_UPDATED" == 0 ]]; then
		apt-get update -qq || die "apt-get update failed"
		APT_UPDATED=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null ||
		die "apt-get install ${pkgs[*]} failed"
}

elapsed() { printf '%d' $((SECONDS - $1)); }

# buildah's configuration, all of it under $STORE_DIR: storage (so the host's
# /var/lib/containers is untouched), registries (short names resolve to
# docker.io, and nothing is pulled anyway), a signature policy for local
# copies, and host networking as the default for anything that runs.
setup_storage() {
	mkdir -p "$STORE_DIR/tmp"
	local driver="${STORAGE_DRIVER:-}"
	if [[ -f "$STORE_DIR/driver" ]]; then
		# The driver cannot change once the storage holds layers.
		driver="$(cat "$STORE_DIR/driver")"
	elif [[ -z "$driver" ]]; then
		# Native overlay works for root on ext4/xfs; on overlay or tmpfs
		# (inside a container) it does not, and vfs (full copies) does.
		case "$(stat -f -c %T "$STORE_DIR")" in
		overlayfs | tmpfs) driver=vfs ;;
		*) if grep -qw overlay /proc/filesystems; then driver=overlay; else driver=vfs; fi ;;
		esac
	fi
	printf '%s\n' "$driver" >"$STORE_DIR/driver"
	cat >"$STORE_DIR/storage.conf" <<-EOF
		[storage]
		driver = "$driver"
		graphroot = "$STORE_DIR/storage"
		runroot = "$STORE_DIR/run"
	EOF
	cat >"$STORE_DIR/registries.conf" <<-'EOF'
		unqualified-search-registries = ["docker.io"]
		short-name-mode = "permissive"
	EOF
	# Networks: host by default; the CNI backend with its (never used) config
	# under $STORE_DIR, because the netavark backend keeps state in
	# /etc/containers/networks and /run/containers/networks on the host.
	cat >"$STORE_DIR/containers.conf" <<-EOF
		[containers]
		netns = "host"
		[engine]
		image_copy_tmp_dir = "$STORE_DIR/tmp"
		[network]
		network_backend = "cni"
		network_config_dir = "$STORE_DIR/networks"
	EOF
	printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$STORE_DIR/policy.json"
	export CONTAINERS_STORAGE_CONF="$STORE_DIR/storage.conf"
	export CONTAINERS_REGISTRIES_CONF="$STORE_DIR/registries.conf"
	export CONTAINERS_CONF="$STORE_DIR/containers.conf"
	export BUILDAH_ISOLATION=oci
	STORAGE_DRIVER="$driver"
}
POLICY() { printf -- '--signature-policy=%s' "$STORE_DIR/policy.json"; }

# buildah and skopeo (containers/image) keep a blob-info cache in
# /var/lib/containers/cache when run as root, whatever the storage root. They
# run here in a private mount namespace whose /var/lib is read-only, so that
# cache stays in memory and the host's /var/lib/containers is never written.
private_ns() { # <command> <args>...
	if [[ "$(id -u)" == 0 ]] && command -v unshare >/dev/null 2>&1; then
		unshare --mount --propagation private sh -c \
			'mount --bind /var/lib /var/lib && mount -o remount,bind,ro /var/lib && exec "$@"' sh "$@"
	else
		command "$@"
	fi
}
buildah() { private_ns buildah "$@"; }
skopeo() { private_ns skopeo "$@"; }

# Working containers and temporary files are removed however the script ends.
CONTAINERS=()
TMP_PATHS=()
JOBS=()
forget_container() { # <name>: committed with --rm, nothing left to remove
	local kept=() c
	for c in "${CONTAINERS[@]}"; do [[ "$c" == "$1" ]] || kept+=("$c"); done
	CONTAINERS=("${kept[@]}")
}
remove_containers() {
	local c
	for c in "${CONTAINERS[@]}"; do buildah rm "$c" >/dev/null 2>&1 || true; done
	CONTAINERS=()
}
cleanup() {
	local p
	for p in "${JOBS[@]}"; do kill "$p" 2>/dev/null || true; done
	remove_containers
	for p in "${TMP_PATHS[@]}"; do rm -rf "$p"; done
}
trap cleanup EXIT

# Sets CTR to a new working container (not via $(...): the subshell would
# lose the CONTAINERS bookkeeping).
new_container() { # <image or scratch>
	CTR="$(buildah from --pull=never "$(POLICY)" "$1")" || die "buildah from $1 failed"
	CONTAINERS+=("$CTR")
}

# Write the image as a docker-archive carrying its full name (ctr 1.6 imports
# it under that name), then drop older archives of the same image.
write_archive() { # <name> <ref> <archive>
	local name="$1" ref="$2" tar="$3" start=$SECONDS
	mkdir -p "$IMAGES_DIR"
	rm -f "$tar.tmp"
	buildah push --quiet "$(POLICY)" "$ref" "docker-archive:$tar.tmp:$ref" >/dev/null ||
		die "buildah push $ref to docker-archive failed"
	mv -f "$tar.tmp" "$tar"
	local old
	for old in "$IMAGES_DIR/$name"-*.tar; do
		[[ "$old" == "$tar" || ! -e "$old" ]] || rm -f "$old"
	done
	log "$name archive written in $(elapsed "$start") s: $tar ($(du -h "$tar" | cut -f1))"
}

# ---------------------------------------------------------------------------
# Build steps
# ---------------------------------------------------------------------------

# One Debian root as a tarball, cached by its key; runs in the background.
build_base() { # <tar> <packages> <log>
	local tar="$1" packages="$2" logf="$3" args=("${MMDEBSTRAP_OPTS[@]}")
	local f
	for f in "${APT_OPTION_FILES[@]}"; do args+=("--aptopt=$f"); done
	[[ -d "$MERGED_USR_HOOK" ]] && args+=("--hook-dir=$MERGED_USR_HOOK")
	# mmdebstrap stores --aptopt/--dpkgopt as 99mmdebstrap; the apt options
	# are this machine's business, not the image's.
	# shellcheck disable=SC2016 # $1 is the chroot, expanded by mmdebstrap
	args+=(--customize-hook='rm -f "$1/etc/apt/apt.conf.d/99mmdebstrap"')
	local start=$SECONDS
	mmdebstrap "${args[@]}" --include="$packages" "$DEBIAN_SUITE" "$tar.tmp" "${DEBIAN_MIRRORS[@]}" \
		</dev/null >"$logf" 2>&1 || return 1
	mv -f "$tar.tmp" "$tar"
	# Its own duration: the parent waits for the jobs one after the other.
	printf '%s\n' "$(elapsed "$start")" >"$logf.seconds"
}

base_tar() { # python | ollama
	if [[ "$1" == python ]]; then printf '%s\n' "$PYTHON_BASE_TAR"; else printf '%s\n' "$OLLAMA_BASE_TAR"; fi
}

build_bases() {
	local want=() name tar packages pid logf start=$SECONDS
	[[ " ${MISSING[*]} " == *" operator "* && ! -s "$PYTHON_BASE_TAR" ]] && want+=("python $PYTHON_BASE_TAR $PYTHON_BASE_PACKAGES")
	[[ " ${MISSING[*]} " == *" ollama "* && ! -s "$OLLAMA_BASE_TAR" ]] && want+=("ollama $OLLAMA_BASE_TAR $OLLAMA_BASE_PACKAGES")
	[[ ${#want[@]} -gt 0 ]] || return 0
	mkdir -p "$BASES_DIR"
	# Side by side: each is mostly waiting on downloads and dpkg.
	local -A pids=() logs=()
	for entry in "${want[@]}"; do
		read -r name tar packages <<<"$entry"
		logf="$BASES_DIR/$name.log"
		log "debian $DEBIAN_SUITE root for $name: mmdebstrap --include=$packages (log: $logf)"
		build_base "$tar" "$packages" "$logf" &
		pids[$name]=$!
		logs[$name]=$logf
		JOBS+=("$!")
	done
	local failed=0
	for name in "${!pids[@]}"; do
		if wait "${pids[$name]}"; then
			log "$name base root built in $(cat "${logs[$name]}.seconds") s ($(du -h "$(base_tar "$name")" | cut -f1))"
		else
			failed=1
			tail -n 20 "${logs[$name]}" >&2
			log "mmdebstrap for the $name root failed; full log: ${logs[$name]}"
		fi
	done
	JOBS=()
	[[ "$failed" == 0 ]] || die "building the Debian roots failed"
	log "debian roots built side by side in $(elapsed "$start") s"
	# Old roots (other package lists) are of no further use.
	for tar in "$BASES_DIR"/*.tar; do
		[[ "$tar" == "$PYTHON_BASE_TAR" || "$tar" == "$OLLAMA_BASE_TAR" ]] || rm -f "$tar"
	done
}

# The stand-in python:3.11-slim-bookworm: the Debian root as one layer with the
# environment the official image has (PATH, LANG), tagged under the Dockerfile's
# base name. Also tagged by its key, so a root already imported is not imported again.
import_python_base() {
	local keyed="localhost/ollama-operator/python-base:$PYTHON_BASE_KEY" start=$SECONDS c
	if ! buildah inspect --type image "$keyed" >/dev/null 2>&1; then
		new_container scratch
		c="$CTR"
		buildah add --quiet "$c" "$PYTHON_BASE_TAR" / >/dev/null
		buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			--env LANG=C.UTF-8 --cmd python3 \
			--label org.opencontainers.image.description="Debian $DEBIAN_SUITE minbase + $PYTHON_BASE_PACKAGES (stand-in for $PYTHON_BASE_REF)" \
			"$c"
		buildah commit --quiet --rm "$(POLICY)" "$c" "$keyed" >/dev/null
		forget_container "$c"
		log "python base imported in $(elapsed "$start") s"
	fi
	buildah tag "$keyed" "$PYTHON_BASE_REF"
}

# The machine's pip configuration for the Dockerfile's `pip install`, without
# changing the Dockerfile: /etc/pip.conf (and PIP_CONFIG_FILE) merged with the
# PIP_* variables of this environment (which win, as they do for pip), written
# to one file that is mounted read-only at /etc/pip.conf. Environment variables
# themselves cannot reach RUN without ARG lines in the Dockerfile, and --env
# would leave them in the image. Prints the -v options for buildah bud.
pip_mounts() { # <dir for the generated file>
	python3 - "$1/pip.conf" <<-'EOF'
		import configparser, os, sys
		conf = configparser.RawConfigParser()
		conf.read([p for p in ("/etc/pip.conf", os.environ.get("PIP_CONFIG_FILE", "")) if p and os.path.isfile(p)])
		if not conf.has_section("global"):
		    conf.add_section("global")
		# The Dockerfile sets its own (PIP_NO_CACHE_DIR, ...); env vars inside win anyway.
		for key, value in sorted(os.environ.items()):
		    if key.startswith("PIP_") and key != "PIP_CONFIG_FILE":
		        conf.set("global", key[4:].lower().replace("_", "-"), value)
		with open(sys.argv[1], "w") as f:
		    conf.write(f)
		# Files and directories the configuration names must exist in the build too.
		paths = {"/etc/ssl/certs"}
		for opt in ("cert", "client-cert"):
		    if conf.has_option("global", opt):
		        paths.add(conf.get("global", opt))
		for opt in ("find-links", "extra-index-url", "index-url"):
		    for value in conf.get("global", opt, fallback="").split():
		        if value.startswith("/"):
		            paths.add(value)
		print("-v=%s:/etc/pip.conf:ro" % sys.argv[1])
		for p in sorted(paths):
		    if os.path.exists(p) and not any(p.startswith(q + "/") for q in paths if q != p):
		        print("-v=%s:%s:ro" % (p, p))
	EOF
}

build_operator() {
	local start tmp
	import_python_base
	start=$SECONDS
	tmp="$(mktemp -d)"
	TMP_PATHS+=("$tmp")
	local mounts=()
	mapfile -t mounts < <(pip_mounts "$tmp")
	[[ -d /opt/wheels && " ${mounts[*]} " != *" -v=/opt/wheels:"* ]] && mounts+=("-v=/opt/wheels:/opt/wheels:ro")
	log "operator: buildah bud ($(printf '%s ' "${mounts[@]}" | sed 's/-v=//g; s/ $//'))"
	buildah bud --quiet --pull=never --network=host "$(POLICY)" "${mounts[@]}" \
		--layers=false --format=docker -f "$ROOT_DIR/Dockerfile" -t "$OPERATOR_REF" "$ROOT_DIR" >"$tmp/bud.log" 2>&1 || {
		tail -n 30 "$tmp/bud.log" >&2
		die "buildah bud of the operator image failed (the output above is the end of its log)"
	}
	log "operator image built in $(elapsed "$start") s"
	# The image's own promise (docs/install.md): the CLI and the fast path import.
	start=$SECONDS
	local c
	new_container "$OPERATOR_REF"
	c="$CTR"
	buildah run --network=none "$c" -- ollama-operator --help >/dev/null ||
		die "the operator image does not run 'ollama-operator --help'"
	buildah run --network=none "$c" -- python -c 'import uvloop, kopf, ollama_operator.sidecar.app' ||
		die "the operator image cannot import uvloop, kopf and ollama_operator.sidecar.app"
	log "operator image smoke-tested in $(elapsed "$start") s"
	write_archive operator "$OPERATOR_REF" "$OPERATOR_TAR"
}

build_ollama() {
	local start=$SECONDS c
	new_container scratch
	c="$CTR"
	buildah add --quiet "$c" "$OLLAMA_BASE_TAR" / >/dev/null
	buildah copy --quiet --chmod 0755 "$c" "$OLLAMA_BIN" /bin/ollama >/dev/null
	# Every shared library of the cgo binary must resolve inside the root.
	local libs
	libs="$(buildah run --network=none "$c" -- /lib64/ld-linux-x86-64.so.2 --list /bin/ollama 2>&1)" ||
		die "the Ollama root cannot load /bin/ollama: $libs"
	if grep -q 'not found' <<<"$libs"; then
		die "shared libraries of /bin/ollama missing from the Ollama root (add their packages to OLLAMA_BASE_PACKAGES): $(grep 'not found' <<<"$libs" | tr -s ' \t\n' ' ')"
	fi
	buildah run --network=none "$c" -- /bin/ollama --version >/dev/null 2>&1 ||
		die "/bin/ollama --version fails inside the Ollama root"
	# As the real ollama/ollama image: listens on all addresses by default
	# (the operator sets its own OLLAMA_HOST), models under /root/.ollama.
	buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env OLLAMA_HOST=0.0.0.0:11434 --port 11434/tcp \
		--entrypoint '["/bin/ollama"]' --cmd serve \
		--label org.opencontainers.image.title=ollama \
		--label org.opencontainers.image.version="$OLLAMA_VERSION" \
		--label org.opencontainers.image.description="CPU-only Ollama $OLLAMA_VERSION on Debian $DEBIAN_SUITE minbase, for the ollama-operator tests; no model inside" \
		"$c"
	buildah commit --quiet --rm --format=docker "$(POLICY)" "$c" "$OLLAMA_REF" >/dev/null
	forget_container "$c"
	log "ollama image built in $(elapsed "$start") s"
	write_archive ollama "$OLLAMA_REF" "$OLLAMA_TAR"
}

# A FROM-scratch image from a staged root directory (mode bits kept, root-owned).
scratch_image() { # <ref> <staged root> <buildah config options>...
	local ref="$1" root="$2" c
	shift 2
	new_container scratch
	c="$CTR"
	buildah copy --quiet --chown 0:0 "$c" "$root" / >/dev/null
	buildah config "$@" "$c"
	buildah commit --quiet --rm --format=docker "$(POLICY)" "$c" "$ref" >/dev/null
	forget_container "$c"
}

build_pause() {
	local start=$SECONDS root
	ensure_commands go=golang-go
	root="$(mktemp -d)"
	TMP_PATHS+=("$root")
	# Static (no cgo), no VCS stamp, paths trimmed; Go's own caches under
	# $CACHE_DIR/go like tools/build.sh, and never a toolchain download.
	(cd "$PAUSE_SRC" && CGO_ENABLED=0 GOOS=linux GOWORK=off GOTOOLCHAIN=local \
		GOFLAGS="-mod=readonly -buildvcs=false -trimpath" \
		GOCACHE="$CACHE_DIR/go/build" GOMODCACHE="$CACHE_DIR/go/mod" \
		go build -ldflags "-s -w" -o "$root/pause" .) || die "go build of tools/pause failed"
	# Like the upstream pause image: an unprivileged user; nothing else inside.
	scratch_image "$PAUSE_REF" "$root" --entrypoint '["/pause"]' --user 65535:65535 \
		--label org.opencontainers.image.description="pause container for the ollama-operator real-node tests (tools/pause)"
	log "pause image built in $(elapsed "$start") s"
	write_archive pause "$PAUSE_REF" "$PAUSE_TAR"
}

build_registry() {
	local start=$SECONDS root
	root="$(mktemp -d)"
	TMP_PATHS+=("$root")
	mkdir -p "$root/bin" "$root/etc/distribution" "$root/var/lib/registry" "$root/tmp"
	chmod 1777 "$root/tmp"
	install -m 0755 "$REGISTRY_BIN" "$root/bin/registry"
	printf '%s' "$REGISTRY_CONFIG" >"$root/etc/distribution/config.yml"
	chmod 0644 "$root/etc/distribution/config.yml"
	# The binary is static (CGO_ENABLED=0 in tools/build.sh), so scratch will do.
	# OTEL_TRACES_EXPORTER=none: v3 otherwise exports traces to localhost:4318.
	scratch_image "$REGISTRY_REF" "$root" --entrypoint '["/bin/registry"]' \
		--cmd '["serve", "/etc/distribution/config.yml"]' \
		--env OTEL_TRACES_EXPORTER=none --port 5000/tcp \
		--label org.opencontainers.image.version="$REGISTRY_VERSION" \
		--label org.opencontainers.image.description="distribution registry $REGISTRY_VERSION for the ollama-operator real-node tests"
	log "registry image built in $(elapsed "$start") s"
	write_archive registry "$REGISTRY_REF" "$REGISTRY_TAR"
}

build_missing() {
	[[ "$(id -u)" == 0 ]] || die "building images needs root (mmdebstrap --mode=root, buildah's storage); run as root or with sudo"
	# One build at a time per cache directory; a second one waits, then
	# finds the archives there.
	mkdir -p "$CACHE_DIR"
	exec 8>"$CACHE_DIR/.images.lock"
	if ! flock -n 8; then
		log "another build holds $CACHE_DIR/.images.lock; waiting for it"
		flock 8
	fi
	mapfile -t MISSING < <(missing_images)
	[[ ${#MISSING[@]} -gt 0 ]] || {
		log "all images are up to date in $IMAGES_DIR; nothing to do"
		return 0
	}
	local start_all=$SECONDS
	log "building: ${MISSING[*]}"
	ensure_commands buildah=buildah mmdebstrap=mmdebstrap skopeo=skopeo runc=runc python3=python3
	# mmdebstrap checks the Debian mirror's signatures (missing on Ubuntu hosts).
	[[ -f /usr/share/keyrings/debian-archive-keyring.gpg ]] || ensure_commands missing-debian-keyring=debian-archive-keyring
	setup_storage
	log "buildah $(buildah --version | awk '{print $3}'), storage $STORAGE_DRIVER in $STORE_DIR"
	# Working containers left by an interrupted run (the storage is ours alone,
	# and the lock is held).
	buildah rm --all >/dev/null 2>&1 || true
	build_bases
	local name
	for name in "${MISSING[@]}"; do "build_$name"; done
	# Images replaced by this build are now untagged; drop them (once no
	# working container holds them).
	remove_containers
	buildah rmi --prune >/dev/null 2>&1 || true
	log "built ${MISSING[*]} in $(elapsed "$start_all") s"
	print_images | while read -r ref tar; do printf '  %-50s %6s  %s\n' "$ref" "$(du -h "$tar" | cut -f1)" "$tar" >&2; done
}

# ---------------------------------------------------------------------------
# --push: copy to a user's registry
# ---------------------------------------------------------------------------

push_images() { # <registry/prefix> [--with-ollama]
	local dest="${1%/}" with_ollama="${2:-}"
	[[ -n "$dest" && "$dest" != -* ]] || die "usage: tools/images.sh --push HOST[:PORT]/PREFIX [--with-ollama]"
	[[ -z "$with_ollama" || "$with_ollama" == --with-ollama ]] || die "unknown option $with_ollama (expected --with-ollama)"
	[[ "$TLS_VERIFY" == true || "$TLS_VERIFY" == false ]] || die "TLS_VERIFY must be true or false, not '$TLS_VERIFY'"
	ensure_commands skopeo=skopeo
	local pushes=("$OPERATOR_TAR $dest/ollama-operator:$OPERATOR_VERSION")
	[[ -n "$with_ollama" ]] && pushes+=("$OLLAMA_TAR $dest/ollama:$OLLAMA_VERSION")
	local tar target start
	printf '{"default": [{"type": "insecureAcceptAnything"}]}\n' >"$IMAGES_DIR/.push-policy.json"
	for entry in "${pushes[@]}"; do
		read -r tar target <<<"$entry"
		[[ -s "$tar" ]] || die "$tar is missing; run tools/images.sh (make images) first"
		start=$SECONDS
		log "pushing $target"
		# Credentials: whatever `skopeo login` / REGISTRY_AUTH_FILE provide.
		skopeo --policy "$IMAGES_DIR/.push-policy.json" copy --quiet --dest-tls-verify="$TLS_VERIFY" \
			"docker-archive:$tar" "docker://$target" || die "skopeo copy to docker://$target failed"
		log "pushed $target in $(elapsed "$start") s"
	done
	log "use it: helm install ... --set image.repository=$dest/ollama-operator --set image.tag=$OPERATOR_VERSION"
}

# ---------------------------------------------------------------------------
# --verify: the archives import into containerd under their names
# ---------------------------------------------------------------------------

verify_imports() {
	[[ "$(id -u)" == 0 ]] || die "--verify starts a containerd and needs root"
	ensure_commands containerd=containerd ctr=containerd
	local tar name ref dir pid
	for entry in "${IMAGES[@]}"; do
		read -r name ref tar <<<"$entry"
		[[ -s "$tar" ]] || die "$tar is missing; run tools/images.sh first"
	done
	# A throwaway containerd: own root, state and socket under /tmp, no CRI
	# (nothing listens on the network), stopped by its PID.
	dir="$(mktemp -d /tmp/images-verify.XXXXXX)"
	TMP_PATHS+=("$dir")
	cat >"$dir/config.toml" <<-EOF
		version = 2
		root = "$dir/root"
		state = "$dir/state"
		disabled_plugins = ["io.containerd.grpc.v1.cri"]
		[grpc]
		  address = "$dir/containerd.sock"
	EOF
	containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
	pid=$!
	JOBS+=("$pid")
	local deadline=$((SECONDS + 30))
	until ctr --address "$dir/containerd.sock" version >/dev/null 2>&1; do
		kill -0 "$pid" 2>/dev/null || die "containerd exited: $(tail -n 5 "$dir/containerd.log")"
		[[ $SECONDS -lt $deadline ]] || die "containerd did not answer on $dir/containerd.sock within 30 s"
		sleep 0.2
	done
	local failed=0 start
	for entry in "${IMAGES[@]}"; do
		read -r name ref tar <<<"$entry"
		start=$SECONDS
		ctr --address "$dir/containerd.sock" -n k8s.io images import "$tar" >/dev/null ||
			die "ctr images import $tar failed"
		if grep -qxF "$ref" <<<"$(ctr --address "$dir/containerd.sock" -n k8s.io images ls -q)"; then
			log "ok: $ref imported from $(basename "$tar") in $(elapsed "$start") s"
		else
			log "FAIL: $tar imported, but not as $ref: $(ctr --address "$dir/containerd.sock" -n k8s.io images ls -q | tr '\n' ' ')"
			failed=1
		fi
	done
	kill "$pid"
	wait "$pid" 2>/dev/null || true
	JOBS=()
	[[ "$failed" == 0 ]] || die "some archives did not import under their names"
	log "every archive imports into containerd $(containerd --version | awk '{print $3}') under its name"
}

case "${1:-}" in
--print) print_images ;;
--push)
	shift
	[[ -n "$(missing_images)" ]] && build_missing
	push_images "$@"
	;;
--verify) verify_imports ;;
"")
	if [[ -z "$(missing_images)" ]]; then
		log "all images are up to date in $IMAGES_DIR; nothing to do"
		exit 0
	fi
	build_missing
	;;
-h | --help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//' ;;
*) die "unknown argument '$1' (try --help)" ;;
esac

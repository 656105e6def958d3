#!/usr/bin/env bash
# The real node: a second local cluster whose one node runs real containers.
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# (runc, CNI bridge), kubelet and kube-proxy all run inside one network
# namespace that this script creates, so pod and Service addresses exist only
# there and no packet can leave the machine. The host reaches the API server
# through one socat bridge on 127.0.0.1 (host port -> a unix socket -> the
# namespace), which is all kubectl, helm, port-forward and the tests need.
#
# The kwok cluster (tools/cluster.sh) stays for the broad suite; this one is
# for what only real containers show: images, probes, volumes, Services, a
# real model pulled from a real registry by a real Ollama.
#
# Usage: tools/realnode.sh up        start (or reuse) the node; images imported,
#                                   registry running, test model pushed
#        tools/realnode.sh test-up   up where possible; elsewhere explain (fails under CI)
#        tools/realnode.sh down      stop everything it started, clean the host
#        tools/realnode.sh status    is it up?
#        tools/realnode.sh env       shell exports: KUBECONFIG and PATH
#        tools/realnode.sh check     can this machine run it? (root, netns, cgroups)
#        tools/realnode.sh recycle   make Released volumes Available again, wiped
#
# Shortcuts these machines need (docs/development.md says why): containerd's
# restrict_oom_score_adj, kubelet on cgroup v1 with cgroupfs, no swap check,
# image GC off (imported images cannot be pulled again), static local volumes.
set -euo pipefail

TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${CACHE_DIR:-$HOME/.cache/ollama-operator}"
RN="$CACHE_DIR/realnode"
NETNS="${REALNODE_NETNS:-oo-realnode}"
NODE_NAME=realnode
NODE_IP=10.77.0.2      # on the namespace's loopback; the API server and kubelet bind here
POD_CIDR=10.88.0.0/16  # the CNI bridge's range
SERVICE_CIDR=10.96.0.0/16
REGISTRY_IP=10.96.0.50 # the in-cluster model registry's fixed ClusterIP
HOST_PORT="${REALNODE_PORT:-16443}" # 127.0.0.1 on the host -> the API server
KUBECONFIG_PATH="$CACHE_DIR/realnode.kubeconfig"
CGROUP_ROOT=ollama-operator-realnode # every pod's cgroup lives under this one
READY_TIMEOUT="${READY_TIMEOUT:-240}"
MODEL_REF="$REGISTRY_IP:5000/library/gemma3:270m"
MODEL2_REF="$REGISTRY_IP:5000/library/gemma3-t0:270m"

log() { printf '[realnode] %s\n' "$*" >&2; }
die() { printf '[realnode] ERROR: %s\n' "$*" >&2; exit 1; }

declare -A BIN
while IFS='=' read -r name path; do BIN[$name]="$path"; done < <("$TOOLS_DIR/build.sh" --print)
OLLAMA_BIN="$("$TOOLS_DIR/ollama.sh" --print | sed -n 's/^ollama=//p')"
MODEL_GGUF="$("$TOOLS_DIR/ollama.sh" --print | sed -n 's/^model=//p')"

inns() { nsenter --net="/run/netns/$NETNS" "$@"; }
kubectl() { "${BIN[kubectl]}" --kubeconfig "$KUBECONFIG_PATH" "$@"; }

# ---------------------------------------------------------------- checks

check() {
	local problems=()
	[[ $EUID -eq 0 ]] || problems+=("needs root (network namespace, containerd, kubelet)")
	local cmd
	for cmd in ip nsenter openssl socat curl containerd containerd-shim-runc-v2 runc ctr iptables mount umount; do
		command -v "$cmd" >/dev/null 2>&1 || problems+=("'$cmd' not found (tools/realnode.sh deps installs it)")
	done
	[[ -d /usr/lib/cni && -x /usr/lib/cni/bridge ]] || problems+=("CNI plugins missing (/usr/lib/cni/bridge)")
	[[ -d /sys/fs/cgroup/memory || -f /sys/fs/cgroup/cgroup.controllers ]] || problems+=("no cgroup hierarchy at /sys/fs/cgroup")
	grep -qw overlay /proc/filesystems || problems+=("no overlay filesystem")
	for name in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
		[[ -x "${BIN[$name]}" ]] || problems+=("missing ${BIN[$name]} (make tools)")
	done
	[[ -x "$OLLAMA_BIN" && -s "$MODEL_GGUF" ]] || problems+=("missing the test Ollama or model (make ollama)")
	if [[ ${#problems[@]} -gt 0 ]]; then
		printf '[realnode] cannot run here: %s\n' "${problems[@]}" >&2
		return 1
	fi
}

# The Debian packages the node needs; installed only where missing.
deps() {
	local pkgs=() p
	declare -A want=([containerd]=containerd [runc]=runc [socat]=socat [iptables]=iptables
		[openssl]=openssl [conntrack]=conntrack [curl]=curl)
	for p in "${!want[@]}"; do command -v "$p" >/dev/null 2>&1 || pkgs+=("${want[$p]}"); done
	[[ -x /usr/lib/cni/bridge ]] || pkgs+=(containernetworking-plugins)
	[[ ${#pkgs[@]} -eq 0 ]] && return 0
	if [[ $EUID -ne 0 ]]; then
		log "missing Debian packages ${pkgs[*]}, and not root to install them"
		return 1
	fi
	log "installing Debian packages: ${pkgs[*]}"
	local start=$SECONDS
	DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
	log "packages installed in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- PKI

pki() {
	local d="$RN/pki"
	[[ -s "$d/admin.crt" ]] && return 0
	mkdir -p "$d"
	chmod 700 "$d"
	log "writing the cluster's PKI ($d)"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=realnode-ca" \
		-keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
	openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
	openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
	cert() { # <name> <subject> [subjectAltName]
		openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$d/$1.key" -out "$d/$1.csr" 2>/dev/null
		local ext="$d/$1.ext"
		printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n' >"$ext"
		if [[ -n "${3:-}" ]]; then
			printf 'extendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$3" >>"$ext"
		else
			printf 'extendedKeyUsage=clientAuth\n' >>"$ext"
		fi
		openssl x509 -req -in "$d/$1.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
			-days 3650 -extfile "$ext" -out "$d/$1.crt" 2>/dev/null
		rm -f "$d/$1.csr" "$ext"
	}
	cert apiserver "/CN=kube-apiserver" \
		"IP:127.0.0.1,IP:$NODE_IP,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert node "/O=system:nodes/CN=system:node:$NODE_NAME"
	cert admin "/O=system:masters/CN=realnode-admin"
}

kubeconfig() { # <path> <server> <cert name>
	local d="$RN/pki"
	cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: realnode
  cluster:
    server: $2
    certificate-authority-data: $(base64 -w0 <"$d/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(base64 -w0 <"$d/$3.crt")
    client-key-data: $(base64 -w0 <"$d/$3.key")
contexts:
- name: realnode
  context: {cluster: realnode, user: $3}
current-context: realnode
EOF
	chmod 600 "$1"
}

# ---------------------------------------------------------------- configuration

configs() {
	mkdir -p "$RN"/{etc,logs,run,cni/net.d,cni/ipam,kubelet,containerd/root,containerd/state,etcd,pv}
	kubeconfig "$RN/etc/admin.kubeconfig" "https://$NODE_IP:6443" admin
	kubeconfig "$RN/etc/node.kubeconfig" "https://$NODE_IP:6443" node
	kubeconfig "$KUBECONFIG_PATH" "https://127.0.0.1:$HOST_PORT" admin

	# containerd 1.6 with the CRI plugin: everything under $RN, nothing in /run/containerd.
	cat >"$RN/etc/containerd.toml" <<EOF
version = 2
root = "$RN/containerd/root"
state = "$RN/containerd/state"
[grpc]
  address = "$RN/run/containerd.sock"
[ttrpc]
  address = "$RN/run/containerd-ttrpc.sock"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/ollama-operator/pause:1.0"
  # These VMs lack CAP_SYS_RESOURCE: without this every sandbox fails with
  # "failed to update /proc/self/oom_score_adj: Permission denied".
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$RN/cni/net.d"
    max_conf_num = 1
[plugins."io.containerd.internal.v1.opt"]
  path = "$RN/containerd/opt"
EOF

	cat >"$RN/cni/net.d/10-realnode.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "realnode",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$RN/cni/ipam"
      }
    }
  ]
}
EOF

	# No DNS server on the node: pods resolve nothing, and say so quickly.
	printf '# the real node runs no DNS server\noptions timeout:1 attempts:1\n' >"$RN/etc/resolv.conf"

	cat >"$RN/etc/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$RN/run/containerd.sock
# cgroup v1 plus a cgroup2 mount (hybrid) here: runc and the cgroupfs driver.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
cgroupRoot: /$CGROUP_ROOT
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $RN/pki/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
# No DNS server runs here; an address that answers nothing keeps pods from
# falling back to the node's resolv.conf (and the kubelet from warning about it).
clusterDNS: [10.96.0.10]
resolvConf: $RN/etc/resolv.conf
# Images imported with 'ctr images import' can never be pulled again: no image GC.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# A shared host disk: do not evict pods for the host's fill level.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
maxPods: 60
protectKernelDefaults: false
shutdownGracePeriod: 0s
EOF

	cat >"$RN/etc/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $RN/etc/admin.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Leave the kernel's conntrack settings as they are (some are not per namespace).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
}

# ---------------------------------------------------------------- processes

pidfile() { echo "$RN/run/$1.pid"; }
running() { local p; p="$(pidfile "$1")"; [[ -f "$p" ]] && kill -0 "$(cat "$p")" 2>/dev/null && ours "$(cat "$p")"; }

# start <name> <command...>: in the node's network namespace, in the background,
# detached from our stdout (pytest and make must not wait on it), PID recorded.
start() {
	local name="$1"
	shift
	running "$name" && return 0
	setsid nsenter --net="/run/netns/$NETNS" "$@" </dev/null >>"$RN/logs/$name.log" 2>&1 8>&- 9>&- &
	echo $! >"$(pidfile "$name")"
}

wait_for() { # <what> <timeout s> <command...>
	local what="$1" timeout="$2" deadline
	shift 2
	deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || die "$what not ready after ${timeout}s (logs: $RN/logs/)"
		sleep 0.5
	done
}

netns_up() {
	if [[ ! -e "/run/netns/$NETNS" ]]; then
		log "creating network namespace $NETNS"
		ip netns add "$NETNS"
	fi
	ip -n "$NETNS" link set lo up
	grep -q "$NODE_IP/32" <<<"$(ip -n "$NETNS" addr show dev lo)" || ip -n "$NETNS" addr add "$NODE_IP/32" dev lo
	# Forwarding and bridge filtering in this namespace only (per-namespace
	# sysctls); the host's own settings are never touched.
	inns sysctl -q -w net.ipv4.ip_forward=1
	inns sysctl -q -w net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
	# The pods' bridge, made before the CNI plugin would make it, so that the
	# Service range can be routed from the node itself (kube-proxy's DNAT in
	# OUTPUT needs a route to start from; the namespace has no default route,
	# and must not: nothing may leave it).
	ip -n "$NETNS" link show cni0 >/dev/null 2>&1 || ip -n "$NETNS" link add cni0 type bridge
	grep -q "${POD_CIDR%.0/16}.1/16" <<<"$(ip -n "$NETNS" addr show dev cni0)" \
		|| ip -n "$NETNS" addr add "${POD_CIDR%.0/16}.1/16" dev cni0
	ip -n "$NETNS" link set cni0 up
	ip -n "$NETNS" route replace "$SERVICE_CIDR" dev cni0
}

control_plane() {
	local p="$RN/pki"
	start etcd "${BIN[etcd]}" --name realnode --data-dir "$RN/etcd" \
		--listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
		--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
		--initial-cluster realnode=http://127.0.0.1:2380 --unsafe-no-fsync --log-level warn
	start kube-apiserver "${BIN[kube-apiserver]}" \
		--etcd-servers=http://127.0.0.1:2379 \
		--bind-address=0.0.0.0 --secure-port=6443 --advertise-address="$NODE_IP" \
		--client-ca-file="$p/ca.crt" --tls-cert-file="$p/apiserver.crt" --tls-private-key-file="$p/apiserver.key" \
		--kubelet-client-certificate="$p/admin.crt" --kubelet-client-key="$p/admin.key" \
		--kubelet-preferred-address-types=InternalIP \
		--service-account-issuer=https://kubernetes.default.svc.cluster.local \
		--service-account-key-file="$p/sa.pub" --service-account-signing-key-file="$p/sa.key" \
		--service-cluster-ip-range="$SERVICE_CIDR" \
		--authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
		--profiling=false --v=1
	# kube-controller-manager exits when started before the RBAC bootstrap roles exist.
	wait_for kube-apiserver "$READY_TIMEOUT" inns "${BIN[kubectl]}" --kubeconfig "$RN/etc/admin.kubeconfig" get --raw=/readyz
	start kube-controller-manager "${BIN[kube-controller-manager]}" \
		--kubeconfig="$RN/etc/admin.kubeconfig" \
		--authentication-kubeconfig="$RN/etc/admin.kubeconfig" --authorization-kubeconfig="$RN/etc/admin.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10257 \
		--service-account-private-key-file="$p/sa.key" --root-ca-file="$p/ca.crt" \
		--use-service-account-credentials=true --leader-elect=false \
		--cluster-signing-cert-file="$p/ca.crt" --cluster-signing-key-file="$p/ca.key" \
		--profiling=false --v=1
	start kube-scheduler "${BIN[kube-scheduler]}" \
		--kubeconfig="$RN/etc/admin.kubeconfig" \
		--authentication-kubeconfig="$RN/etc/admin.kubeconfig" --authorization-kubeconfig="$RN/etc/admin.kubeconfig" \
		--bind-address=127.0.0.1 --secure-port=10259 --leader-elect=false --profiling=false --v=1
	# The host's way in: 127.0.0.1:$HOST_PORT -> unix socket -> $NODE_IP:6443.
	stop_pid bridge-netns
	rm -f "$RN/run/apiserver.sock"
	start bridge-netns socat "UNIX-LISTEN:$RN/run/apiserver.sock,fork,mode=600" "TCP:$NODE_IP:6443"
	wait_for "the API bridge socket" 30 test -S "$RN/run/apiserver.sock"
	setsid socat "TCP-LISTEN:$HOST_PORT,bind=127.0.0.1,fork,reuseaddr" "UNIX-CONNECT:$RN/run/apiserver.sock" \
		</dev/null >>"$RN/logs/bridge-host.log" 2>&1 8>&- 9>&- &
	echo $! >"$(pidfile bridge-host)"
	wait_for "the API server through 127.0.0.1:$HOST_PORT" 60 kubectl get --raw=/readyz
}

# kubelet's cgroupRoot must exist in every hierarchy before it starts; a new
# cpuset cgroup is empty until given its parent's CPUs and memory nodes.
cgroup_root() {
	local mnt dir
	while read -r mnt; do
		dir="$mnt/$CGROUP_ROOT"
		mkdir -p "$dir"
		if [[ -f "$mnt/cpuset.cpus" && ! -s "$dir/cpuset.cpus" ]]; then
			cat "$mnt/cpuset.cpus" >"$dir/cpuset.cpus"
			cat "$mnt/cpuset.mems" >"$dir/cpuset.mems"
		fi
	done < <(awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/self/mounts)
}

node() {
	cgroup_root
	start containerd containerd --config "$RN/etc/containerd.toml"
	wait_for containerd 60 ctr --address "$RN/run/containerd.sock" version
	import_images
	start kubelet "${BIN[kubelet]}" --config="$RN/etc/kubelet.yaml" \
		--kubeconfig="$RN/etc/node.kubeconfig" --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" \
		--root-dir="$RN/kubelet" --cert-dir="$RN/kubelet/pki" --v=1
	start kube-proxy "${BIN[kube-proxy]}" --config="$RN/etc/kube-proxy.yaml" --v=1
	wait_for "node $NODE_NAME" "$READY_TIMEOUT" kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
	wait_for "the default ServiceAccount" 60 kubectl -n default get serviceaccount default
}

# The images tools/images.sh built, imported into containerd's k8s.io namespace
# once per content (the archive names carry their content hash).
import_images() {
	local ref archive stamp list
	mkdir -p "$RN/imported"
	list="$(image_list)"
	while read -r ref archive; do
		[[ -n "$ref" ]] || continue
		stamp="$RN/imported/$(basename "$archive").done"
		if [[ -f "$stamp" ]] && has_image "$ref"; then
			continue
		fi
		log "importing $ref"
		ctr --address "$RN/run/containerd.sock" -n k8s.io images import "$archive" >/dev/null \
			|| die "could not import $archive"
		has_image "$ref" \
			|| die "imported $archive but containerd does not list $ref"
		touch "$stamp"
	done <<<"$list"
}

# (Not `ctr ... | grep -q`: grep's early exit fails the pipeline under pipefail.)
has_image() { grep -qxF "$1" <<<"$(ctr --address "$RN/run/containerd.sock" -n k8s.io images ls -q)"; }

# "<ref> <archive>" of the current images, built first if any is missing (the
# sources may change while a build runs: build again until the list is whole).
# `up` computes it once (hashing the tree takes seconds) into IMAGE_LIST.
IMAGE_LIST=""
image_list() {
	local list try
	if [[ -n "$IMAGE_LIST" ]]; then
		printf '%s\n' "$IMAGE_LIST"
		return 0
	fi
	for try in 1 2 3; do
		list="$("$TOOLS_DIR/images.sh" --print)"
		if awk '{print $2}' <<<"$list" | xargs -r ls >/dev/null 2>&1; then
			printf '%s\n' "$list"
			return 0
		fi
		log "the sources changed while the images were built; building again ($try)"
		"$TOOLS_DIR/images.sh" >&2
	done
	die "the images keep changing under the build; try again when the tree is still"
}

# ---------------------------------------------------------------- cluster contents

# A default StorageClass and local volumes bound to this node (claims bind to them
# through the real PV controller and the kubelet mounts them); Released ones are
# wiped and made Available again. The same pool script as the kwok cluster's.
storage() {
	"$TOOLS_DIR/cluster/storage.sh" "${BIN[kubectl]}" "$KUBECONFIG_PATH" 16 "$RN/pv" "$NODE_NAME" >/dev/null
}

recycle() { storage; }

registry() {
	local image archive
	image="$(registry_image)"
	archive="$(image_list | awk -v r="$image" '$1 == r {print $2}')"
	archive="$(basename "$archive")"
	# A new image under the same name: the pod must be made again to run it.
	if [[ "$(kubectl -n model-registry get pod registry -o jsonpath='{.metadata.annotations.ollama\.operator\.dev/archive}' 2>/dev/null)" != "$archive" ]]; then
		kubectl -n model-registry delete pod registry --ignore-not-found --wait=true >/dev/null
	fi
	kubectl apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata: {name: model-registry}
---
apiVersion: v1
kind: Pod
metadata:
  name: registry
  namespace: model-registry
  labels: {app: registry}
  annotations: {ollama.operator.dev/archive: "$archive"}
spec:
  containers:
  - name: registry
    image: $image
    imagePullPolicy: Never
    ports: [{containerPort: 5000}]
    readinessProbe: {httpGet: {path: /v2/, port: 5000}, periodSeconds: 2}
    volumeMounts: [{name: data, mountPath: /var/lib/registry}]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true}
  volumes:
  - name: data
    hostPath: {path: $RN/registry-data, type: DirectoryOrCreate}
---
apiVersion: v1
kind: Service
metadata: {name: registry, namespace: model-registry}
spec:
  clusterIP: $REGISTRY_IP
  selector: {app: registry}
  ports: [{port: 5000, targetPort: 5000}]
EOF
	wait_for "the model registry pod" "$READY_TIMEOUT" kubectl -n model-registry wait --for=condition=Ready pod/registry --timeout=5s
	wait_for "the model registry Service" 60 inns curl -sf "http://$REGISTRY_IP:5000/v2/"
}

registry_image() {
	local list
	list="$(image_list)"
	awk '$1 ~ /registry/ {print $1; exit}' <<<"$list"
}

# The test model in the registry the way `ollama push` writes it: a throwaway
# Ollama in the node's namespace creates it from the GGUF and pushes it.
push_models() {
	if inns curl -sf -o /dev/null "http://$REGISTRY_IP:5000/v2/library/gemma3/manifests/270m" \
		&& inns curl -sf -o /dev/null "http://$REGISTRY_IP:5000/v2/library/gemma3-t0/manifests/270m"; then
		log "registry already holds $MODEL_REF and $MODEL2_REF"
		return 0
	fi
	local work="$RN/pusher" start=$SECONDS
	rm -rf "$work"
	mkdir -p "$work"
	log "pushing $MODEL_REF and $MODEL2_REF into the registry"
	inns env HOME="$work" OLLAMA_MODELS="$work/models" OLLAMA_HOST=127.0.0.1:11499 \
		"$OLLAMA_BIN" serve </dev/null >"$RN/logs/pusher.log" 2>&1 8>&- 9>&- &
	local pid=$!
	echo "$pid" >"$(pidfile pusher)"
	trap 'stop_pid pusher' EXIT
	wait_for "the pushing Ollama" 60 inns curl -sf http://127.0.0.1:11499/api/version
	printf 'FROM %s\n' "$MODEL_GGUF" >"$work/Modelfile"
	printf 'FROM %s\nPARAMETER temperature 0\n' "$MODEL_REF" >"$work/Modelfile.t0"
	local o=(inns env OLLAMA_HOST=127.0.0.1:11499 "$OLLAMA_BIN")
	"${o[@]}" create "$MODEL_REF" -f "$work/Modelfile" >>"$RN/logs/pusher.log" 2>&1 || die "ollama create failed (see $RN/logs/pusher.log)"
	"${o[@]}" create "$MODEL2_REF" -f "$work/Modelfile.t0" >>"$RN/logs/pusher.log" 2>&1 || die "ollama create failed (see $RN/logs/pusher.log)"
	"${o[@]}" push --insecure "$MODEL_REF" >>"$RN/logs/pusher.log" 2>&1 || die "ollama push failed (see $RN/logs/pusher.log)"
	"${o[@]}" push --insecure "$MODEL2_REF" >>"$RN/logs/pusher.log" 2>&1 || die "ollama push failed (see $RN/logs/pusher.log)"
	stop_pid pusher
	trap - EXIT
	rm -rf "$work"
	log "models pushed in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------- up / down

healthy() {
	[[ -f "$KUBECONFIG_PATH" ]] && kubectl get --raw=/readyz --request-timeout=5s >/dev/null 2>&1 \
		&& running kubelet && running containerd && running kube-proxy
}

up() {
	mkdir -p "$CACHE_DIR"
	exec 9>"$CACHE_DIR/.realnode.lock"
	flock -w 900 9 || die "another 'tools/realnode.sh' holds $CACHE_DIR/.realnode.lock for 15 minutes (fuser that file)"
	deps || die "the real node's packages are missing (see above)"
	check || die "the real node cannot start on this machine (see above)"
	"$TOOLS_DIR/images.sh"
	IMAGE_LIST="$(image_list)"
	local start=$SECONDS
	if healthy; then
		log "the real node is already running; reusing it"
		netns_up
		import_images
	else
		stop_all quiet
		pki
		configs
		netns_up
		log "starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler"
		control_plane
		log "starting containerd, kubelet, kube-proxy"
		node
	fi
	storage
	registry
	push_models
	log "up in $((SECONDS - start)) s: node $NODE_NAME ($(kubectl get node "$NODE_NAME" -o jsonpath='{.status.nodeInfo.containerRuntimeVersion}'))"
	cat >&2 <<EOF
[realnode]   export KUBECONFIG=$KUBECONFIG_PATH
[realnode]   model registry: $REGISTRY_IP:5000 (in the cluster), models $MODEL_REF, $MODEL2_REF
[realnode]   logs: $RN/logs/
EOF
}

# Stop what we started, by PID, newest first; then the containers, mounts,
# cgroups and the namespace, so the host is as it was.
stop_all() {
	local quiet="${1:-}" name pid
	for name in pusher kube-proxy kubelet; do stop_pid "$name"; done
	if running containerd; then
		kill_containers
	fi
	for name in containerd bridge-host bridge-netns kube-scheduler kube-controller-manager kube-apiserver etcd; do
		stop_pid "$name"
	done
	# Shims outlive containerd; they are ours if they talk to our socket.
	for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $RN/run/containerd.sock" || true); do
		kill -9 "$pid" 2>/dev/null || true
	done
	kill_cgroup_tasks
	forget_cni_results
	unmount_under "$RN"
	remove_cgroups
	if [[ -e "/run/netns/$NETNS" ]]; then
		ip netns del "$NETNS" 2>/dev/null || true
	fi
	[[ -n "$quiet" ]] || log "stopped; the host is as before (no namespace, mounts or processes left)"
}

ours() { # <pid>
	local cmd
	cmd="$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null)" || return 1
	[[ "$cmd" == *"$RN"* || "$cmd" == *"$OLLAMA_BIN"* ]]
}

stop_pid() { # <name>
	local p pid
	p="$(pidfile "$1")"
	[[ -f "$p" ]] || return 0
	pid="$(cat "$p")"
	# After a reboot the PID may belong to someone else: ours name our paths.
	if kill -0 "$pid" 2>/dev/null && ours "$pid"; then
		kill "$pid" 2>/dev/null || true
		local deadline=$((SECONDS + 20))
		while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
		kill -9 "$pid" 2>/dev/null || true
	fi
	rm -f "$p"
}

kill_containers() {
	local c=(ctr --address "$RN/run/containerd.sock" -n k8s.io) id
	for id in $("${c[@]}" tasks ls -q 2>/dev/null || true); do
		"${c[@]}" tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
	done
	for id in $("${c[@]}" tasks ls -q 2>/dev/null || true); do
		"${c[@]}" tasks delete -f "$id" >/dev/null 2>&1 || true
	done
}

# containerd's CNI library caches each pod's results in /var/lib/cni/results (1.6
# has no setting for it): drop ours — the bridge's, named after our network, and
# the loopback ones of the same sandboxes — and the directories if we emptied them.
forget_cni_results() {
	local dir=/var/lib/cni/results f id
	[[ -d "$dir" ]] || return 0
	for f in "$dir"/realnode-*; do
		[[ -e "$f" ]] || continue
		id="${f#"$dir"/realnode-}"
		id="${id%%-*}"
		rm -f "$f" "$dir/cni-loopback-$id-lo"
	done
	rmdir "$dir" /var/lib/cni 2>/dev/null || true
}

cgroup_dirs() {
	awk -v r="$CGROUP_ROOT" '$3 == "cgroup" || $3 == "cgroup2" {print $2 "/" r}' /proc/self/mounts \
		| while read -r d; do [[ -d "$d" ]] && echo "$d"; done
}

kill_cgroup_tasks() {
	local dir
	for dir in $(cgroup_dirs); do
		find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null || true
	done
}

remove_cgroups() {
	local dir
	for dir in $(cgroup_dirs); do
		find "$dir" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
}

unmount_under() { # <dir>
	local m
	# Deepest first.
	for m in $(awk -v p="$1/" 'index($5, p) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
}

down() {
	mkdir -p "$CACHE_DIR"
	exec 9>"$CACHE_DIR/.realnode.lock"
	flock -w 900 9 || die "another 'tools/realnode.sh' holds $CACHE_DIR/.realnode.lock for 15 minutes (fuser that file)"
	stop_all
	rm -f "$KUBECONFIG_PATH"
	# etcd data, containerd's images and the PKI: a fresh start next time, except
	# the registry's data and the imports' cache, which are content-keyed.
	rm -rf "$RN/etcd" "$RN/kubelet" "$RN/containerd" "$RN/pki" "$RN/imported" "$RN/cni/ipam" "$RN/pv"
}

status() {
	if healthy; then
		kubectl get nodes -o wide >&2
		log "up; export KUBECONFIG=$KUBECONFIG_PATH"
	else
		log "not running (make realnode-up)"
		return 1
	fi
}

# Sourced (for a single step while debugging): define the functions only.
[[ "${BASH_SOURCE[0]}" == "$0" ]] || return 0

case "${1:-}" in
up) up ;;
# make test: the node where it can run; elsewhere say why (its tests then skip),
# except under CI, where it must run.
test-up)
	if deps && check; then
		up
	elif [[ -n "${CI:-}" && "${CI:-}" != "0" && "${CI:-}" != "false" ]]; then
		die "the real node cannot start under CI (see above)"
	else
		log "skipping the real node on this machine; tests/realnode will be skipped"
	fi
	;;
down) down ;;
status) status ;;
check) check ;;
deps) deps ;;
recycle) recycle ;;
env)
	printf 'export KUBECONFIG=%q\n' "$KUBECONFIG_PATH"
	# shellcheck disable=SC2016 # $PATH is for the shell that evaluates this
	printf 'export PATH=%q:"$PATH"\n' "$CACHE_DIR/bin"
	;;
*)
	sed -n '2,/^set -euo/p' "$0" | sed '$d'
	exit 2
	;;
esac

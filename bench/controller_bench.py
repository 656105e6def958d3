"""Part 2: the controller at scale, on the local cluster (kwok nodes, real control plane).

The operator runs as a process authenticated as its ServiceAccount (the RBAC of
manifests/rbac), watching one namespace of its own, ``ollama-bench``, so other users of a
shared local cluster are neither disturbed nor counted. Its pods land on fake nodes added
for the run (``ollama-bench-1..3``, tainted so nothing else schedules there, each with its
own loopback pod CIDR) because the cluster's four nodes hold 440 pods and the run needs 500;
likewise an extra ServiceCIDR, as the cluster's default Service range holds about 250.
Objects have no models and ``storage.mode: Ephemeral``: no volumes, and nothing but the
controller to wait for.

Measured:

- **apply → StatefulSet**: objects created one after another; for each, the time from
  sending the create to the StatefulSet's ADDED event on a watch (p50, p99).
- **burst convergence**: N objects created at once (32 requests in flight); the time from
  the first create until every one of them reports ``Ready=True`` for its current
  generation (watched, not polled).
- **API writes at rest**: once all objects are Ready, the writes of *this* operator (the
  audit log's lines for its ServiceAccount token, by the token's ``jti``, in the bench
  namespace) over a window that spans several resync periods, per minute. Zero is the target.
- **operator RSS**: VmRSS of the operator process at the start, after the burst, and with
  all objects converged.

Everything created is deleted at the end (namespace, then the extra nodes).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from tests.integration.kube import REPO_ROOT, Kubectl, cache_dir, tool, wait_for
from tests.integration.operator_process import (
    SA_USER,
    install_crds_and_rbac,
    service_account_kubeconfig,
)
from tests.support.kubeconfig import connection_info

from bench.procs import Service, rss_kib
from bench.settings import Settings

log = logging.getLogger("bench.controller")

NAMESPACE = "ollama-bench"
GROUP, VERSION, PLURAL = "ollama.operator.dev", "v1alpha1", "ollamaservers"
NODE_LABEL = "ollama.operator.dev/bench"
NODES = 3
PODS_PER_NODE = 220
#: An extra Service range for the run (the local cluster's default is 10.0.0.0/24).
SERVICE_CIDR_NAME = "ollama-bench"
SERVICE_CIDR = "10.0.64.0/18"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


def bench_nodes() -> list[dict[str, Any]]:
    """Fake nodes for the run: kwok plays them (annotation), nothing else may use them."""
    capacity = {
        "cpu": "64",
        "memory": "256Gi",
        "pods": str(PODS_PER_NODE),
        "ephemeral-storage": "1Ti",
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": f"ollama-bench-{i}",
                "annotations": {
                    "kwok.x-k8s.io/node": "fake",
                    "node.alpha.kubernetes.io/ttl": "0",
                },
                "labels": {
                    "kubernetes.io/hostname": f"ollama-bench-{i}",
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "type": "kwok",
                    NODE_LABEL: "true",
                },
            },
            "spec": {
                "podCIDR": f"127.2.{i}.0/24",
                "podCIDRs": [f"127.2.{i}.0/24"],
                "taints": [{"key": NODE_LABEL, "value": "true", "effect": "NoSchedule"}],
            },
            "status": {"allocatable": capacity, "capacity": capacity},
        }
        for i in range(1, NODES + 1)
    ]


def server(name: str) -> dict[str, Any]:
    """One benchmark OllamaServer: no models, no volumes, pinned to the bench nodes."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "OllamaServer",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "models": [],
            "podLabels": {},
            "storage": {"mode": "Ephemeral"},
            "nodeSelector": {NODE_LABEL: "true"},
            "tolerations": [
                {"key": NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
            ],
        },
    }


def token_id(kubeconfig: Path) -> str:
    """The ``jti`` of the bearer token in a kubeconfig: how the audit log names it."""
    data = yaml.safe_load(kubeconfig.read_text())
    token: str = data["users"][0]["user"]["token"]
    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims.get("jti", ""))


class AuditLog:
    """Write requests in the API server's audit log, read from a remembered offset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def offset(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def writes(self, since: int, keep: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Entries written after ``since`` (from the start if the log was rotated)."""
        if not self.path.exists():
            return []
        if self.offset() < since:
            since = 0
        out = []
        with open(self.path, "rb") as fh:
            fh.seek(since)
            for raw in fh:
                try:
                    entry = json.loads(raw)
                except ValueError:
                    continue
                if entry.get("verb") in WRITE_VERBS and keep(entry):
                    out.append(entry)
        return out


def mine(jti: str, *, others: bool = False) -> Callable[[dict[str, Any]], bool]:
    """Audit entries of this run's operator token in the bench namespace.

    ``others``: those of any *other* token of the operator's ServiceAccount instead (another
    operator, e.g. an integration test's, reconciling the bench namespace: a disturbed run).
    """

    def keep(entry: dict[str, Any]) -> bool:
        user = entry.get("user") or {}
        if user.get("username") != SA_USER:
            return False
        if (entry.get("objectRef") or {}).get("namespace") != NAMESPACE:
            return False
        ids = (user.get("extra") or {}).get("authentication.kubernetes.io/credential-id") or []
        return (f"JTI={jti}" in ids) != others

    return keep


def summarize_writes(entries: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in entries:
        ref = entry.get("objectRef") or {}
        resource = ref.get("resource", "?")
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        key = f"{entry.get('verb')} {resource}"
        code = (entry.get("responseStatus") or {}).get("code") or 0
        if code >= 400:
            key += f" (failed: {code})"
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


class Watcher:
    """Keeps the latest state of one kind of object in the namespace, with arrival times.

    A plain watch request (``?watch=1``): it opens with an ADDED event per existing
    object, then streams changes, one JSON event per line; it is reopened when the
    server ends it.
    """

    def __init__(
        self,
        name: str,
        session: aiohttp.ClientSession,
        url: str,
        on: Callable[[str, Any], None],
    ) -> None:
        self.name = name
        self.session = session
        self.url = url
        self.on = on
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def _run(self) -> None:
        params = {"watch": "1", "timeoutSeconds": "300"}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=330)
        while True:
            try:
                async with self.session.get(self.url, params=params, timeout=timeout) as resp:
                    resp.raise_for_status()
                    async for line in resp.content:
                        if line.strip():
                            event = json.loads(line)
                            self.on(event["type"], event["object"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("watch of %s restarts: %s", self.name, exc)
                await asyncio.sleep(0.2)


def is_ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


class ControllerBench:
    """Runs part 2 and collects its results as plain data."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.settings = settings
        self.workdir = workdir
        configured = os.environ.get("KUBECONFIG", "")
        self.kubeconfig = (
            Path(configured)
            if configured and Path(configured).is_file()
            else cache_dir() / "kubeconfig"
        )
        binary = tool("kubectl")
        if binary is None:
            raise RuntimeError("kubectl not found: run `make tools` (or `make cluster-up`)")
        self.kubectl = Kubectl(binary=binary, kubeconfig=self.kubeconfig)
        self.audit = AuditLog(cache_dir() / "audit.log")
        self.operator: Service | None = None
        self.sts_seen: dict[str, float] = {}
        self.ready_at: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.service_cidr: str | None = None

    # ---- setup and teardown ------------------------------------------------------------------

    def _prepare_cluster(self) -> None:
        probe = self.kubectl("get", "--raw=/readyz", check=False, timeout=30)
        if probe.returncode != 0:
            raise RuntimeError(f"the API server of {self.kubeconfig} is not ready: {probe.stderr}")
        install_crds_and_rbac(self.kubectl)
        self.kubectl.apply(yaml.safe_dump_all(bench_nodes()))
        self.service_cidr = self._add_service_cidr()
        self.kubectl(
            "wait", "--for=condition=Ready", "node", "-l", f"{NODE_LABEL}=true", "--timeout=120s"
        )
        self._delete_namespace(wait=True)
        self.kubectl.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        )
        wait_for(
            lambda: (
                self.kubectl(
                    "-n", NAMESPACE, "get", "serviceaccount", "default", check=False
                ).returncode
                == 0
            ),
            timeout=60,
            what=f"ServiceAccount {NAMESPACE}/default",
        )

    def _add_service_cidr(self) -> str | None:
        """More ClusterIPs: the local cluster's default range (a /24) holds ~250 Services.

        Each OllamaServer has one ClusterIP Service, so 500 objects need 500 addresses.
        Kubernetes 1.33+ takes extra ranges as ServiceCIDR objects; one is added for the run
        (and removed after). Returns its range, or None where the API does not exist.
        """
        resources = self.kubectl("api-resources", "--api-group=networking.k8s.io", check=False)
        if "servicecidrs" not in resources.stdout:
            log.warning("no ServiceCIDR API: the cluster may run out of Service addresses")
            return None
        self.kubectl.apply(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "ServiceCIDR",
                "metadata": {"name": SERVICE_CIDR_NAME, "labels": {NODE_LABEL: "true"}},
                "spec": {"cidrs": [SERVICE_CIDR]},
            }
        )
        return SERVICE_CIDR

    def _delete_namespace(self, wait: bool) -> None:
        self.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false")
        if wait:
            wait_for(
                lambda: self.kubectl("get", "namespace", NAMESPACE, check=False).returncode != 0,
                timeout=300,
                interval=1.0,
                what=f"namespace {NAMESPACE} gone",
            )

    def _start_operator(self) -> str:
        sa_config = service_account_kubeconfig(self.kubectl, self.workdir / "sa-kubeconfig")
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(sa_config),
            OLLAMA_OPERATOR_RESYNC_SECONDS=str(self.settings.resync_s),
            # The image the integration tests' operators render: should one of them run
            # cluster-wide beside this one, both want the same pods instead of fighting.
            OLLAMA_OPERATOR_IMAGE="ollama-operator:test",
        )
        self.operator = Service(
            "operator",
            [
                sys.executable,
                "-m",
                "ollama_operator.cli",
                "run",
                "--namespace",
                NAMESPACE,
                "--liveness=",
                "--metrics-port=0",
            ],
            self.workdir / "operator.log",
            env=env,
            cwd=REPO_ROOT,
        )
        self.operator.start()
        time.sleep(3.0)
        if not self.operator.alive():
            raise self.operator.fail("exited at start")
        return token_id(sa_config)

    def _cleanup(self) -> None:
        if self.operator is not None:
            self.operator.stop(grace=15)
        with contextlib.suppress(Exception):
            self._delete_namespace(wait=True)
        with contextlib.suppress(Exception):
            self.kubectl(
                "delete", "node", "-l", f"{NODE_LABEL}=true", "--ignore-not-found", "--wait=false"
            )
        with contextlib.suppress(Exception):
            self.kubectl(
                "delete",
                "servicecidr",
                SERVICE_CIDR_NAME,
                "--ignore-not-found",
                "--wait=false",
            )

    # ---- the run -----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        self._prepare_cluster()
        try:
            jti = self._start_operator()
            return asyncio.run(self._measure(jti))
        finally:
            self._cleanup()

    def _on_sts(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind == "ADDED" and name not in self.sts_seen:
            self.sts_seen[name] = time.monotonic()
            self.changed.set()

    def _on_server(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        if kind != "DELETED" and is_ready(obj):
            if name not in self.ready_at:
                self.ready_at[name] = time.monotonic()
                self.changed.set()
        else:
            self.ready_at.pop(name, None)

    async def _until(self, done: Callable[[], bool], limit_s: float) -> bool:
        """Wait (on watch events) until ``done()``; False after ``limit_s`` seconds."""
        deadline = time.monotonic() + limit_s
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), timeout=min(left, 1.0))
        return True

    def _object_sizes(self) -> dict[str, dict[str, int]]:
        """Count and JSON size of the objects of each kind the operator watches and caches."""
        sizes = {}
        for kind in ("ollamaservers", "statefulsets", "services", "configmaps", "pods"):
            result = self.kubectl("-n", NAMESPACE, "get", kind, "-o", "json", check=False)
            if result.returncode != 0:
                continue
            items = json.loads(result.stdout).get("items") or []
            sizes[kind] = {
                "count": len(items),
                "json_bytes": sum(len(json.dumps(item, separators=(",", ":"))) for item in items),
            }
        return sizes

    def _operator_rss_mib(self) -> float:
        assert self.operator is not None
        return rss_kib(self.operator.pid) / 1024.0

    async def _measure(self, jti: str) -> dict[str, Any]:
        settings = self.settings
        info = connection_info(self.kubeconfig)
        api = aiohttp.ClientSession(
            headers=info.as_http_headers(),
            connector=aiohttp.TCPConnector(ssl=info.as_ssl_context()),
        )
        base = info.server.rstrip("/")
        servers_path = f"/apis/{GROUP}/{VERSION}/namespaces/{NAMESPACE}/{PLURAL}"
        watchers = [
            Watcher(
                "statefulsets",
                api,
                f"{base}/apis/apps/v1/namespaces/{NAMESPACE}/statefulsets",
                on=self._on_sts,
            ),
            Watcher("ollamaservers", api, base + servers_path, on=self._on_server),
        ]
        for watcher in watchers:
            watcher.start()
        await asyncio.sleep(1.0)
        run_offset = self.audit.offset()
        out: dict[str, Any] = {
            "service_cidr": self.service_cidr,
            "namespace": NAMESPACE,
            "resync_s": settings.resync_s,
            "rss_start_mib": self._operator_rss_mib(),
        }

        async def create(name: str) -> None:
            async with api.post(base + servers_path, json=server(name)) as resp:
                resp.raise_for_status()

        try:
            # 1. apply → StatefulSet, one object at a time.
            log.info("apply → StatefulSet: %d objects, one at a time", settings.latency_objects)
            latencies = []
            for i in range(settings.latency_objects):
                name = f"lat-{i:03d}"
                sent = time.monotonic()
                await create(name)
                if await self._until(partial(self.sts_seen.__contains__, name), 60):
                    latencies.append(self.sts_seen[name] - sent)
            out["apply_to_sts"] = {
                "objects": settings.latency_objects,
                "measured": len(latencies),
                "p50_s": _pct(latencies, 50),
                "p99_s": _pct(latencies, 99),
                "max_s": max(latencies, default=0.0),
                "mean_s": statistics.fmean(latencies) if latencies else 0.0,
            }
            log.info("  p50 %.3f s, p99 %.3f s", _pct(latencies, 50), _pct(latencies, 99))
            await self._until(
                lambda: all(
                    f"lat-{i:03d}" in self.ready_at for i in range(settings.latency_objects)
                ),
                settings.converge_timeout_s,
            )

            # 2. a burst of objects at once → all Ready.
            count = settings.burst_objects
            log.info("burst: %d objects at once", count)
            names = [f"burst-{i:03d}" for i in range(count)]
            out["burst"] = await self._burst(names, create, jti)
            out["rss_after_burst_mib"] = self._operator_rss_mib()
            out["objects_after_burst"] = settings.latency_objects + count
            log.info("  all Ready in %.1f s", out["burst"]["converged_s"] or -1)

            # 3. up to the scale count, then rest.
            extra = max(0, settings.scale_objects - settings.latency_objects - count)
            log.info("scale: %d more objects, %d in all", extra, settings.scale_objects)
            scale_names = [f"scale-{i:03d}" for i in range(extra)]
            out["scale"] = await self._burst(scale_names, create, jti)
            everything = len(self.ready_at)
            out["objects"] = everything
            log.info(
                "  %d objects Ready; settling, then %g s at rest",
                everything,
                settings.rest_window_s,
            )
            await self._settle(jti)
            start = self.audit.offset()
            rss = [self._operator_rss_mib()]
            end_at = time.monotonic() + settings.rest_window_s
            while time.monotonic() < end_at:
                await asyncio.sleep(min(5.0, max(0.0, end_at - time.monotonic())))
                rss.append(self._operator_rss_mib())
            await asyncio.sleep(1.0)  # the audit log is written after the response
            writes = self.audit.writes(start, mine(jti))
            out["rest"] = {
                "window_s": settings.rest_window_s,
                "writes": len(writes),
                "writes_per_min": len(writes) * 60.0 / settings.rest_window_s,
                "by_kind": summarize_writes(writes),
                "objects_ready_at_end": len(self.ready_at),
            }
            out["rss_at_scale_mib"] = max(rss)
            out["cached_kinds"] = self._object_sizes()
            out["rss_at_scale_samples_mib"] = rss
            log.info(
                "  %d writes in %g s; operator RSS %.1f MiB",
                len(writes),
                settings.rest_window_s,
                max(rss),
            )
        finally:
            for watcher in watchers:
                await watcher.stop()
            await api.close()
        # Writes in the bench namespace by another token of the operator's ServiceAccount:
        # another operator (cluster-wide) reconciled these objects too; the numbers are suspect.
        out["other_operator_writes"] = len(self.audit.writes(run_offset, mine(jti, others=True)))
        return out

    async def _burst(
        self, names: list[str], create: Callable[[str], Any], jti: str
    ) -> dict[str, Any]:
        if not names:
            return {"objects": 0, "converged_s": 0.0}
        gate = asyncio.Semaphore(32)
        start_offset = self.audit.offset()

        async def one(name: str) -> None:
            async with gate:
                await create(name)

        started = time.monotonic()
        await asyncio.gather(*(one(n) for n in names))
        created = time.monotonic() - started
        converged = await self._until(
            lambda: all(n in self.ready_at for n in names), self.settings.converge_timeout_s
        )
        last_sts = max((self.sts_seen.get(n, 0.0) for n in names), default=started)
        result: dict[str, Any] = {
            "objects": len(names),
            "create_s": created,
            "all_sts_s": last_sts - started if all(n in self.sts_seen for n in names) else None,
            "converged_s": (max(self.ready_at[n] for n in names) - started) if converged else None,
            "ready": sum(1 for n in names if n in self.ready_at),
        }
        await asyncio.sleep(1.0)
        writes = self.audit.writes(start_offset, mine(jti))
        result["writes"] = len(writes)
        result["writes_by_kind"] = summarize_writes(writes)
        return result

    async def _settle(self, jti: str, quiet_s: float = 5.0, limit_s: float = 60.0) -> None:
        """Wait until this operator made no write for ``quiet_s`` (at most ``limit_s``)."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            offset = self.audit.offset()
            await asyncio.sleep(quiet_s)
            if not self.audit.writes(offset, mine(jti)):
                return


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100.0 * len(ordered) + 0.5) - 1))
    return ordered[rank]

"""The kubelet's share of the full loop: real sidecars bound to the IPs of kwok's pods.

kwok fakes the kubelet: pods are scheduled, get an IP and turn Running, but no
container ever runs. The nodes of the local cluster carry podCIDRs inside
127.0.0.0/8, so every pod IP is a loopback address this machine can bind. The
:class:`PodSimulator` closes the loop by doing, for the pods of one namespace,
what a kubelet and a container runtime would:

* For every Running pod of an OllamaServer it starts an Ollama emulator (one per
  pod, so each replica pulls on its own) and the **real** sidecar,
  ``python -m ollama_operator.cli sidecar``, bound to the pod's IP. The
  controller then reaches ``<podIP>:9090/status`` through its unchanged polling
  path, exactly as in a cluster.
* It "mounts" the pod's volumes: the ConfigMap and Secrets named in the pod
  spec are written to a directory per volume mount, and kept in sync when they
  change, the way the kubelet refreshes mounted ConfigMaps (atomically, so the
  sidecar's file watcher sees one complete new version). The sidecar's config
  file is the mounted ``sidecar.yaml`` with the three things that cannot be
  shared between pods on one host rewritten: the upstream (this pod's
  emulator), the listen address (the pod IP) and file paths (into the mount
  directories).
* It runs the pod's readiness probe (the sidecar container's own
  ``readinessProbe``, port resolved by name) and writes the result into the
  pod's ``Ready``/``ContainersReady`` conditions, as the kubelet does. kwok
  alone would call every pod Ready at once; with the probe, a pod that is
  still pulling its models stays out of the StatefulSet's ready count, which
  is the behaviour the e2e tests assert.
* When a pod goes away (or loses its IP) its sidecar gets SIGTERM, then SIGKILL.

Everything runs in one background thread with its own event loop, so tests
stay synchronous (kubectl, ``wait_for``) while emulators keep streaming.
Traffic goes only to 127.0.0.0/8: a pod whose IP lies elsewhere is never
contacted and is reported in :attr:`PodSimulator.problems`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import yaml

from ollama_operator.controller.kube import Kube
from tests.integration.kube import REPO_ROOT
from tests.support.kubeconfig import kube_client
from tests.support.ollama_emulator import EmulatedModel, OllamaEmulator

log = logging.getLogger(__name__)

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=ollama-operator"
SIDECAR_CONTAINER = "sidecar"
#: Seconds a sidecar gets to exit after SIGTERM before it is killed.
STOP_GRACE = 10.0

T = TypeVar("T")
Json = dict[str, Any]


@dataclass(frozen=True)
class Pullable:
    """A model the emulators' registry serves, and how slowly.

    A pull sends ``chunks`` progress events per layer, ``delay`` seconds apart:
    it takes about ``layers * chunks * delay`` seconds.
    """

    name: str
    size: int = 8_000_000
    chunks: int = 4
    delay: float = 0.1
    layers: int = 1

    def model(self) -> EmulatedModel:
        return EmulatedModel.fake(self.name, size=self.size, layers=self.layers)


def rfc3339_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip) in LOOPBACK
    except ValueError:
        return False


def _condition(pod: Mapping[str, Any], type_: str) -> str | None:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return str(cond.get("status"))
    return None


def _sidecar(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in (pod.get("spec") or {}).get("containers") or []:
        if container.get("name") == SIDECAR_CONTAINER:
            return dict(container)
    return None


def _config_arg(container: Mapping[str, Any]) -> str | None:
    args = list(container.get("args") or [])
    for i, arg in enumerate(args):
        if arg == "--config" and i + 1 < len(args):
            return str(args[i + 1])
        if str(arg).startswith("--config="):
            return str(arg).split("=", 1)[1]
    return None


def _probe_target(container: Mapping[str, Any]) -> tuple[int, str] | None:
    """(port, path) of the container's HTTP readiness probe, named port resolved."""
    http = (container.get("readinessProbe") or {}).get("httpGet") or {}
    port = http.get("port")
    if port is None:
        return None
    if isinstance(port, str) and not port.isdigit():
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports") or []}
        port = named.get(port)
        if port is None:
            return None
    return int(port), str(http.get("path") or "/")


class MissingSource(Exception):
    """A ConfigMap or Secret a pod mounts does not exist (yet): the kubelet would wait."""


@dataclass
class Mounts:
    """A pod's volume mounts as local directories: mountPath → directory, and the files."""

    dirs: dict[str, Path]
    files: dict[Path, bytes]

    def translate(self, path: str) -> Path | None:
        """Where a path inside the container lies here (longest mount wins)."""
        for mount in sorted(self.dirs, key=len, reverse=True):
            prefix = mount.rstrip("/") + "/"
            if path.startswith(prefix):
                return self.dirs[mount] / path[len(prefix) :]
        return None


def volume_files(
    volume: Mapping[str, Any],
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
) -> dict[str, bytes] | None:
    """The files a ConfigMap/Secret volume shows (None for other volume types)."""
    if "configMap" in volume:
        source = volume["configMap"]
        obj = configmaps.get(source.get("name"))
        if obj is None:
            if source.get("optional"):
                return {}
            raise MissingSource(f"ConfigMap {source.get('name')}")
        data = {k: v.encode() for k, v in (obj.get("data") or {}).items()}
        data.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    elif "secret" in volume:
        source = volume["secret"]
        obj = secrets.get(source.get("secretName"))
        if obj is None:
            if source.get("optional"):
                return {}
            raise MissingSource(f"Secret {source.get('secretName')}")
        data = {k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()}
    else:
        return None
    items = source.get("items")
    if not items:
        return data
    return {item["path"]: data[item["key"]] for item in items if item["key"] in data}


def pod_mounts(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    root: Path,
    configmaps: Mapping[str, Mapping[str, Any]],
    secrets: Mapping[str, Mapping[str, Any]],
) -> Mounts:
    """What the kubelet would mount into ``container``, laid out under ``root``."""
    volumes = {v["name"]: v for v in (pod.get("spec") or {}).get("volumes") or []}
    dirs: dict[str, Path] = {}
    files: dict[Path, bytes] = {}
    for index, mount in enumerate(container.get("volumeMounts") or []):
        volume = volumes.get(mount["name"])
        if volume is None:
            continue
        slug = re.sub(r"[^A-Za-z0-9]+", "-", mount["mountPath"]).strip("-")
        local = root / "mounts" / f"{index}-{slug}"
        dirs[mount["mountPath"]] = local
        shown = volume_files(volume, configmaps, secrets)
        for rel, content in (shown or {}).items():
            sub = mount.get("subPath")
            if sub and rel != sub:
                continue
            files[local / (rel if not sub else Path(rel).name)] = content
    return Mounts(dirs, files)


def write_atomically(path: Path, content: bytes) -> bool:
    """Replace ``path`` by a complete new file (a new inode); False when unchanged."""
    try:
        if path.read_bytes() == content:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)
    return True


def render_config(raw: bytes, mounts: Mounts, *, upstream: str, host: str) -> bytes:
    """The mounted sidecar.yaml with upstream, listen address and file paths made local."""
    doc: Json = yaml.safe_load(raw) or {}
    doc["upstream"] = upstream
    doc["listenHost"] = host
    for key in ("apiKeysFile", "internalTokenFile"):
        if doc.get(key):
            local = mounts.translate(str(doc[key]))
            if local is not None:
                doc[key] = str(local)
    return yaml.safe_dump(doc, sort_keys=True).encode()


@dataclass
class SimPod:
    """One simulated pod: its emulator, its sidecar process, its files."""

    name: str
    uid: str
    ip: str
    root: Path
    emulator: OllamaEmulator
    config_path: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    #: Sidecar processes started for this pod (1 unless it crashed).
    starts: int = 0
    #: Last readiness this simulator wrote, and when (monotonic).
    reported_ready: bool | None = None
    reported_at: float = 0.0
    probe: tuple[int, str] | None = None
    config_writes: int = 0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@dataclass(frozen=True)
class PodRecord:
    """What a test may read about a simulated pod, copied out of the simulator's thread."""

    name: str
    uid: str
    ip: str
    pid: int | None
    starts: int
    config_writes: int
    config_path: Path
    log_path: Path


async def _items(kube: Kube, path: str, selector: str | None = None) -> list[Json]:
    query = [("labelSelector", selector)] if selector else []
    return list((await kube.request("GET", path, query=query)).get("items") or [])


class PodSimulator:
    """Runs sidecars (and emulated Ollamas) for the OllamaServer pods of one namespace."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        workdir: Path,
        registry: Iterable[Pullable] = (),
        *,
        interval: float = 0.5,
        probe_readiness: bool = True,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.workdir = workdir
        #: What a *new* pod's emulator can pull (existing pods keep their registry).
        self.registry: list[Pullable] = list(registry)
        self.interval = interval
        self.probe_readiness = probe_readiness
        #: Things that must never happen (a non-loopback pod IP, a crashed sidecar …).
        self.problems: list[str] = []
        #: Every pod this simulator ever ran, in start order (pod name, uid).
        self.history: list[tuple[str, str]] = []
        self._pods: dict[str, SimPod] = {}
        self._retired: list[SimPod] = []
        self._procs: list[subprocess.Popen[bytes]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._session: aiohttp.ClientSession | None = None
        self._ticks = 0
        #: What the last pass saw of each pod, and why it was (not) simulated.
        self._seen: dict[str, str] = {}

    # ---- test-facing surface ----------------------------------------------------------------

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._thread_main, name="pod-simulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the pod simulator did not start within 30s")
        if self._startup_error is not None:
            raise RuntimeError(f"the pod simulator failed to start: {self._startup_error!r}")

    def stop(self) -> None:
        """Stop every sidecar and emulator; kills what would not stop. Safe to call twice."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout=STOP_GRACE + 20)
        with self._lock:
            procs = list(self._procs)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=5)

    def __enter__(self) -> PodSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pods(self) -> dict[str, PodRecord]:
        """The pods simulated right now, by pod name."""
        return self.call(self._records)

    def call(self, fn: Callable[[], T], timeout: float = 15) -> T:
        """Run ``fn`` in the simulator's thread (emulators are not thread-safe)."""
        if self._loop is None:
            raise RuntimeError("the pod simulator is not running")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def on_emulator(self, pod: str, fn: Callable[[OllamaEmulator], T]) -> T:
        """Run ``fn`` against the emulated Ollama of a running pod (in the simulator's thread)."""

        def run() -> T:
            sim = next((p for p in self._pods.values() if p.name == pod), None)
            if sim is None:
                raise KeyError(f"pod {pod} is not simulated")
            return fn(sim.emulator)

        return self.call(run)

    def pulls(self, pod: str) -> list[str]:
        """Models the pod's sidecar asked its Ollama to pull, in order."""

        def names(emulator: OllamaEmulator) -> list[str]:
            return [
                str((r.body or {}).get("model") or (r.body or {}).get("name"))
                for r in emulator.requests_to("/api/pull")
            ]

        return self.on_emulator(pod, names)

    def diagnostics(self) -> str:
        """Sidecar log tails and problems, for a failed test's report."""
        with self._lock:
            pods = [*self._retired, *self._pods.values()]
        parts = [f"pod simulator: {self._ticks} ticks, problems: {self.problems or 'none'}"]
        parts.append("pods in the last pass: " + (", ".join(self._seen.values()) or "none"))
        for pod in pods:
            parts.append(f"--- sidecar of {pod.name} ({pod.ip}, uid {pod.uid[:8]}) ---")
            parts.append(pod.log_tail())
        return "\n".join(parts)

    # ---- the loop ---------------------------------------------------------------------------

    def _thread_main(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        api = kube_client(self.kubeconfig)
        try:
            await api.request("GET", "/version")  # fail at start, not on the first tick
        except BaseException as exc:
            await api.close()
            self._startup_error = exc
            self._ready.set()
            return
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1.0))
        self._ready.set()
        try:
            while not self._stopping.is_set():
                try:
                    await self._tick(api)
                except Exception as exc:
                    log.warning("pod simulator pass failed: %r", exc)
                self._ticks += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval)
        finally:
            await asyncio.gather(
                *(self._stop_pod(uid) for uid in list(self._pods)), return_exceptions=True
            )
            await self._session.close()
            await api.close()

    async def _tick(self, api: Kube) -> None:
        base = f"/api/v1/namespaces/{self.namespace}"
        pods = await _items(api, f"{base}/pods", MANAGED_SELECTOR)
        configmaps = {c["metadata"]["name"]: c for c in await _items(api, f"{base}/configmaps")}
        secrets = {s["metadata"]["name"]: s for s in await _items(api, f"{base}/secrets")}
        alive: set[str] = set()
        self._seen = {}
        for pod in pods:
            meta, status = pod["metadata"], pod.get("status") or {}
            uid, ip = str(meta["uid"]), str(status.get("podIP") or "")
            # A pod that stays Pending on a node is one kwok does not manage (yet).
            self._seen[uid] = (
                f"{meta['name']} ({status.get('phase')}, node {pod['spec'].get('nodeName') or '-'}"
                f", IP {ip or '-'}{', deleting' if meta.get('deletionTimestamp') else ''})"
            )
            if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not ip:
                continue
            if not _is_loopback(ip):
                self._problem(f"pod {meta['name']} has IP {ip}, outside 127.0.0.0/8: not contacted")
                continue
            sim = self._pods.get(uid)
            if sim is not None and sim.ip != ip:
                await self._stop_pod(uid)
                sim = None
            try:
                if sim is None:
                    sim = await self._start_pod(pod, configmaps, secrets)
                else:
                    self._sync_files(sim, pod, configmaps, secrets)
            except MissingSource as exc:
                # A new pod waits for its volumes; a running one keeps what it has mounted.
                log.info("pod %s: %s is missing", meta["name"], exc)
            if sim is None:
                continue
            alive.add(uid)
            self._check_process(sim)
            if self.probe_readiness:
                await self._probe(api, sim, pod)
        for uid in set(self._pods) - alive:
            await self._stop_pod(uid)

    # ---- pods -------------------------------------------------------------------------------

    async def _start_pod(
        self,
        pod: Mapping[str, Any],
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
    ) -> SimPod | None:
        meta = pod["metadata"]
        container = _sidecar(pod)
        if container is None:
            self._problem(f"pod {meta['name']} has no '{SIDECAR_CONTAINER}' container")
            return None
        root = self.workdir / f"{meta['name']}-{str(meta['uid'])[:8]}"
        emulator = OllamaEmulator(registry=[p.model() for p in self.registry])
        for pullable in self.registry:
            emulator.set_pull(pullable.name, chunks=pullable.chunks, delay=pullable.delay)
        await emulator.start()
        sim = SimPod(
            name=str(meta["name"]),
            uid=str(meta["uid"]),
            ip=str(pod["status"]["podIP"]),
            root=root,
            emulator=emulator,
            config_path=root / "sidecar.yaml",
            log_path=root / "sidecar.log",
            probe=_probe_target(container),
        )
        try:
            self._sync_files(sim, pod, configmaps, secrets)
        except BaseException:
            await emulator.stop()
            raise
        with self._lock:
            self._pods[sim.uid] = sim
            self.history.append((sim.name, sim.uid))
        self._spawn(sim)
        log.info("pod %s (%s): sidecar started, upstream %s", sim.name, sim.ip, emulator.url)
        return sim

    def _sync_files(
        self,
        sim: SimPod,
        pod: Mapping[str, Any],
        configmaps: Mapping[str, Mapping[str, Any]],
        secrets: Mapping[str, Mapping[str, Any]],
    ) -> None:
        container = _sidecar(pod)
        assert container is not None
        mounts = pod_mounts(pod, container, sim.root, configmaps, secrets)
        for path, content in mounts.files.items():
            write_atomically(path, content)
        arg = _config_arg(container)
        local = mounts.translate(arg) if arg else None
        if local is None or local not in mounts.files:
            raise MissingSource(f"the sidecar config {arg}")
        rendered = render_config(
            mounts.files[local], mounts, upstream=sim.emulator.url, host=sim.ip
        )
        if write_atomically(sim.config_path, rendered):
            sim.config_writes += 1

    def _spawn(self, sim: SimPod) -> None:
        if sim.log_file is None:
            sim.log_file = open(sim.log_path, "ab")  # noqa: SIM115 - closed in _stop_pod
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)  # a pod gets no API credentials
        env["PYTHONUNBUFFERED"] = "1"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ollama_operator.cli",
                "sidecar",
                "--config",
                str(sim.config_path),
                "--host",
                sim.ip,
            ],
            stdout=sim.log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            env=env,
        )
        with self._lock:
            self._procs.append(proc)
        sim.proc = proc
        sim.starts += 1

    def _check_process(self, sim: SimPod) -> None:
        """A sidecar that exited on its own is a bug: record it, restart it like the kubelet."""
        if sim.proc is None or sim.proc.poll() is None:
            return
        self._problem(
            f"sidecar of {sim.name} exited with {sim.proc.returncode}:\n{sim.log_tail(1500)}"
        )
        if sim.starts < 3:
            self._spawn(sim)

    async def _stop_pod(self, uid: str) -> None:
        with self._lock:
            sim = self._pods.pop(uid, None)
            if sim is not None:
                self._retired.append(sim)
        if sim is None:
            return
        proc = sim.proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, STOP_GRACE)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 5)
        await sim.emulator.stop()
        if sim.log_file is not None:
            sim.log_file.close()
            sim.log_file = None
        log.info("pod %s (%s): sidecar stopped", sim.name, sim.ip)

    # ---- readiness --------------------------------------------------------------------------

    async def _probe(self, api: Kube, sim: SimPod, pod: Mapping[str, Any]) -> None:
        """The kubelet's readiness probe, and its verdict written into the pod's status."""
        if sim.probe is None or self._session is None:
            return
        port, path = sim.probe
        try:
            async with self._session.get(f"http://{sim.ip}:{port}{path}") as resp:
                ready = 200 <= resp.status < 400
        except (aiohttp.ClientError, TimeoutError):
            ready = False
        listed = _condition(pod, "Ready") == "True"
        now = time.monotonic()
        if listed == ready or (sim.reported_ready == ready and now - sim.reported_at < 2.0):
            return
        await api.request(
            "PATCH",
            f"/api/v1/namespaces/{self.namespace}/pods/{sim.name}/status",
            body=_readiness_patch(pod, ready),
            content_type="application/strategic-merge-patch+json",
        )
        sim.reported_ready, sim.reported_at = ready, now

    # ---- helpers ----------------------------------------------------------------------------

    def _records(self) -> dict[str, PodRecord]:
        return {
            sim.name: PodRecord(
                name=sim.name,
                uid=sim.uid,
                ip=sim.ip,
                pid=sim.proc.pid if sim.proc is not None else None,
                starts=sim.starts,
                config_writes=sim.config_writes,
                config_path=sim.config_path,
                log_path=sim.log_path,
            )
            for sim in self._pods.values()
        }

    def _problem(self, text: str) -> None:
        if text not in self.problems:
            log.error("pod simulator: %s", text)
            self.problems.append(text)


def _readiness_patch(pod: Mapping[str, Any], ready: bool) -> Json:
    """Pod status as the kubelet writes it after a readiness probe flipped."""
    state = "True" if ready else "False"
    now = rfc3339_now()
    # A strategic merge patch deletes a key set to null: a Ready pod keeps no stale reason.
    extra: Json = {"reason": None, "message": None}
    if not ready:
        extra = {
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{SIDECAR_CONTAINER}]",
        }
    statuses = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        entry = dict(cs)
        if entry.get("name") == SIDECAR_CONTAINER:
            entry["ready"] = ready
        statuses.append(entry)
    patch: Json = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": state, "lastTransitionTime": now, **extra},
                {"type": "ContainersReady", "status": state, "lastTransitionTime": now, **extra},
            ]
        }
    }
    if statuses:
        patch["status"]["containerStatuses"] = statuses
    return patch

"""The rows of the sidecar table: what each proxy is, how it is started and what it is sent.

Every target points at the same upstream (:mod:`bench.upstream`) and listens on
127.0.0.1:

- ``direct``: no proxy; the client talks to the upstream. Its numbers are the upstream's
  speed alone, and the baseline the others' *added* latency is measured against.
- ``nginx``: the Debian package, one worker (``worker_processes 1``: one core, like the
  one event loop of a Python gateway), ``proxy_buffering off`` (streams are relayed as they
  arrive), HTTP/1.1 keep-alive to the upstream, no access log.
- ``litellm``: LiteLLM's proxy (PyPI ``litellm[proxy]``, its own virtualenv, one worker),
  with a master key (auth on, as ours), each model an ``ollama_chat/`` model at the
  upstream. Clients speak OpenAI's API to it (its native one), so its rows measure the
  translation Ollama → OpenAI too: that is how LiteLLM is used.
- ``passthrough``: :mod:`bench.passthrough`, the floor for a Python proxy.
- ``sidecar``: ``ollama-operator sidecar`` as it runs in a pod: API keys on (one key in a
  keys file), metrics on, validation and the model check on, cache off (the default), no
  rate limit (the default); ``maxConcurrent`` and ``maxQueue`` raised to 1024 so the
  1,000-stream test fits (the defaults, 8 and 64, would refuse most of them with 503).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from tests.integration.kube import cache_dir

from bench.procs import Service, free_port
from bench.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PROMPT = "Why is the sky blue?"
SIDECAR_KEY = "bench-key-0123456789abcdef0123456789abcdef"
LITELLM_KEY = "sk-bench-0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
MODELS = ("bench", "bench-tick", "bench-slow")


@dataclass(frozen=True)
class Request:
    """One kind of request a target is sent."""

    path: str
    body: bytes


@dataclass
class Target:
    """A proxy (or none) in front of the upstream."""

    name: str
    port: int
    openai: bool = False
    key: str = ""
    service: Service | None = None
    admin_port: int = 0
    notes: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def request(self, model: str, stream: bool) -> Request:
        if self.openai:
            body = {
                "model": model,
                "messages": [{"role": "user", "content": PROMPT}],
                "stream": stream,
            }
            return Request("/v1/chat/completions", json.dumps(body).encode())
        body2: dict[str, object] = {"model": model, "prompt": PROMPT}
        if not stream:
            body2["stream"] = False
        return Request("/api/generate", json.dumps(body2).encode())


def python() -> str:
    """The interpreter running the benchmark (the project's virtualenv)."""
    return sys.executable


def start_upstream(settings: Settings, workdir: Path) -> tuple[Service, int]:
    service = Service(
        "upstream",
        [
            python(),
            "-m",
            "bench.upstream",
            "--port",
            "0",
            "--chunks",
            str(settings.stream_chunks),
            "--tick-chunks",
            str(settings.tick_chunks),
            "--tick-ms",
            str(settings.tick_ms),
            "--slow-seconds",
            str(settings.held_seconds),
        ],
        workdir / "upstream.log",
        cwd=REPO,
    )
    service.start()
    port = int(service.wait_log("PORT ", 20))
    return service, port


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 16384;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream ollama {{ server 127.0.0.1:{upstream}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      proxy_pass http://ollama;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""


def start_nginx(upstream: int, workdir: Path) -> Target:
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed (bench/install.sh installs nginx-light)")
    directory = workdir / "nginx"
    directory.mkdir(exist_ok=True)
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, upstream=upstream, port=port))
    service = Service(
        "nginx",
        [binary, "-p", str(directory), "-c", str(conf), "-e", str(directory / "error.log")],
        workdir / "nginx.log",
    )
    service.start()
    service.wait_http(f"http://127.0.0.1:{port}/", 20)
    return Target("nginx", port, service=service)


def litellm_binary() -> Path:
    """``$LITELLM_VENV/bin/litellm`` (bench/bench.mk sets it; default under $CACHE_DIR)."""
    venv = os.environ.get("LITELLM_VENV") or str(cache_dir() / "litellm-venv")
    return Path(venv) / "bin" / "litellm"


def start_litellm(upstream: int, workdir: Path) -> Target:
    binary = litellm_binary()
    if not binary.is_file():
        raise RuntimeError(f"LiteLLM is not installed: no {binary}")
    directory = workdir / "litellm"
    directory.mkdir(exist_ok=True)
    config = {
        "model_list": [
            {
                "model_name": model,
                "litellm_params": {
                    "model": f"ollama_chat/{model}",
                    "api_base": f"http://127.0.0.1:{upstream}",
                },
            }
            for model in MODELS
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": LITELLM_KEY},
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    port = free_port()
    env = dict(os.environ)
    env.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # offline: no fetch of the price list
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        NO_PROXY="127.0.0.1,localhost",
    )
    service = Service(
        "litellm",
        [
            str(binary),
            "--config",
            str(path),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--num_workers",
            "1",
        ],
        workdir / "litellm.log",
        env=env,
        cwd=directory,
    )
    service.start()
    service.wait_http(f"http://127.0.0.1:{port}/health/liveliness", 180)
    return Target("litellm", port, openai=True, key=LITELLM_KEY, service=service)


def start_passthrough(
    upstream: int, workdir: Path, *, name: str = "passthrough", wrapper: list[str] | None = None
) -> Target:
    """:mod:`bench.passthrough` (or ``wrapper + its arguments``, e.g. under a profiler)."""
    args = ["--upstream", f"http://127.0.0.1:{upstream}", "--port", "0"]
    argv = [*wrapper, *args] if wrapper else [python(), "-m", "bench.passthrough", *args]
    service = Service(name, argv, workdir / f"{name}.log", cwd=REPO)
    service.start()
    port = int(service.wait_log("PORT ", 30))
    return Target(name, port, service=service)


def sidecar_config(upstream: int, workdir: Path, name: str) -> tuple[Path, int, int]:
    """The sidecar's config file (auth and metrics on, cache off); returns (path, ports)."""
    directory = workdir / name
    directory.mkdir(exist_ok=True)
    keys = directory / "keys"
    keys.write_text(f"# one key, as a mounted Secret holds it\n{SIDECAR_KEY}\n")
    token = directory / "token"
    token.write_text("bench-internal-token\n")
    public, admin = free_port(), free_port()
    config = {
        "server": "bench",
        "namespace": "bench",
        "upstream": f"http://127.0.0.1:{upstream}",
        "listenHost": "127.0.0.1",
        "publicPort": public,
        "adminPort": admin,
        "models": [{"name": model} for model in MODELS],
        "apiKeysFile": str(keys),
        "internalTokenFile": str(token),
        "gateway": {"maxConcurrent": 1024, "maxQueue": 1024, "cache": {"enabled": False}},
    }
    path = directory / "sidecar.yaml"
    path.write_text(yaml.safe_dump(config))
    return path, public, admin


def start_sidecar(
    upstream: int, workdir: Path, *, name: str = "sidecar", wrapper: list[str] | None = None
) -> Target:
    """``ollama-operator sidecar`` (or ``wrapper + [config]``, e.g. under a profiler)."""
    config, public, admin = sidecar_config(upstream, workdir, name)
    argv = (
        [*wrapper, str(config)]
        if wrapper
        else [python(), "-m", "ollama_operator.cli", "sidecar", "--config", str(config)]
    )
    service = Service(name, argv, workdir / f"{name}.log", cwd=REPO)
    service.start()
    service.wait_http(f"http://127.0.0.1:{admin}/readyz", 60)
    return Target(name, public, key=SIDECAR_KEY, service=service, admin_port=admin)

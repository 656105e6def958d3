"""``ollama-operator sidecar``: one pod's gateway, admin port, model agent and reloader.

This module only assembles: it reads the config, builds the pieces (the
:class:`~.gateway.Gateway` on the public port, :class:`~.admin.Admin` on the
admin port, the :class:`~.agent.ModelAgent`, a :class:`~.reload.FileWatcher`),
starts them in order and stops them in reverse. SIGTERM starts a graceful
shutdown: both ports stop accepting connections at once, requests in flight
(streams included) get up to :data:`SHUTDOWN_GRACE` seconds to finish, then the
agent and the connection pool stop.

Reloads happen here too, because they touch several pieces: a changed config
file updates the gateway's live settings and the agent's models; a changed
keys or token file swaps the keys or token. A reloaded config that is
unreadable, empty, invalid, or would turn auth or the internal token off is
refused (:mod:`.reload_rules`): it is logged once, counted, and the pod keeps
serving with the last good one.

Nothing here logs a key or a token; the keys file is named, never its content.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Sequence
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import disable_created_metrics

from ..api.sidecar_config import SidecarConfig
from ..api.spec import ModelSpec
from ..ollama import OllamaClient
from .admin import Admin, AgentView, InternalToken
from .agent import AgentObserver, AgentSettings, ModelAgent
from .auth import KeyRing, load_keys
from .fdlimit import public_connections, raise_open_files_limit
from .gateway import Gateway
from .metrics import GatewayMetrics
from .protocol import GatewayServer
from .reload import DEFAULT_INTERVAL, FileWatcher
from .reload_rules import ReloadRefused, load_reload
from .settings import ConnectionSettings, GatewaySettings, needs_restart

log = logging.getLogger(__name__)


class Agent(AgentView, Protocol):
    """What the sidecar needs of its model agent (:class:`~.agent.ModelAgent`)."""

    def subscribe(self, observer: AgentObserver) -> None:
        """Send pull progress and phase changes to ``observer`` (the metrics)."""

    def update(self, models: Sequence[ModelSpec], prune: bool) -> None:
        """Take the models of a reloaded config."""

    def present_models(self) -> set[str]:
        """Models Ollama has, by normalised name."""

    async def start(self) -> None:
        """Start working in the background."""

    async def stop(self) -> None:
        """Stop, cancelling work in flight."""


#: Seconds requests in flight get to finish after SIGTERM (Kubernetes waits 30 by default).
SHUTDOWN_GRACE = 25.0


class Sidecar:
    """Everything one pod's sidecar runs, started and stopped together."""

    def __init__(
        self,
        config: SidecarConfig,
        *,
        config_path: str | None = None,
        host: str | None = None,
        agent: Agent | None = None,
        agent_settings: AgentSettings | None = None,
        reload_interval: float = DEFAULT_INTERVAL,
        ports: tuple[int, int] | None = None,
    ) -> None:
        """``agent``: an agent to use instead of one built from the config;
        ``ports``: (public, admin) instead of the config's, 0 for any free port.
        """
        self.config = config
        self.config_path = config_path
        self.host = host or config.listen_host
        self._ports = ports or (config.public_port, config.admin_port)
        self.metrics = GatewayMetrics()
        self._client: OllamaClient | None = None
        if agent is None:
            self._client = OllamaClient(config.upstream)
            agent = ModelAgent(
                self._client,
                config.models,
                config.models_prune,
                settings=agent_settings,
            )
        agent.subscribe(self.metrics)
        self.agent: Agent = agent
        self.gateway = Gateway(
            GatewaySettings.from_config(config),
            keys=self._read_keys(config.api_keys_file),
            metrics=self.metrics,
            present_models=agent.present_models,
        )
        self.admin = Admin(agent, self.metrics, self._read_token(config.internal_token_file))
        self.public_server = GatewayServer(
            self.gateway.handle,
            settings=public_connections(config),
            on_refused=self.metrics.refused_connections.inc,
            handler_cancellation=True,
            access_log=None,
        )
        self.metrics.open_connections.set_function(lambda: len(self.public_server.open))
        self.admin_server = GatewayServer(
            self.admin.handle,
            settings=ConnectionSettings.from_config(config, capped=False),
            access_log=None,
        )
        self.watcher = FileWatcher(reload_interval)
        self.public_port = 0
        self.admin_port = 0
        self._runners: list[web.BaseRunner] = []

    # ---- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on both ports, start the agent and the file watcher."""
        if self.config.api_keys_file is None:
            log.warning(
                "AUTH IS OFF: no apiKeysFile is configured, so anyone who can reach port %d "
                "can use Ollama; set spec.gateway.auth.apiKeysSecretRef on the OllamaServer",
                self.config.public_port,
            )
        await self.gateway.start()
        public = web.ServerRunner(self.public_server, shutdown_timeout=SHUTDOWN_GRACE)
        admin = web.ServerRunner(self.admin_server, shutdown_timeout=1.0)
        for runner in (public, admin):
            await runner.setup()
            self._runners.append(runner)
        self.public_port = await self._listen(public, self._ports[0])
        self.admin_port = await self._listen(admin, self._ports[1])
        await self.agent.start()
        if self.config_path is not None:
            self.watcher.watch(self.config_path, self._config_changed)
        self._watch_secrets(self.config)
        self.watcher.start()
        log.info(
            "sidecar for %s/%s: public %s:%d, admin %s:%d, upstream %s, %d models declared",
            self.config.namespace or "-",
            self.config.server or "-",
            self.host,
            self.public_port,
            self.host,
            self.admin_port,
            self.config.upstream,
            len(self.config.models),
        )

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish, then stop everything else."""
        await self.watcher.stop()
        await asyncio.gather(*(runner.cleanup() for runner in self._runners))
        self._runners.clear()
        await self.agent.stop()
        if self._client is not None:
            await self._client.close()
        await self.gateway.close()

    async def _listen(self, runner: web.BaseRunner, port: int) -> int:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        site = web.SockSite(runner, sock, backlog=1024)
        await site.start()
        return int(sock.getsockname()[1])

    @property
    def public_url(self) -> str:
        """Base URL of the public port (for tests and logs)."""
        return f"http://{self._url_host}:{self.public_port}"

    @property
    def admin_url(self) -> str:
        """Base URL of the admin port."""
        return f"http://{self._url_host}:{self.admin_port}"

    @property
    def _url_host(self) -> str:
        if self.host in ("0.0.0.0", ""):  # noqa: S104 - naming the wildcard, not binding it
            return "127.0.0.1"
        return f"[{self.host}]" if ":" in self.host else self.host

    # ---- reloading ---------------------------------------------------------------------------

    def _watch_secrets(self, config: SidecarConfig) -> None:
        for path in (config.api_keys_file, config.internal_token_file):
            if path is not None:
                self.watcher.unwatch(path)
        if config.api_keys_file is not None:
            self.watcher.watch(config.api_keys_file, self._keys_changed)
        if config.internal_token_file is not None:
            self.watcher.watch(config.internal_token_file, self._token_changed)

    def _config_changed(self) -> None:
        assert self.config_path is not None
        try:
            new = load_reload(self.config_path, self.config)
        except ReloadRefused as refused:
            self.metrics.reloads.labels("config", "error").inc()
            self.metrics.config_refusals.labels(refused.reason).inc()
            log.error(
                "config %s refused (%s); keeping the previous one: %s",
                self.config_path,
                refused.reason,
                refused.message,
            )
            return
        old, self.config = self.config, new
        for field in needs_restart(old, new):
            log.warning("config field %s changed; it takes effect when the pod restarts", field)
        self.gateway.configure(GatewaySettings.from_config(new))
        self.public_server.configure(public_connections(new))
        self.admin_server.configure(ConnectionSettings.from_config(new, capped=False))
        self.agent.update(new.models, new.models_prune)
        for name in {m.name for m in old.models} - {m.name for m in new.models}:
            self.metrics.forget_model(name)
        if (old.api_keys_file, old.internal_token_file) != (
            new.api_keys_file,
            new.internal_token_file,
        ):
            for path in (old.api_keys_file, old.internal_token_file):
                if path is not None:
                    self.watcher.unwatch(path)
            self._watch_secrets(new)
            self._keys_changed()
            self._token_changed()
        self.metrics.reloads.labels("config", "ok").inc()
        log.info("config reloaded: %d models declared", len(new.models))

    def _keys_changed(self) -> None:
        keys = self._read_keys(self.config.api_keys_file)
        self.gateway.set_keys(keys)
        self.metrics.reloads.labels("keys", "ok" if keys.enabled and len(keys) else "error").inc()
        if keys.enabled:
            log.info("API keys reloaded: %d keys", len(keys))
        else:
            log.warning("AUTH IS OFF: the config no longer names an API keys file")

    def _token_changed(self) -> None:
        self.admin.token = self._read_token(self.config.internal_token_file)
        log.info("internal token reloaded")

    @staticmethod
    def _read_keys(path: str | None) -> KeyRing:
        try:
            keys = load_keys(path)
        except OSError as exc:
            log.error(
                "cannot read the API keys file %s (%s): every request is refused until it is "
                "readable",
                path,
                exc.strerror or type(exc).__name__,
            )
            return KeyRing.of(())
        if keys.enabled and not len(keys):
            log.error("the API keys file %s holds no key: every request is refused", path)
        return keys

    @staticmethod
    def _read_token(path: str | None) -> InternalToken:
        try:
            return InternalToken.load(path)
        except OSError as exc:
            log.error(
                "cannot read the internal token file %s (%s): /status refuses everyone",
                path,
                exc.strerror or type(exc).__name__,
            )
            return InternalToken(None, configured=True)


# ---- the command -------------------------------------------------------------------------------


def _loop_factory() -> Any:
    """uvloop's event loop when installed (the ``fast`` extra), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def serve(config: SidecarConfig, config_path: str | None, host: str | None) -> None:
    """Run a sidecar until SIGTERM or SIGINT, then shut it down gracefully."""
    sidecar = Sidecar(config, config_path=config_path, host=host)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await sidecar.start()
    try:
        await stopping.wait()
        log.info("shutting down: finishing requests in flight (up to %gs)", SHUTDOWN_GRACE)
    finally:
        await sidecar.stop()


def main(config_path: str, host: str | None = None) -> int:
    """Entry point of ``ollama-operator sidecar``; returns the exit status."""
    if not logging.getLogger().handlers:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
    try:
        config = SidecarConfig.load(config_path)
    except Exception as exc:
        log.error("cannot load the sidecar config %s: %s", config_path, exc)
        return 2
    disable_created_metrics()  # type: ignore[no-untyped-call]
    raise_open_files_limit()
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve(config, config_path, host))
    return 0

"""File descriptors: as many as the container may have, and the public port's cap below that.

Every client connection is a file descriptor. Containers often start with a
soft ``RLIMIT_NOFILE`` of 1024 under a much higher hard limit, and a process
at its limit cannot ``accept()``: not on the public port, and not on the admin
port either, so the kubelet's probes would fail and the pod would be
restarted by whoever flooded it. So the sidecar raises its soft limit to the
hard one at start (:func:`raise_open_files_limit`, which needs no privilege),
and the public port's connection cap (``clients.maxConnections``) is held
:data:`RESERVED` descriptors below the limit (:func:`public_connections`):
those stay for the admin port, the connection pool to Ollama, the watched
files and the logs.
"""

from __future__ import annotations

import logging
import resource

from ..api.sidecar_config import SidecarConfig
from .settings import ConnectionSettings

log = logging.getLogger(__name__)

#: Descriptors kept free of public clients.
RESERVED = 128
#: What "unlimited" is taken to mean (Linux's default ``fs.nr_open``).
UNLIMITED = 1 << 20


def _finite(limit: int) -> int:
    return UNLIMITED if limit == resource.RLIM_INFINITY else limit


def open_files_limit() -> int:
    """The soft limit in force."""
    return _finite(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def raise_open_files_limit() -> int:
    """Raise the soft limit to the hard one; the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _finite(hard)
    if _finite(soft) >= target:
        return _finite(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("cannot raise the open files limit from %d to %d: %s", soft, target, exc)
        return _finite(soft)
    log.info("open files limit raised from %d to %d", soft, target)
    return target


def public_connections(config: SidecarConfig) -> ConnectionSettings:
    """The public port's settings, its cap held below the open files limit."""
    settings = ConnectionSettings.from_config(config, capped=True)
    cap = settings.max_connections
    room = max(1, open_files_limit() - RESERVED)
    if cap is None or cap <= room:
        return settings
    log.warning(
        "clients.maxConnections is %d but the open files limit leaves room for %d: using %d",
        cap,
        room,
        room,
    )
    return ConnectionSettings(settings.header_timeout, settings.keepalive_timeout, room)

"""Noticing that a mounted file changed, without inotify.

Kubernetes updates a mounted ConfigMap or Secret by writing a new directory
and swapping a symlink (``..data``) to it: the path stays, what it points to
changes. Inotify on the path sees nothing, and inotify is not always available
anyway. So the sidecar polls: every second or so it ``stat``\\ s each watched
path (following links) and compares (device, inode, size, mtime) with what it
saw before. A change, an appearance or a disappearance calls the path's
callback once. A stat is a few microseconds; a pod watches three files.

:meth:`FileWatcher.poll` is one synchronous pass (what tests drive);
:meth:`FileWatcher.run` loops it. Callbacks may be coroutines; one that raises
is logged and does not stop the watcher.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import os
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Seconds between two passes.
DEFAULT_INTERVAL = 1.0

Callback = Callable[[], Awaitable[None] | None]
Identity = tuple[int, int, int, int] | None


def identity(path: str) -> Identity:
    """What tells two versions of a file apart; None when it does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class FileWatcher:
    """Calls back when a watched file changes."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self._watched: dict[str, tuple[Identity, Callback]] = {}
        self._task: asyncio.Task[None] | None = None

    def watch(self, path: str, callback: Callback) -> None:
        """Watch ``path`` from its current state on (replaces an earlier callback)."""
        self._watched[path] = (identity(path), callback)

    def unwatch(self, path: str) -> None:
        """Stop watching ``path``."""
        self._watched.pop(path, None)

    @property
    def paths(self) -> list[str]:
        """What is watched."""
        return list(self._watched)

    def poll(self) -> list[tuple[str, Callback]]:
        """One pass: the changed paths with their callbacks (not yet called)."""
        changed = []
        for path, (seen, callback) in list(self._watched.items()):
            now = identity(path)
            if now != seen:
                self._watched[path] = (now, callback)
                changed.append((path, callback))
        return changed

    async def check(self) -> list[str]:
        """One pass, calling the callbacks of what changed; returns the changed paths."""
        changed = self.poll()
        for path, callback in changed:
            try:
                result = callback()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("reloading %s failed", path)
        return [path for path, _ in changed]

    async def run(self) -> None:
        """Poll forever."""
        while True:
            await asyncio.sleep(self.interval)
            await self.check()

    def start(self) -> None:
        """Poll in a background task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="file-watcher")

    async def stop(self) -> None:
        """Stop polling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

"""Processes of the benchmark: start, wait until they answer, measure their memory, stop.

Every server the benchmark runs (the upstream, nginx, LiteLLM, the pass-through, the
sidecar) is a child process with its output in a log file, started here and stopped here
(SIGTERM, then SIGKILL after a grace period), so a failed run leaves nothing listening.
Memory is the resident set (``VmRSS`` in ``/proc/<pid>/status``) of the process and all its
descendants (nginx's workers, any helper LiteLLM forks): what the kernel charges to the
pod's memory limit. Linux only, as the whole benchmark.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                stat = fh.read()
        except OSError:
            continue
        # The command name is in parentheses and may hold spaces: split after the last ')'.
        ppid = int(stat.rpartition(")")[2].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def process_tree(pid: int) -> list[int]:
    """``pid`` and every descendant."""
    tree = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, ()))
    return out


def rss_kib(pid: int) -> int:
    """VmRSS of one process in KiB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, MiB."""
    return sum(rss_kib(p) for p in process_tree(pid)) / 1024.0


class ServiceError(RuntimeError):
    """A server did not start; the message ends with the tail of its log."""


class Service:
    """One child server process with its log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        #: Where this start's output begins in the (appended) log file.
        self._log_start = 0

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} is not running"
        return self.proc.pid

    def start(self) -> None:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log_start = self._log.tell()
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 3000) -> str:
        """The end of what this start of the process wrote."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(self._log_start)
                return fh.read().decode(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def fail(self, why: str) -> ServiceError:
        """The error to raise when the server did not start; the process is stopped first."""
        tail = self.log_tail()
        self.stop(grace=5.0)
        return ServiceError(f"{self.name}: {why}; log {self.log_path}:\n{tail}")

    def wait_log(self, prefix: str, timeout: float) -> str:
        """Wait for a log line starting with ``prefix``; returns the rest of that line."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log_tail(1 << 16).splitlines():
                if line.startswith(prefix):
                    return line[len(prefix) :].strip()
            if not self.alive():
                raise self.fail("exited at start")
            time.sleep(0.05)
        raise self.fail(f"no {prefix!r} line within {timeout:g}s")

    def wait_http(self, url: str, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        """Wait until ``url`` answers 200."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.alive():
                raise self.fail("exited at start")
            request = urllib.request.Request(url, headers=dict(headers or {}))  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310
                    if answer.status == 200:
                        return
                    last = f"status {answer.status}"
            except urllib.error.HTTPError as exc:
                last = f"status {exc.code}"
            except OSError as exc:
                last = str(exc)
            time.sleep(0.2)
        raise self.fail(f"{url} not ready within {timeout:g}s ({last})")

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL after ``grace`` seconds."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def interrupt(self, timeout: float = 60.0) -> int:
        """SIGINT only the main process and wait for it to exit (for profilers)."""
        proc = self.proc
        assert proc is not None
        proc.send_signal(signal.SIGINT)
        try:
            return proc.wait(timeout=timeout)
        finally:
            self.stop()

"""Ask every running pod's sidecar how its models are doing (I/O).

One background loop for the whole operator. Each server is polled on its own
cadence: every ``fast`` seconds while a model is still moving (or a pod has
not answered yet), every ``slow`` seconds once everything is Ready, and at
once when its set of pods changes. Requests go to ``http://<podIP>:9090/status``
with the server's internal token, a short timeout and a global concurrency
bound, so a thousand pods cannot stall the operator. Only a *change* in what
the pods report triggers a reconcile; the reconcile turns reports into status.

Nothing a pod answers can stop the loop: a malformed document is a failed poll
of that pod (logged once, until it answers well again), and a pass that fails
for any other reason is logged and the next pass runs as usual.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping

import aiohttp
from pydantic import ValidationError

from ..api.report import PodReport
from ..api.sidecar_config import ADMIN_PORT
from ..api.validation import describe
from .models import in_progress

log = logging.getLogger(__name__)

Key = tuple[str, str]
#: pod name → pod IP, for the running pods of one server.
Targets = dict[str, str]
Report = PodReport


class StatusPoller:
    """Latest ``/status`` report per pod, refreshed in the background."""

    #: Consecutive failed polls of a pod after which its last report is dropped.
    KEEP_AFTER_FAILURES = 3
    #: Consecutive polls with no answer at all before slowing to ``unreachable``.
    PATIENCE = 5

    def __init__(
        self,
        on_change: Callable[[Key], Awaitable[None]],
        token_for: Callable[[Key], str | None],
        *,
        fast: float = 2.0,
        slow: float = 30.0,
        unreachable: float = 10.0,
        timeout: float = 2.0,
        concurrency: int = 32,
        port: int = ADMIN_PORT,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._on_change = on_change
        self._token_for = token_for
        self.fast, self.slow, self.unreachable = fast, slow, unreachable
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._limit = asyncio.Semaphore(concurrency)
        self._port = port
        self._reports: dict[Key, dict[str, Report]] = {}
        self._failures: dict[tuple[Key, str], int] = {}
        self._misses: dict[Key, int] = {}
        self._due: dict[Key, float] = {}
        self._pods: dict[Key, Targets] = {}
        #: Pods whose last answer was malformed (logged once, until they answer well).
        self._malformed: set[tuple[Key, str]] = set()
        #: The HTTP client; run() opens (and closes) one when none was given.
        self._session = session

    def reports(self, key: Key) -> dict[str, Report]:
        """pod name → last report, for the pods that answered (empty: none did)."""
        return self._reports.get(key, {})

    def forget(self, key: Key) -> None:
        for table in (self._reports, self._due, self._pods, self._misses):
            table.pop(key, None)
        for pod_key in [k for k in self._failures if k[0] == key]:
            del self._failures[pod_key]
        self._malformed = {k for k in self._malformed if k[0] != key}

    def poke(self, key: Key, delay: float = 1.0) -> None:
        """Poll soon: the server's config changed (the sidecars reload it within a second)."""
        self._due[key] = min(self._due.get(key, math.inf), time.monotonic() + delay)

    async def run(self, targets: Callable[[], Mapping[Key, Targets]], tick: float = 0.5) -> None:
        """Poll forever; ``targets`` returns the running pods of every server right now.

        A pass that raises is logged and the loop goes on: one bad pass must not freeze
        model status for every server.
        """
        owned = self._session is None
        if owned:
            self._session = aiohttp.ClientSession()
        try:
            while True:
                try:
                    await self.poll_due(targets())
                except Exception:
                    log.exception("a status poll pass failed; polling goes on")
                await asyncio.sleep(tick)
        finally:
            if owned and self._session is not None:
                await self._session.close()
                self._session = None

    async def poll_due(self, current: Mapping[Key, Targets]) -> None:
        """One pass: poll the servers that are due, concurrently."""
        now = time.monotonic()
        for gone in set(self._pods) - set(current):
            self.forget(gone)
        due = []
        for key, pods in current.items():
            if self._pods.get(key) != pods:
                self._pods[key] = dict(pods)
                self._due[key] = now
            if self._due.get(key, now) <= now:
                due.append(key)
        if due:
            await asyncio.gather(*(self._poll_server(key) for key in due))

    async def _poll_server(self, key: Key) -> None:
        pods = self._pods.get(key, {})
        token = self._token_for(key)
        results = await asyncio.gather(*(self._fetch(ip, token) for ip in pods.values()))
        previous = self._reports.get(key, {})
        reports: dict[str, Report] = {}
        answered = 0
        for name, raw in zip(pods, results, strict=True):
            result = self._usable(key, name, raw)
            if result is not None:
                answered += 1
                self._failures.pop((key, name), None)
                reports[name] = result
                continue
            # One missed answer (a slow scrape, a sidecar restart) keeps the last report;
            # only repeated silence drops it.
            failures = self._failures.get((key, name), 0) + 1
            self._failures[(key, name)] = failures
            if name in previous and failures < self.KEEP_AFTER_FAILURES:
                reports[name] = previous[name]
        self._misses[key] = 0 if answered else self._misses.get(key, 0) + 1
        if answered < len(pods):
            # A new pod's sidecar may not listen yet: keep asking quickly for a while.
            slow_start = self._misses[key] >= self.PATIENCE
            interval = self.unreachable if slow_start else self.fast
        elif any(in_progress(m.phase for m in r.models) for r in reports.values()):
            interval = self.fast
        else:
            interval = self.slow
        self._due[key] = time.monotonic() + interval
        if reports != previous:
            self._reports[key] = reports
            try:
                await self._on_change(key)
            except Exception:  # the poll loop must outlive any reconcile failure
                log.exception("reconcile after a model report of %s/%s failed", *key)

    def _usable(self, key: Key, pod: str, answer: object) -> Report | None:
        """The answer as a typed report, or None when there was none or it does not
        validate (a failed poll, logged once until the pod answers well again)."""
        if answer is None:
            return None
        try:
            report = PodReport.model_validate(answer)
        except ValidationError as exc:
            if (key, pod) not in self._malformed:
                self._malformed.add((key, pod))
                problem = "; ".join(describe(exc, prefix=""))[:500]
                log.warning("pod %s/%s sent a malformed /status: %s", key[0], pod, problem)
            return None
        self._malformed.discard((key, pod))
        return report

    async def _fetch(self, ip: str, token: str | None) -> object:
        if self._session is None:
            return None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"http://{ip}:{self._port}/status"
        async with self._limit:
            try:
                async with self._session.get(url, headers=headers, timeout=self._timeout) as resp:
                    if resp.status != 200:
                        log.debug("GET %s: HTTP %d", url, resp.status)
                        return None
                    body = await resp.json(content_type=None)
            except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
                log.debug("GET %s failed: %s", url, exc)
                return None
        return body

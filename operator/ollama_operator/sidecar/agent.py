"""The in-pod model agent: makes the Ollama next door hold the declared models.

``spec.models`` is desired state; Ollama's disk and memory are the observed
state, and this agent is the loop between them, level-based like the
controller: every pass it looks (``/api/version``, ``/api/tags``, ``/api/ps``),
decides (pure rules in :mod:`.agent_plan`) and starts what is missing — pulls
with streamed progress, creates from a base model, preloads, and (with
``modelsPrune``) deletes. Pulls that stop moving are aborted and retried with
capped exponential backoff; a model deleted behind its back is fetched again;
models that an Ollama restart dropped from memory are warmed again. The
gateway hands it new declarations with :meth:`ModelAgent.update` when the
config file changes, reads :meth:`ModelAgent.ready` for ``/readyz``,
:meth:`ModelAgent.status` for ``/status`` and :meth:`ModelAgent.present_models`
to refuse unknown models; metrics subscribe through :class:`AgentObserver`, so
this module needs no Prometheus.

Whatever Ollama does — refuse connections, answer garbage, hang — the agent
records it in the model's status and carries on; it never raises into its
caller and never logs more than model names and Ollama's own (redacted)
messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from ..api.spec import ModelSpec
from ..ollama import (
    ModelNotFound,
    OllamaClient,
    OllamaError,
    ProgressEvent,
    normalize_name,
    typed_parameters,
)
from .agent_plan import (
    Action,
    AgentSettings,
    ModelState,
    Observation,
    Phase,
    PullProgress,
    forget_warmth,
    is_ready,
    next_wakeup,
    observe,
    plan,
    preload_keep_alive,
    redact,
    retry_delay,
    status_document,
    waiting_for_base,
    warm_until,
)

log = logging.getLogger(__name__)

__all__ = ["AgentObserver", "AgentSettings", "ModelAgent", "NullObserver"]


class AgentObserver(Protocol):
    """Receives the agent's events (for metrics); must not block or raise."""

    def on_pull_progress(self, model: str, completed: int, total: int) -> None:
        """Bytes of ``model`` (its declared name) fetched so far during a pull or create."""

    def on_model_state(self, model: str, phase: Phase) -> None:
        """``model`` moved to ``phase``."""


class NullObserver:
    """An observer that ignores everything: subclass it and override what you need."""

    def on_pull_progress(self, model: str, completed: int, total: int) -> None:
        return None

    def on_model_state(self, model: str, phase: Phase) -> None:
        return None


class ModelAgent:
    """Keeps one Ollama server's models in line with the declared ones."""

    def __init__(
        self,
        client: OllamaClient,
        models: Sequence[ModelSpec] = (),
        prune: bool = False,
        *,
        settings: AgentSettings | None = None,
        observers: Iterable[AgentObserver] = (),
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or AgentSettings()
        self._observers = list(observers)
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._states: dict[str, ModelState] = {}
        self._prune = prune
        self._seen: Observation | None = None
        self._ollama_up = False
        self._was_down = False
        self._version: str | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._deletes: set[str] = set()
        self._slots = asyncio.Semaphore(self.settings.max_parallel)
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self.update(models, prune)

    # ---- public surface --------------------------------------------------------------------

    def subscribe(self, observer: AgentObserver) -> None:
        self._observers.append(observer)

    def update(self, models: Sequence[ModelSpec], prune: bool) -> None:
        """Take new declarations (hot reload): new models start, removed ones stop."""
        wanted: dict[str, ModelSpec] = {}
        for spec in models:
            key = normalize_name(spec.name)
            if key in wanted:
                log.warning("model %s is declared twice (as %s); using the first", key, spec.name)
                continue
            wanted[key] = spec
        for key in list(self._states):
            if key not in wanted:
                self._cancel(key)
                del self._states[key]
        for key, spec in wanted.items():
            state = self._states.get(key)
            if state is None:
                self._states[key] = ModelState(spec, since=_now())
            else:
                state.spec = spec
        self._prune = prune
        self._wake.set()

    def status(self) -> dict[str, Any]:
        """JSON-able state of Ollama and of each declared model (served as ``/status``)."""
        return status_document(
            self._states.values(),
            ollama_up=self._ollama_up,
            version=self._version,
            ready=self.ready(),
        )

    def ready(self) -> bool:
        """Ollama answers and every required model is on disk."""
        return is_ready(self._states.values(), self._seen, ollama_up=self._ollama_up)

    def present_models(self) -> set[str]:
        """Models on disk, by normalised name (:func:`ollama_operator.ollama.normalize_name`)."""
        return set(self._seen.installed) if self._seen is not None and self._ollama_up else set()

    async def start(self) -> None:
        """Run the loop in the background."""
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.create_task(self._run(), name="model-agent")

    async def stop(self) -> None:
        """Stop the loop and every pull, create and preload in flight; safe to call twice."""
        tasks = [t for t in (self._loop_task, *self._tasks.values()) if t is not None]
        self._loop_task = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()

    async def sync(self) -> None:
        """One pass: look at Ollama, fold it into the states, start what is missing."""
        seen = await self._look()
        if seen is None:
            return
        self._seen = seen
        at, now = _now(), self._clock()
        for state in self._states.values():
            if observe(state, seen, now, at):
                self._announce(state)
            self._note_waiting(state, seen, at)
        actions = plan(self._states, seen, prune=self._prune, now=now, settings=self.settings)
        for action in actions:
            self._start(action)

    # ---- loop -----------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must outlive any bug in one pass
                log.exception("model agent pass failed; trying again")
            delay = next_wakeup(
                self._states.values(),
                self._clock(),
                self.settings,
                converged=self._converged(),
            )
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for loses a cancellation
            # that arrives as the wake-up fires, and stop() would wait for this loop forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _converged(self) -> bool:
        if not self._ollama_up or self._tasks:
            return False
        return all(s.phase == "Ready" for s in self._states.values())

    async def _look(self) -> Observation | None:
        """version + tags + ps, or None (and Ollama marked down) if any of them fails."""
        taken_at = self._clock()
        try:
            version = await self.client.version()
            listed = await self.client.tags()
            running = await self.client.ps()
        except OllamaError as exc:
            if self._ollama_up:
                log.warning("Ollama is not answering: %s", redact(exc.message))
            self._ollama_up, self._was_down = False, True
            return None
        if self._was_down:
            forget_warmth(self._states.values())
            self._was_down = False
        if not self._ollama_up:
            log.info("Ollama %s is answering", version)
        self._ollama_up, self._version = True, version
        return Observation.of(listed, [m.name for m in running], taken_at)

    def _note_waiting(self, state: ModelState, seen: Observation, at: datetime) -> None:
        if (
            state.busy is None
            and state.phase == "Pending"
            and waiting_for_base(state, seen, self._states)
        ):
            assert state.spec.create is not None
            state.message = f"waiting for base model {state.spec.create.from_}"

    # ---- actions --------------------------------------------------------------------------

    def _start(self, action: Action) -> None:
        if action.kind == "delete":
            if action.key not in self._deletes:
                self._deletes.add(action.key)
                self._spawn(f"delete:{action.key}", self._delete(action.key))
            return
        state = self._states[action.key]
        state.busy = action.kind
        work = {"pull": self._pull, "create": self._create, "preload": self._preload}[action.kind]
        self._spawn(action.key, work(state))

    def _spawn(self, name: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"model-agent:{name}")
        self._tasks[name] = task
        task.add_done_callback(lambda t: self._finished(name, t))

    def _finished(self, name: str, task: asyncio.Task[None]) -> None:
        if self._tasks.get(name) is task:
            del self._tasks[name]
        self._wake.set()

    def _cancel(self, key: str) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def _pull(self, state: ModelState) -> None:
        refresh = state.phase == "Ready"
        if not refresh:
            self._transition(state, "Pulling")
        async with self._slots:
            ok = await self._stream(
                state, self.client.pull(state.spec.name, insecure=state.spec.insecure)
            )
        if ok:
            state.pulled_at = self._clock()
            if refresh:
                state.warm_until = None  # a moved tag is loaded again on the next preload
        self._settle(state)

    async def _create(self, state: ModelState) -> None:
        create = state.spec.create
        assert create is not None
        self._transition(state, "Creating")
        events = self.client.create(
            state.spec.name,
            from_=create.from_,
            system=create.system,
            template=create.template,
            parameters=typed_parameters(create.parameters),
        )
        async with self._slots:
            await self._stream(state, events)
        self._settle(state)

    async def _stream(self, state: ModelState, events: AsyncGenerator[ProgressEvent, None]) -> bool:
        """Follow a pull/create stream to its end; record progress or the failure."""
        progress = PullProgress()
        stall = self.settings.stall_timeout
        loop = asyncio.get_running_loop()
        try:
            async with contextlib.aclosing(events) as stream, asyncio.timeout(stall) as deadline:
                async for event in stream:
                    if progress.observe(event):
                        deadline.reschedule(loop.time() + stall)
                        self._progress(state, progress)
        except TimeoutError:
            self._failed(state, f"no progress for {stall:g}s ({progress.status or 'no answer'})")
            return False
        except OllamaError as exc:
            self._failed(state, exc.message)
            return False
        except Exception as exc:  # anything else is a bug, but must not kill the agent
            log.exception("unexpected error while following %s", state.spec.name)
            self._failed(state, f"internal error: {type(exc).__name__}")
            return False
        if progress.status != "success":
            self._failed(state, f"Ollama ended the stream early ({progress.status or 'empty'})")
            return False
        state.attempts, state.retry_at, state.message = 0, 0.0, None
        log.info("model %s: %s done", state.spec.name, state.busy)
        return True

    async def _preload(self, state: ModelState) -> None:
        keep_alive = preload_keep_alive(state.spec)
        try:
            await self.client.load(state.spec.name, keep_alive=keep_alive)
        except OllamaError as exc:
            state.warm_attempts += 1
            delay = self._backoff(state.warm_attempts)
            state.warm_retry_at = self._clock() + delay
            state.message = f"preload failed: {redact(exc.message)}"
            log.warning("model %s: %s (retry in %.0fs)", state.spec.name, state.message, delay)
        else:
            now = self._clock()
            state.warm_until, state.loaded = warm_until(state.spec, now), True
            state.warm_attempts, state.warm_retry_at, state.message = 0, 0.0, None
            log.info("model %s: loaded into memory", state.spec.name)
        self._settle(state)

    async def _delete(self, key: str) -> None:
        try:
            await self.client.delete(key)
            log.info("model %s: deleted (not declared, modelsPrune)", key)
        except ModelNotFound:
            pass
        except OllamaError as exc:
            log.warning("model %s: delete failed: %s", key, redact(exc.message))
        finally:
            self._deletes.discard(key)

    # ---- state changes --------------------------------------------------------------------

    def _settle(self, state: ModelState) -> None:
        state.busy = None
        state.settled_at = self._clock()

    def _progress(self, state: ModelState, progress: PullProgress) -> None:
        if progress.total:
            state.completed, state.total = progress.completed, progress.total
            state.progress = progress.percent
            self._notify("on_pull_progress", state.spec.name, progress.completed, progress.total)

    def _failed(self, state: ModelState, message: str) -> None:
        message = redact(message)
        state.attempts += 1
        delay = self._backoff(state.attempts)
        state.retry_at = self._clock() + delay
        what = state.busy or "work"
        log.warning(
            "model %s: %s failed: %s (retry in %.0fs)", state.spec.name, what, message, delay
        )
        if state.phase == "Ready":  # a refresh pull failed: the model is still usable
            state.message = f"re-pull failed: {message}"
            return
        self._transition(state, "Failed", message)

    def _transition(self, state: ModelState, phase: Phase, message: str | None = None) -> None:
        if phase in ("Pulling", "Creating"):
            state.completed = state.total = state.progress = None
        if state.set_phase(phase, _now(), message):
            self._announce(state)

    def _announce(self, state: ModelState) -> None:
        self._notify("on_model_state", state.spec.name, state.phase)

    def _notify(self, method: str, *args: Any) -> None:
        for observer in self._observers:
            try:
                getattr(observer, method)(*args)
            except Exception:
                log.exception("agent observer %r failed in %s", observer, method)

    def _backoff(self, attempt: int) -> float:
        return retry_delay(
            attempt,
            base=self.settings.retry_base,
            cap=self.settings.retry_cap,
            jitter=self._rng.random(),
        )


def _now() -> datetime:
    return datetime.now(UTC)

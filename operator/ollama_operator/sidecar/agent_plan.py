"""The model agent's decisions, as pure functions of what it wants and what Ollama has.

The agent (:mod:`.agent`) does I/O: it asks Ollama what is on disk and in
memory, runs pulls, creates, preloads and deletes, and records how they went.
Everything it *decides* lives here, without I/O or clocks of its own (the
current time is an argument), so each rule is unit-tested on plain values:
which declared model maps to which installed one (Ollama's name rules), what
to do next for each model, when a failed attempt may be retried (capped
exponential backoff with jitter), how per-layer pull progress adds up, and the
JSON document ``/status`` serves to the controller.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from ..api.report import ModelReport, PodReport
from ..api.spec import ModelSpec
from ..api.status import ModelPhase
from ..ollama import ListedModel, ProgressEvent, keep_alive_seconds, normalize_name

#: The one phase vocabulary, shared with the report and the OllamaServer status.
Phase = ModelPhase
ActionKind = Literal["pull", "create", "preload", "delete"]

#: keep_alive sent with a preload when the model declares none: stay loaded.
PRELOAD_FOREVER = -1


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """Timings of the model agent, in seconds."""

    #: Pause between two looks at Ollama when nothing is in progress.
    poll_interval: float = 15.0
    #: Pause while something is in progress or not yet converged.
    busy_interval: float = 2.0
    #: A pull or create whose byte count and status do not move for this long is aborted.
    stall_timeout: float = 120.0
    #: First retry delay after a failure; doubles per failure up to ``retry_cap``.
    retry_base: float = 5.0
    retry_cap: float = 300.0
    #: pullPolicy Always: re-pull this often to follow a moving tag.
    repull_interval: float = 3600.0
    #: Pulls and creates running at once.
    max_parallel: int = 2


# --------------------------------------------------------------------------- backoff


def retry_delay(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Delay before retry number ``attempt`` (1 = after the first failure).

    Exponential (``base * 2**(attempt-1)``), capped at ``cap``, with "equal
    jitter": half the delay is fixed, half scaled by ``jitter`` in [0, 1], so
    replicas that failed together do not retry together and no delay is
    shorter than half its step.
    """
    if attempt < 1:
        return 0.0
    step = min(cap, base * 2.0 ** min(attempt - 1, 62))
    return step / 2 + step / 2 * min(1.0, max(0.0, jitter))


# --------------------------------------------------------------------------- progress


@dataclass
class PullProgress:
    """Adds up Ollama's per-layer progress events into bytes for the whole model."""

    layers: dict[str, tuple[int, int]] = field(default_factory=dict)
    status: str = ""
    #: Highest percent shown so far. Ollama announces layers one by one, so the
    #: byte total grows during a pull; the shown percent must not fall back when
    #: a new layer appears, nor reach 100 before the pull succeeded.
    high: int = 0

    def observe(self, event: ProgressEvent) -> bool:
        """Take one event; True when it moved (new status or more bytes): not a stall."""
        moved = event.status != self.status
        self.status = event.status
        if event.digest and event.total:
            before = self.layers.get(event.digest, (0, 0))
            now = (max(before[0], event.completed), event.total)
            moved = moved or now != before
            self.layers[event.digest] = now
        value = percent(self.completed, self.total)
        if value is not None:
            cap = 100 if self.status == "success" else 99
            self.high = max(self.high, min(value, cap))
        return moved

    @property
    def completed(self) -> int:
        return sum(done for done, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(total for _, total in self.layers.values())

    @property
    def percent(self) -> int | None:
        """Monotonic within one pull; below 100 until Ollama said success."""
        return self.high if self.total else None


def percent(completed: int | None, total: int | None) -> int | None:
    """Whole percent, never 100 before the bytes are all there; None without a total."""
    if not total or completed is None:
        return None
    return math.floor(100 * min(completed, total) / total)


# --------------------------------------------------------------------------- state


@dataclass
class ModelState:
    """What the agent knows and remembers about one declared model."""

    spec: ModelSpec
    phase: Phase = "Pending"
    since: datetime = field(default_factory=lambda: datetime.now(UTC))
    message: str | None = None
    completed: int | None = None
    total: int | None = None
    #: Shown pull percent (monotonic, see PullProgress.high); None: from the byte counts.
    progress: int | None = None
    digest: str | None = None
    size: int | None = None
    loaded: bool = False
    #: The pull/create/preload running for this model, if any.
    busy: ActionKind | None = None
    #: Consecutive failed pulls/creates, and when the next may start (monotonic seconds).
    attempts: int = 0
    retry_at: float = 0.0
    #: When the last successful pull finished (pullPolicy Always), monotonic seconds.
    pulled_at: float | None = None
    #: Until when a successful preload should keep the model in memory; None: not warm.
    warm_until: float | None = None
    #: When the last pull/create/preload finished: older observations say nothing new.
    settled_at: float = -math.inf
    warm_attempts: int = 0
    warm_retry_at: float = 0.0

    @property
    def key(self) -> str:
        return normalize_name(self.spec.name)

    def set_phase(self, phase: Phase, at: datetime, message: str | None = None) -> bool:
        """Move to ``phase``; True when it is a transition (the time is only stamped then)."""
        self.message = message
        if phase == self.phase:
            return False
        self.phase, self.since = phase, at
        return True


def base_key(spec: ModelSpec) -> str | None:
    """Normalised name of the model a ``create`` derives from, if any."""
    return normalize_name(spec.create.from_) if spec.create is not None else None


def preload_keep_alive(spec: ModelSpec) -> str | int:
    """keep_alive for a preload: the declared one, else "stay loaded"."""
    return spec.keep_alive if spec.keep_alive is not None else PRELOAD_FOREVER


def warm_until(spec: ModelSpec, now: float) -> float:
    """Until when a preload done at ``now`` keeps the model in memory."""
    seconds = keep_alive_seconds(preload_keep_alive(spec))
    return now + (math.inf if seconds is None else seconds)


# --------------------------------------------------------------------------- observation


@dataclass(frozen=True, slots=True)
class Observation:
    """One look at Ollama: models on disk (by normalised name) and in memory."""

    installed: Mapping[str, ListedModel]
    loaded: frozenset[str]
    #: When the look started (monotonic seconds).
    taken_at: float = 0.0

    @classmethod
    def of(
        cls, listed: Iterable[ListedModel], running: Iterable[str], taken_at: float
    ) -> Observation:
        return cls(
            installed={normalize_name(m.name): m for m in listed},
            loaded=frozenset(normalize_name(n) for n in running),
            taken_at=taken_at,
        )

    def is_stale_for(self, state: ModelState) -> bool:
        """Taken before the model's last task finished: it cannot show that task's result."""
        return self.taken_at < state.settled_at


def observe(state: ModelState, seen: Observation, now: float, at: datetime) -> bool:
    """Fold an observation into an idle model's state; True when its phase changed.

    A model that is on disk is Ready (whatever failed before); a Ready model
    that vanished was deleted behind the agent's back and is Pending again.
    A preloaded model that left memory before its keep_alive ran out was lost
    (Ollama restarted, or evicted it) and must be warmed again.
    """
    if state.busy in ("pull", "create") or seen.is_stale_for(state):
        return False
    key = state.key
    listed = seen.installed.get(key)
    state.loaded = key in seen.loaded
    if state.warm_until is not None and not state.loaded and now < state.warm_until:
        state.warm_until = None
    if listed is not None:
        state.digest, state.size = listed.digest or None, listed.size
        state.completed = state.total = listed.size
        state.progress = None
        state.attempts = 0
        if state.phase != "Ready":
            return state.set_phase("Ready", at)
        return False
    state.loaded = False
    if state.phase == "Ready":
        state.digest = state.size = state.completed = state.total = None
        state.warm_until = None
        return state.set_phase("Pending", at, "model is no longer on the Ollama server")
    return False


def forget_warmth(states: Iterable[ModelState]) -> None:
    """Ollama came back after being unreachable: nothing it had in memory survived."""
    for state in states:
        state.warm_until = None
        state.loaded = False


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    #: Normalised model name (for delete: as Ollama lists it).
    key: str


def plan(
    states: Mapping[str, ModelState],
    seen: Observation,
    *,
    prune: bool,
    now: float,
    settings: AgentSettings,
) -> list[Action]:
    """What to start now: pulls, creates, preloads of idle models, deletes when pruning."""
    actions: list[Action] = []
    for key, state in states.items():
        action = next_action(state, seen, states, now=now, settings=settings)
        if action is not None:
            actions.append(Action(action, key))
    if prune:
        actions.extend(Action("delete", key) for key in prunable(states, seen))
    return actions


def next_action(
    state: ModelState,
    seen: Observation,
    states: Mapping[str, ModelState],
    *,
    now: float,
    settings: AgentSettings,
) -> ActionKind | None:
    """The one thing to do next for an idle declared model, if anything."""
    if state.busy is not None or seen.is_stale_for(state):
        return None
    spec = state.spec
    if state.key in seen.installed:
        if due_for_repull(state, now, settings):
            return "pull"
        wants_warm = spec.preload and state.warm_until is None and state.key not in seen.loaded
        if wants_warm and now >= state.warm_retry_at:
            return "preload"
        return None
    if now < state.retry_at:
        return None
    if spec.create is None:
        return "pull"
    base = base_key(spec)
    if base in states and base not in seen.installed:
        return None
    return "create"


def due_for_repull(state: ModelState, now: float, settings: AgentSettings) -> bool:
    """pullPolicy Always: a pulled model is pulled again once per ``repull_interval``."""
    spec = state.spec
    if spec.create is not None or spec.pull_policy != "Always" or now < state.retry_at:
        return False
    return state.pulled_at is None or now - state.pulled_at >= settings.repull_interval


def waiting_for_base(state: ModelState, seen: Observation, states: Mapping[str, Any]) -> bool:
    """A create whose base model is declared too, and not there yet."""
    base = base_key(state.spec)
    return base is not None and base in states and base not in seen.installed


def prunable(states: Mapping[str, ModelState], seen: Observation) -> list[str]:
    """Installed models nobody declared, neither as a model nor as a create's base."""
    keep = set(states) | {b for s in states.values() if (b := base_key(s.spec)) is not None}
    return sorted(key for key in seen.installed if key not in keep)


def next_wakeup(
    states: Iterable[ModelState], now: float, settings: AgentSettings, *, converged: bool
) -> float:
    """Seconds until the agent should look again: soon while busy, at the next retry,
    otherwise after the poll interval."""
    delay = settings.poll_interval if converged else settings.busy_interval
    for state in states:
        for at in (state.retry_at, state.warm_retry_at):
            if at > now:
                delay = min(delay, at - now)
    return max(0.01, delay)


# --------------------------------------------------------------------------- status


def is_ready(states: Iterable[ModelState], seen: Observation | None, *, ollama_up: bool) -> bool:
    """Ollama answers and every required model is on disk, its pull or create finished.

    Ollama lists a pulled model a moment before the pull's stream ends; until the agent
    has settled it, ``/status`` still says Pulling, and a pod must not turn Ready while
    its own report says the model is not.
    """
    if not ollama_up or seen is None:
        return False
    return all(
        s.key in seen.installed and s.phase not in ("Pulling", "Creating")
        for s in states
        if s.spec.required
    )


#: The longest message a model's report carries (the status keeps 1024 characters of it).
REPORT_MESSAGE_MAX = 4096


def model_status(state: ModelState) -> ModelReport:
    """One model's entry of ``/status`` (the report the controller folds into its status)."""
    return ModelReport(
        name=state.spec.name,
        phase=state.phase,
        progress=(
            state.progress if state.progress is not None else percent(state.completed, state.total)
        ),
        completed_bytes=state.completed,
        total_bytes=state.total,
        digest=state.digest,
        size=state.size,
        loaded=state.loaded,
        # Ollama's error texts have no bound; the report (and the status) do.
        message=state.message[:REPORT_MESSAGE_MAX] if state.message else state.message,
        last_transition_time=rfc3339(state.since),
    )


def status_document(
    states: Iterable[ModelState], *, ollama_up: bool, version: str | None, ready: bool
) -> dict[str, Any]:
    """The whole ``/status`` document, as :class:`~ollama_operator.api.report.PodReport`."""
    return PodReport(
        ollama_up=ollama_up,
        ollama_version=version,
        ready=ready,
        models=[model_status(s) for s in states],
    ).to_json()


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """Remove credentials from URLs in a message before it is logged or published."""
    return _USERINFO.sub("***@", text)

"""The model agent's pure rules: backoff, progress, observation, planning, status."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ollama_operator.api.spec import ModelSpec
from ollama_operator.api.status import ModelStatus
from ollama_operator.ollama import ListedModel, ProgressEvent
from ollama_operator.sidecar.agent_plan import (
    Action,
    AgentSettings,
    ModelState,
    Observation,
    PullProgress,
    forget_warmth,
    is_ready,
    model_status,
    next_wakeup,
    observe,
    percent,
    plan,
    preload_keep_alive,
    prunable,
    redact,
    retry_delay,
    status_document,
    warm_until,
)

AT = datetime(2025, 1, 1, tzinfo=UTC)
SETTINGS = AgentSettings(poll_interval=30, busy_interval=1, repull_interval=100)


def spec(name: str, **kw: Any) -> ModelSpec:
    return ModelSpec.model_validate({"name": name, **kw})


def states(*specs: ModelSpec) -> dict[str, ModelState]:
    built = [ModelState(s, since=AT) for s in specs]
    return {s.key: s for s in built}


def seen(*installed: str, loaded: tuple[str, ...] = (), taken_at: float = 0.0) -> Observation:
    listed = [ListedModel(name=n, size=10, digest="ab" * 32) for n in installed]
    return Observation.of(listed, loaded, taken_at)


# ----------------------------------------------------------------------------- backoff


@given(st.integers(1, 200), st.floats(0, 1))
def test_retry_delay_stays_between_half_step_and_step(attempt: int, jitter: float) -> None:
    step = min(60.0, 2.0 * 2 ** (attempt - 1))
    delay = retry_delay(attempt, base=2, cap=60, jitter=jitter)
    assert step / 2 <= delay <= step


@given(st.integers(1, 100), st.floats(0, 1))
def test_retry_delay_never_shrinks_with_more_failures(attempt: int, jitter: float) -> None:
    now = retry_delay(attempt, base=1, cap=300, jitter=jitter)
    assert retry_delay(attempt + 1, base=1, cap=300, jitter=jitter) >= now


def test_retry_delay_examples() -> None:
    assert retry_delay(0, base=5, cap=300, jitter=1) == 0
    assert retry_delay(1, base=5, cap=300, jitter=0) == 2.5
    assert retry_delay(3, base=5, cap=300, jitter=1) == 20
    assert retry_delay(30, base=5, cap=300, jitter=1) == 300


# ----------------------------------------------------------------------------- progress


def event(status: str, digest: str = "", total: int = 0, completed: int = 0) -> ProgressEvent:
    return ProgressEvent(status=status, digest=digest, total=total, completed=completed)


def test_pull_progress_adds_up_layers_and_tells_movement_from_ticks() -> None:
    progress = PullProgress()
    assert progress.observe(event("pulling manifest"))
    assert progress.observe(event("pulling aaa", "sha256:a", 100, 40))
    assert not progress.observe(event("pulling aaa", "sha256:a", 100, 40))  # a tick, no bytes
    assert progress.percent == 40
    assert progress.observe(event("pulling aaa", "sha256:a", 100, 100))
    assert progress.percent == 99, "100 only once Ollama says success"
    assert progress.observe(event("pulling bbb", "sha256:b", 300, 0))
    assert progress.observe(event("pulling bbb", "sha256:b", 300, 150))
    # Bytes add up over the layers announced so far ...
    assert (progress.completed, progress.total) == (250, 400)
    # ... but the shown percent never falls back when a new layer appears.
    assert progress.percent == 99
    assert progress.observe(event("verifying sha256 digest"))
    assert progress.status == "verifying sha256 digest"
    assert progress.observe(event("pulling bbb", "sha256:b", 300, 300))
    assert progress.observe(event("success"))
    assert progress.percent == 100


def test_percent_is_never_100_early_and_none_without_total() -> None:
    assert percent(999, 1000) == 99
    assert percent(1000, 1000) == 100
    assert percent(0, 0) is None
    assert percent(None, 10) is None


# ----------------------------------------------------------------------------- observation


def test_a_model_on_disk_is_ready_with_digest_and_size() -> None:
    s = states(spec("llama3.2"))["llama3.2:latest"]
    assert observe(s, seen("llama3.2:latest"), now=1, at=AT)
    assert (s.phase, s.digest, s.size, s.completed, s.total) == ("Ready", "ab" * 32, 10, 10, 10)
    assert not observe(s, seen("llama3.2:latest"), now=2, at=AT)


def test_a_ready_model_that_vanished_is_pending_again() -> None:
    s = states(spec("m:1b"))["m:1b"]
    observe(s, seen("m:1b"), now=1, at=AT)
    assert observe(s, seen(), now=2, at=AT)
    assert s.phase == "Pending"
    assert s.message == "model is no longer on the Ollama server"
    assert s.digest is None


def test_busy_and_stale_observations_change_nothing() -> None:
    s = states(spec("m:1b"))["m:1b"]
    s.busy = "pull"
    assert not observe(s, seen("m:1b"), now=1, at=AT)
    s.busy, s.settled_at = None, 5.0
    assert not observe(s, seen("m:1b", taken_at=4.0), now=6, at=AT)
    assert s.phase == "Pending"
    assert observe(s, seen("m:1b", taken_at=5.5), now=6, at=AT)


def test_a_warm_model_that_left_memory_early_is_cold_again() -> None:
    s = states(spec("m:1b", preload=True, keepAlive="10m"))["m:1b"]
    s.warm_until = warm_until(s.spec, now=0)
    assert s.warm_until == 600
    observe(s, seen("m:1b", loaded=("m:1b",)), now=10, at=AT)
    assert s.loaded
    observe(s, seen("m:1b"), now=20, at=AT)
    assert s.warm_until is None
    assert not s.loaded


def test_a_warm_model_whose_keep_alive_ran_out_stays_cold() -> None:
    s = states(spec("m:1b", preload=True, keepAlive="10m"))["m:1b"]
    s.warm_until = 600
    observe(s, seen("m:1b"), now=601, at=AT)
    assert s.warm_until == 600
    assert plan({"m:1b": s}, seen("m:1b"), prune=False, now=601, settings=SETTINGS) == []


def test_forget_warmth() -> None:
    all_states = states(spec("a", preload=True), spec("b", preload=True))
    for s in all_states.values():
        s.warm_until, s.loaded = math.inf, True
    forget_warmth(all_states.values())
    assert all(s.warm_until is None and not s.loaded for s in all_states.values())


def test_preload_keeps_a_model_forever_unless_told_otherwise() -> None:
    assert preload_keep_alive(spec("m", preload=True)) == -1
    assert preload_keep_alive(spec("m", preload=True, keepAlive="1h")) == "1h"
    assert warm_until(spec("m", preload=True), now=5) == math.inf


# ----------------------------------------------------------------------------- planning


def test_missing_models_are_pulled_or_created() -> None:
    wanted = states(spec("a"), spec("b", create={"from": "base:1b"}))
    assert plan(wanted, seen(), prune=False, now=0, settings=SETTINGS) == [
        Action("pull", "a:latest"),
        Action("create", "b:latest"),
    ]


def test_a_create_waits_for_a_declared_base() -> None:
    wanted = states(spec("base:1b"), spec("b", create={"from": "base:1b"}))
    assert plan(wanted, seen(), prune=False, now=0, settings=SETTINGS) == [
        Action("pull", "base:1b")
    ]
    actions = plan(wanted, seen("base:1b"), prune=False, now=0, settings=SETTINGS)
    assert actions == [Action("create", "b:latest")]


def test_failed_models_wait_for_their_retry_time() -> None:
    wanted = states(spec("a"))
    wanted["a:latest"].retry_at = 10
    assert plan(wanted, seen(), prune=False, now=9, settings=SETTINGS) == []
    assert plan(wanted, seen(), prune=False, now=10, settings=SETTINGS) == [
        Action("pull", "a:latest")
    ]


def test_present_preloaded_models_are_warmed_once() -> None:
    wanted = states(spec("a", preload=True))
    assert plan(wanted, seen("a"), prune=False, now=0, settings=SETTINGS) == [
        Action("preload", "a:latest")
    ]
    assert plan(wanted, seen("a", loaded=("a",)), prune=False, now=0, settings=SETTINGS) == []
    wanted["a:latest"].warm_until = math.inf
    assert plan(wanted, seen("a"), prune=False, now=0, settings=SETTINGS) == []


def test_pull_policy_always_repulls_on_its_interval() -> None:
    wanted = states(spec("a", pullPolicy="Always"))
    assert plan(wanted, seen("a"), prune=False, now=0, settings=SETTINGS) == [
        Action("pull", "a:latest")
    ]
    wanted["a:latest"].pulled_at = 0
    assert plan(wanted, seen("a"), prune=False, now=99, settings=SETTINGS) == []
    assert plan(wanted, seen("a"), prune=False, now=100, settings=SETTINGS) == [
        Action("pull", "a:latest")
    ]


def test_busy_models_get_no_new_work() -> None:
    wanted = states(spec("a"))
    wanted["a:latest"].busy = "pull"
    assert plan(wanted, seen(), prune=False, now=0, settings=SETTINGS) == []


def test_prune_spares_declared_models_and_bases_whatever_their_spelling() -> None:
    wanted = states(spec("Llama3.2"), spec("b", create={"from": "library/qwen3:0.6b"}))
    on_disk = seen("llama3.2:latest", "qwen3:0.6b", "b:latest", "old:7b", "user/x:1")
    assert prunable(wanted, on_disk) == ["old:7b", "user/x:1"]
    actions = plan(wanted, on_disk, prune=True, now=0, settings=SETTINGS)
    assert [a for a in actions if a.kind == "delete"] == [
        Action("delete", "old:7b"),
        Action("delete", "user/x:1"),
    ]
    assert all(
        a.kind != "delete" for a in plan(wanted, on_disk, prune=False, now=0, settings=SETTINGS)
    )


def test_next_wakeup() -> None:
    wanted = states(spec("a"))
    assert next_wakeup(wanted.values(), 0, SETTINGS, converged=True) == 30
    assert next_wakeup(wanted.values(), 0, SETTINGS, converged=False) == 1
    wanted["a:latest"].retry_at = 0.25
    assert next_wakeup(wanted.values(), 0, SETTINGS, converged=True) == 0.25


# ----------------------------------------------------------------------------- status


def test_ready_needs_ollama_and_every_required_model() -> None:
    wanted = states(spec("a"), spec("b", required=False))
    assert is_ready(wanted.values(), seen("a"), ollama_up=True)
    assert not is_ready(wanted.values(), seen("a"), ollama_up=False)
    assert not is_ready(wanted.values(), seen("b"), ollama_up=True)
    assert not is_ready(wanted.values(), None, ollama_up=True)


def test_not_ready_while_the_pull_that_brought_the_model_is_still_settling() -> None:
    # Ollama lists the model a moment before the pull's stream ends: /status still says
    # Pulling then, and readiness must agree with it.
    wanted = states(spec("a"))
    wanted["a:latest"].phase = "Pulling"
    assert not is_ready(wanted.values(), seen("a"), ollama_up=True)
    wanted["a:latest"].phase = "Ready"
    assert is_ready(wanted.values(), seen("a"), ollama_up=True)


def test_status_entries_are_what_the_controller_reads() -> None:
    s = states(spec("llama3.2:1b"))["llama3.2:1b"]
    s.phase, s.completed, s.total = "Pulling", 250, 1000
    entry = model_status(s).model_dump(mode="json", by_alias=True)
    assert entry == {
        "name": "llama3.2:1b",
        "phase": "Pulling",
        "progress": 25,
        "completedBytes": 250,
        "totalBytes": 1000,
        "digest": None,
        "size": None,
        "loaded": False,
        "message": None,
        "lastTransitionTime": "2025-01-01T00:00:00Z",
    }
    assert ModelStatus.model_validate(entry).progress == 25
    document = status_document([s], ollama_up=True, version="0.11.4", ready=False)
    assert document["ollamaVersion"] == "0.11.4"
    assert document["models"] == [entry]


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("Get https://user:secret@reg.io/v2/: 401", "Get https://***@reg.io/v2/: 401"),
        ("pull model manifest: file does not exist", "pull model manifest: file does not exist"),
    ],
)
def test_redact_removes_url_credentials(text: str, clean: str) -> None:
    assert redact(text) == clean


def test_a_huge_error_from_ollama_still_makes_a_valid_report() -> None:
    s = states(spec("llama3.2:1b"))["llama3.2:1b"]
    s.phase, s.message = "Failed", "x" * 100_000
    entry = model_status(s)
    assert entry.message is not None
    assert len(entry.message) == 4096

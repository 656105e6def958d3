"""The model agent against an emulated Ollama: pulls, failures, stalls, creates,
preloads, restarts, pruning, deletions behind its back and hot updates."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ollama_operator.api.spec import ModelSpec
from ollama_operator.ollama import OllamaClient, Timeouts
from ollama_operator.sidecar.agent import AgentSettings, ModelAgent, NullObserver
from ollama_operator.sidecar.agent_plan import Phase
from tests.support.ollama_emulator import OllamaEmulator

FAST = AgentSettings(
    poll_interval=0.05,
    busy_interval=0.02,
    stall_timeout=0.3,
    retry_base=0.05,
    retry_cap=0.2,
    repull_interval=3600,
)


class Recorder(NullObserver):
    """Keeps every event the agent reports."""

    def __init__(self) -> None:
        self.progress: list[tuple[str, int, int]] = []
        self.phases: list[tuple[str, Phase]] = []

    def on_pull_progress(self, model: str, completed: int, total: int) -> None:
        self.progress.append((model, completed, total))

    def on_model_state(self, model: str, phase: Phase) -> None:
        self.phases.append((model, phase))

    def phases_of(self, model: str) -> list[Phase]:
        return [phase for name, phase in self.phases if name == model]


def spec(name: str, **kw: Any) -> ModelSpec:
    return ModelSpec.model_validate({"name": name, **kw})


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    """Wait until ``check()`` holds; fail the test after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        if check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {within}s")
        await asyncio.sleep(0.01)


def model(agent: ModelAgent, name: str) -> dict[str, Any]:
    models: list[dict[str, Any]] = agent.status()["models"]
    [entry] = [m for m in models if m["name"] == name]
    return entry


def phase_is(agent: ModelAgent, name: str, phase: Phase) -> Callable[[], bool]:
    return lambda: model(agent, name)["phase"] == phase


@pytest.fixture
async def ollama() -> AsyncIterator[OllamaEmulator]:
    async with OllamaEmulator() as emulator:
        yield emulator


@pytest.fixture
async def client(ollama: OllamaEmulator) -> AsyncIterator[OllamaClient]:
    async with OllamaClient(ollama.url, timeouts=Timeouts(request=2, load=2)) as c:
        yield c


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def make_agent(
    client: OllamaClient, recorder: Recorder
) -> AsyncIterator[Callable[..., ModelAgent]]:
    agents: list[ModelAgent] = []

    def make(models: list[ModelSpec], prune: bool = False, **settings: Any) -> ModelAgent:
        tuned = dataclasses.replace(FAST, **settings)
        agent = ModelAgent(client, models, prune, settings=tuned, observers=[recorder])
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        await agent.stop()


# ----------------------------------------------------------------------------- pulls


async def test_pull_reports_rising_progress_then_ready(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], recorder: Recorder
) -> None:
    source = ollama.add_to_registry("llama3.2:1b", size=4_000_000, layers=2)
    ollama.set_pull("llama3.2:1b", chunks=4, delay=0.005)
    agent = make_agent([spec("llama3.2:1b")])
    assert not agent.ready()
    await agent.start()
    await eventually(agent.ready)
    entry = model(agent, "llama3.2:1b")
    assert entry["phase"] == "Ready"
    assert entry["progress"] == 100
    assert entry["completedBytes"] == entry["totalBytes"] == entry["size"] == 4_000_000
    assert entry["digest"] == source.digest
    assert entry["message"] is None
    completed = [c for _, c, _ in recorder.progress]
    assert len(completed) >= 8
    assert completed == sorted(completed)
    assert recorder.progress[-1] == ("llama3.2:1b", 4_000_000, 4_000_000)
    assert recorder.phases_of("llama3.2:1b") == ["Pulling", "Ready"]
    assert agent.present_models() == {"llama3.2:1b"}
    status = agent.status()
    assert (status["ollamaUp"], status["ollamaVersion"], status["ready"]) == (True, "0.11.4", True)


async def test_declared_names_match_ollamas_normalised_names(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.install("llama3.2:latest")
    agent = make_agent([spec("registry.ollama.ai/library/llama3.2")])
    await agent.sync()
    assert agent.ready()
    assert ollama.requests_to("/api/pull") == []


async def test_unpullable_model_fails_with_ollamas_message_then_recovers(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], recorder: Recorder
) -> None:
    agent = make_agent([spec("qwen3:0.6b")])
    await agent.start()
    await eventually(phase_is(agent, "qwen3:0.6b", "Failed"))
    assert model(agent, "qwen3:0.6b")["message"] == "pull model manifest: file does not exist"
    assert not agent.ready()
    await eventually(lambda: len(ollama.requests_to("/api/pull")) >= 2)  # it keeps retrying
    ollama.add_to_registry("qwen3:0.6b")
    await eventually(agent.ready)
    assert model(agent, "qwen3:0.6b")["message"] is None
    phases = recorder.phases_of("qwen3:0.6b")
    assert phases[:2] == ["Pulling", "Failed"]
    assert phases[-1] == "Ready"


async def test_stalled_pull_is_aborted_and_retried(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], recorder: Recorder
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    ollama.set_pull("llama3.2:1b", chunks=4, stalls=1, stall_after=2)
    agent = make_agent([spec("llama3.2:1b")])
    await agent.start()
    await eventually(agent.ready)
    assert recorder.phases_of("llama3.2:1b") == ["Pulling", "Failed", "Pulling", "Ready"]
    assert len(ollama.requests_to("/api/pull")) == 2
    assert ollama.cancelled_streams == 1  # the stalled stream was closed, not leaked


async def test_a_slow_pull_that_keeps_moving_is_not_a_stall(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], recorder: Recorder
) -> None:
    ollama.add_to_registry("llama3.2:1b", layers=1)
    ollama.set_pull("llama3.2:1b", chunks=8, delay=0.08)  # 0.64 s in all, stall timeout 0.3 s
    agent = make_agent([spec("llama3.2:1b")])
    await agent.start()
    await eventually(agent.ready)
    assert recorder.phases_of("llama3.2:1b") == ["Pulling", "Ready"]
    assert len(ollama.requests_to("/api/pull")) == 1


async def test_ollama_errors_never_stop_the_agent(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    ollama.fail_next(3, status=500, error="something broke")
    agent = make_agent([spec("llama3.2:1b")])
    await agent.start()
    await eventually(agent.ready)


async def test_agent_waits_for_ollama_to_come_up(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    await ollama.stop()
    agent = make_agent([spec("llama3.2:1b")])
    await agent.start()
    await asyncio.sleep(0.1)
    status = agent.status()
    assert (status["ollamaUp"], status["ready"]) == (False, False)
    assert agent.present_models() == set()
    await ollama.start()
    await eventually(agent.ready)


# ----------------------------------------------------------------------------- create


async def test_create_waits_for_its_declared_base_and_sends_typed_parameters(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], recorder: Recorder
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    ollama.set_pull("llama3.2:1b", chunks=3, delay=0.01)
    derived = spec(
        "helper",
        create={
            "from": "llama3.2:1b",
            "system": "Be terse.",
            "parameters": {"temperature": "0.2", "num_ctx": "4096", "stop": "<|end|>"},
        },
        preload=True,
    )
    agent = make_agent([derived, spec("llama3.2:1b")])
    await agent.start()
    await eventually(lambda: agent.ready() and model(agent, "helper")["loaded"])
    [create] = ollama.requests_to("/api/create")
    assert create.body == {
        "model": "helper",
        "from": "llama3.2:1b",
        "stream": True,
        "system": "Be terse.",
        "parameters": {"temperature": 0.2, "num_ctx": 4096, "stop": ["<|end|>"]},
    }
    assert ollama.requests.index(create) > ollama.requests.index(ollama.requests_to("/api/pull")[0])
    assert len(ollama.requests_to("/api/pull")) == 1  # the base was not pulled twice
    assert recorder.phases_of("helper") == ["Creating", "Ready"]
    assert ollama.installed["helper:latest"].system == "Be terse."


async def test_failed_create_shows_ollamas_message(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    agent = make_agent([spec("helper", create={"from": "ghost:1b"})])
    await agent.start()
    await eventually(phase_is(agent, "helper", "Failed"))
    assert model(agent, "helper")["message"] == "pull model manifest: file does not exist"


# ----------------------------------------------------------------------------- preload


async def test_preload_and_rewarm_after_ollama_restarts(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.install("llama3.2:1b")
    agent = make_agent([spec("llama3.2:1b", preload=True)])
    await agent.start()
    await eventually(lambda: ollama.is_loaded("llama3.2:1b"))
    await eventually(lambda: model(agent, "llama3.2:1b")["loaded"])
    [first] = ollama.requests_to("/api/generate")
    assert first.body == {"model": "llama3.2:1b", "prompt": "", "stream": False, "keep_alive": -1}

    ollama.restart()  # restarted between two looks: only /api/ps tells
    await eventually(lambda: ollama.is_loaded("llama3.2:1b"))
    assert len(ollama.requests_to("/api/generate")) == 2

    await ollama.crash(downtime=0.15)  # down for a while: the agent sees it go and come back
    await eventually(lambda: ollama.is_loaded("llama3.2:1b"))
    assert len(ollama.requests_to("/api/generate")) == 3
    await asyncio.sleep(0.2)
    assert len(ollama.requests_to("/api/generate")) == 3  # warm models are left alone


async def test_preload_uses_the_declared_keep_alive(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.install("llama3.2:1b")
    agent = make_agent([spec("llama3.2:1b", preload=True, keepAlive="300")])
    await agent.start()
    await eventually(lambda: ollama.is_loaded("llama3.2:1b"))
    assert ollama.requests_to("/api/generate")[0].body["keep_alive"] == 300


async def test_failed_preload_is_retried_and_reported(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.install("llama3.2:1b")
    ollama.fail_next(1, status=500, error="model requires more system memory", path="/api/generate")
    agent = make_agent([spec("llama3.2:1b", preload=True)])
    await agent.start()
    await eventually(lambda: model(agent, "llama3.2:1b")["message"] is not None)
    message = model(agent, "llama3.2:1b")["message"]
    assert message == "preload failed: model requires more system memory"
    assert agent.ready()  # present is enough for readiness
    await eventually(lambda: ollama.is_loaded("llama3.2:1b"))


# ----------------------------------------------------------------------------- stopping


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
async def test_stop_is_not_lost_when_a_wakeup_fires_at_the_same_moment(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], turns: int
) -> None:
    """A hot reload wakes the loop; a stop right behind it must still end the loop.

    (Python 3.11's ``asyncio.wait_for`` drops a cancellation that arrives while the
    awaited event has just fired: the loop went on, and ``stop()`` waited forever.)
    """
    ollama.install("llama3.2:1b")
    declared = [spec("llama3.2:1b")]
    agent = make_agent(declared)
    await agent.start()
    await eventually(agent.ready)
    await asyncio.sleep(0.1)  # converged: the loop sleeps until woken
    agent.update(declared, prune=False)
    for _ in range(turns):
        await asyncio.sleep(0)
    async with asyncio.timeout(5):
        await agent.stop()


# ----------------------------------------------------------------------------- prune, drift


async def test_prune_deletes_only_undeclared_models(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    for name in ("keep:1b", "base:1b", "old:7b", "user/scratch:1"):
        ollama.install(name)
    declared = [spec("keep:1b"), spec("derived", create={"from": "base:1b"})]
    agent = make_agent(declared, prune=True)
    await agent.start()
    await eventually(lambda: set(ollama.installed) == {"keep:1b", "base:1b", "derived:latest"})
    await eventually(agent.ready)  # the pass that pruned finishes after the last delete
    assert set(ollama.installed) == {"keep:1b", "base:1b", "derived:latest"}


async def test_without_prune_nothing_is_deleted(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.install("old:7b")
    ollama.install("keep:1b")
    agent = make_agent([spec("keep:1b")])
    await agent.sync()
    await asyncio.sleep(0.05)
    await agent.sync()
    assert ollama.requests_to("/api/delete") == []


async def test_readiness_drops_when_a_model_is_deleted_behind_the_agents_back(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent], recorder: Recorder
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    agent = make_agent([spec("llama3.2:1b")])
    await agent.start()
    await eventually(agent.ready)
    ollama.remove_from_registry("llama3.2:1b")
    ollama.uninstall("llama3.2:1b")
    await eventually(lambda: not agent.ready())
    await eventually(phase_is(agent, "llama3.2:1b", "Failed"))
    assert recorder.phases_of("llama3.2:1b")[2] == "Pending"
    assert agent.present_models() == set()
    ollama.add_to_registry("llama3.2:1b")
    await eventually(agent.ready)  # and it heals once it can


async def test_pull_policy_always_follows_a_moving_tag(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    agent = make_agent([spec("llama3.2:1b", pullPolicy="Always")], repull_interval=0.1)
    await agent.start()
    await eventually(agent.ready)
    first = model(agent, "llama3.2:1b")["digest"]
    moved = ollama.publish_new_revision("llama3.2:1b")
    await eventually(lambda: model(agent, "llama3.2:1b")["digest"] == moved.digest)
    assert first != moved.digest
    assert model(agent, "llama3.2:1b")["phase"] == "Ready"


# ----------------------------------------------------------------------------- lifecycle


async def test_hot_update_adds_and_removes_models(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.add_to_registry("a:1b")
    ollama.add_to_registry("b:1b")
    agent = make_agent([spec("a:1b")])
    await agent.start()
    await eventually(agent.ready)
    agent.update([spec("a:1b"), spec("b:1b")], prune=False)
    assert not agent.ready()  # b is declared and not there yet
    await eventually(agent.ready)
    assert [m["name"] for m in agent.status()["models"]] == ["a:1b", "b:1b"]
    agent.update([spec("b:1b")], prune=True)
    await eventually(lambda: "a:1b" not in ollama.installed)
    assert [m["name"] for m in agent.status()["models"]] == ["b:1b"]


async def test_stop_cancels_a_hanging_pull(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    ollama.add_to_registry("llama3.2:1b")
    ollama.set_pull("llama3.2:1b", stalls=1, stall_after=1)
    agent = make_agent([spec("llama3.2:1b")], stall_timeout=30)
    await agent.start()
    await eventually(phase_is(agent, "llama3.2:1b", "Pulling"))
    async with asyncio.timeout(1):
        await agent.stop()
        await agent.stop()
    await eventually(lambda: ollama.cancelled_streams == 1)


async def test_a_failing_observer_does_not_break_the_agent(
    ollama: OllamaEmulator, make_agent: Callable[..., ModelAgent]
) -> None:
    class Broken(NullObserver):
        def on_model_state(self, model: str, phase: Phase) -> None:
            raise RuntimeError("observer bug")

    ollama.add_to_registry("llama3.2:1b")
    agent = make_agent([spec("llama3.2:1b")])
    agent.subscribe(Broken())
    await agent.start()
    await eventually(agent.ready)

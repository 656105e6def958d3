"""The route table: what exists, what is refused, which label a request gets."""

from __future__ import annotations

import pytest

from ollama_operator.sidecar import routes


@pytest.mark.parametrize(
    ("path", "name"),
    [
        ("/api/generate", "generate"),
        ("/api/chat", "chat"),
        ("/api/embed", "embed"),
        ("/api/embeddings", "embeddings"),
        ("/api/tags", "tags"),
        ("/api/show", "show"),
        ("/api/ps", "ps"),
        ("/api/version", "version"),
        ("/v1/chat/completions", "openai_chat"),
        ("/v1/completions", "openai_completions"),
        ("/v1/embeddings", "openai_embeddings"),
        ("/v1/models", "openai_models"),
        ("/v1/models/llama3.2:1b", "openai_model"),
    ],
)
def test_every_documented_route_matches(path: str, name: str) -> None:
    route = routes.match(path)
    assert route is not None
    assert route.name == name
    assert route.openai is path.startswith("/v1/")


@pytest.mark.parametrize(
    "path", ["/", "/api/pull", "/api/generate/", "/API/generate", "/v1/models/", "/api", ""]
)
def test_other_paths_do_not_match(path: str) -> None:
    assert routes.match(path) is None


def test_management_paths_are_not_routes() -> None:
    assert all(routes.match(p) is None for p in routes.MANAGEMENT_PATHS)
    assert {
        "/api/pull",
        "/api/push",
        "/api/create",
        "/api/copy",
        "/api/delete",
    } == routes.MANAGEMENT_PATHS


def test_inference_routes_are_gated_and_cacheable_metadata_is_not() -> None:
    inference = {r.name for r in routes.ROUTES.values() if r.inference}
    assert inference == {
        "generate",
        "chat",
        "embed",
        "embeddings",
        "openai_chat",
        "openai_completions",
        "openai_embeddings",
    }
    assert {r.name for r in routes.ROUTES.values() if r.cacheable} == inference
    assert all(r.schema is None for r in routes.ROUTES.values() if r.methods == routes.GET)


def test_route_names_are_the_bounded_label_set() -> None:
    assert len(set(routes.ROUTE_NAMES)) == len(routes.ROUTE_NAMES) == len(routes.ROUTES) + 3

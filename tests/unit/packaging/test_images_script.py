"""tools/images.sh's output contract and tools/pause, without building any image.

``tools/images.sh --print`` is what tools/realnode.sh reads: one ``<ref> <archive>`` line
per runtime image, archives under ``$CACHE_DIR/images`` named by a hash of their inputs.
It needs no root and no buildah, so it is checked here against a fake cache directory
holding stand-in binaries. The pause binary is built with Go (skipped without it) and
held to its promises: it blocks, exits 0 on SIGTERM and SIGINT, and reaps orphans.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.kube import REPO_ROOT

SCRIPT = REPO_ROOT / "tools" / "images.sh"
PAUSE_DIR = REPO_ROOT / "tools" / "pause"


def _print_lines(cache: Path) -> list[tuple[str, str]]:
    out = subprocess.run(
        [str(SCRIPT), "--print"],
        env={**os.environ, "CACHE_DIR": str(cache), "WAIT_FOR_BINARIES": "0"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [tuple(line.split(" ")) for line in out.splitlines()]  # type: ignore[misc]


def _stand_in_binaries(cache: Path) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    for tool, var in (("ollama.sh", "ollama"), ("build.sh", "registry")):
        out = subprocess.run(
            [str(REPO_ROOT / "tools" / tool), "--print"],
            env={**os.environ, "CACHE_DIR": str(cache)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        path = Path(dict(line.split("=", 1) for line in out.splitlines())[var])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\necho {var}\n")
        path.chmod(0o755)
        paths[var] = path
    return paths


def test_print_names_the_four_runtime_images(tmp_path: Path) -> None:
    _stand_in_binaries(tmp_path)
    lines = _print_lines(tmp_path)
    refs = [ref for ref, _ in lines]
    version = (REPO_ROOT / "pyproject.toml").read_text().split('version = "', 1)[1].split('"')[0]
    assert refs[0] == f"docker.io/library/ollama-operator:{version}"
    assert refs[1].startswith("docker.io/ollama/ollama:")
    assert refs[2] == "localhost/ollama-operator/pause:1.0"
    assert refs[3].startswith("localhost/ollama-operator/registry:")
    for _, archive in lines:
        assert Path(archive).parent == tmp_path / "images"
        assert archive.endswith(".tar")


def test_archive_names_follow_their_inputs_only(tmp_path: Path) -> None:
    binaries = _stand_in_binaries(tmp_path)
    before = dict(_print_lines(tmp_path))
    assert dict(_print_lines(tmp_path)) == before  # stable
    binaries["ollama"].write_text("#!/bin/sh\necho another build\n")
    after = dict(_print_lines(tmp_path))
    changed = {ref for ref in before if before[ref] != after[ref]}
    assert changed == {ref for ref in before if ref.startswith("docker.io/ollama/ollama:")}


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    binaries = _stand_in_binaries(tmp_path)
    binaries["registry"].unlink()
    proc = subprocess.run(
        [str(SCRIPT), "--print"],
        env={**os.environ, "CACHE_DIR": str(tmp_path), "WAIT_FOR_BINARIES": "0"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "make tools" in proc.stderr


@pytest.fixture(scope="module")
def pause_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    go = shutil.which("go")
    if go is None:
        pytest.skip("no Go toolchain")
    out = tmp_path_factory.mktemp("pause") / "pause"
    env = {
        **os.environ,
        "CGO_ENABLED": "0",
        "GOWORK": "off",
        "GOTOOLCHAIN": "local",
        "GOFLAGS": "-mod=readonly",
    }
    subprocess.run(
        [go, "build", "-o", str(out), "."], cwd=PAUSE_DIR, env=env, check=True, timeout=300
    )
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_pause_blocks_then_exits_zero_on_signal(pause_binary: Path, sig: signal.Signals) -> None:
    proc = subprocess.Popen([str(pause_binary)], stderr=subprocess.PIPE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.5)
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()


def test_pause_reaps_orphans_as_pid_1(pause_binary: Path) -> None:
    """In its own PID namespace pause is init: an orphan that exits must not stay a zombie."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare")
    flags = (
        ["--pid", "--fork", "--kill-child"]
        if os.geteuid() == 0
        else ["--user", "--map-root-user", "--pid", "--fork", "--kill-child"]
    )
    proc = subprocess.Popen([unshare, *flags, str(pause_binary)])
    try:
        pause_pid = None
        deadline = time.monotonic() + 10
        while pause_pid is None and time.monotonic() < deadline:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            if proc.poll() is not None:
                pytest.skip("cannot create a PID namespace here")
            if children.exists() and children.read_text().split():
                pause_pid = int(children.read_text().split()[0])
            else:
                time.sleep(0.05)
        assert pause_pid is not None
        # A shell in pause's namespaces starts a short sleep and exits: the sleep is
        # orphaned, reparented to pause (PID 1 there), and must be reaped when it ends.
        nsenter = shutil.which("nsenter")
        if nsenter is None:
            pytest.skip("no nsenter")
        ns_flags = ["--pid", "--target", str(pause_pid)]
        if os.geteuid() != 0:
            ns_flags = ["--user", "--preserve-credentials", *ns_flags]
        subprocess.run(
            [nsenter, *ns_flags, "sh", "-c", "sleep 0.3 & echo $!"], check=True, timeout=10
        )
        children = Path(f"/proc/{pause_pid}/task/{pause_pid}/children")
        deadline = time.monotonic() + 10
        while children.read_text().split() and time.monotonic() < deadline:
            time.sleep(0.1)
        # An unreaped child would stay listed, as a zombie, for ever.
        assert not children.read_text().split(), "pause left its exited children unreaped"
        os.kill(pause_pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()
        proc.wait()

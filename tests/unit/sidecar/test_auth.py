"""API keys: parsing the file, presenting a key, digests only."""

from __future__ import annotations

from pathlib import Path

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from ollama_operator.sidecar import auth
from ollama_operator.sidecar.errors import Unauthorized


def headers(**values: str) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict({k.replace("_", "-"): v for k, v in values.items()}))


def test_parse_keys_skips_blank_lines_and_comments() -> None:
    text = "# team a\nkey-one\n\n   key-two  \n#key-three\n\t\n"
    assert auth.parse_keys(text) == ["key-one", "key-two"]


def test_the_ring_keeps_digests_not_keys() -> None:
    ring = auth.KeyRing.of(["secret-key"])
    assert len(ring) == 1
    assert b"secret-key" not in b"".join(ring.digests)
    assert "secret-key" not in repr(ring)


@pytest.mark.parametrize(
    "presented",
    [
        {"Authorization": "Bearer k2"},
        {"authorization": "bearer k2"},
        {"Authorization": "  Bearer   k2  "},
        {"X_API_Key": "k2"},
        {"x_api_key": " k2 "},
        {"Authorization": "Basic abc", "X_API_Key": "k2"},
    ],
)
def test_a_configured_key_is_accepted(presented: dict[str, str]) -> None:
    ring = auth.KeyRing.of(["k1", "k2"])
    assert ring.authenticate(headers(**presented)) == auth.digest("k2")


@pytest.mark.parametrize(
    ("presented", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer "}, "missing"),
        ({"Authorization": "Basic k1"}, "missing"),
        ({"X_API_Key": ""}, "missing"),
        ({"Authorization": "Bearer k3"}, "invalid"),
        ({"Authorization": "Bearer k1x"}, "invalid"),
        ({"X_API_Key": "K1"}, "invalid"),
    ],
)
def test_missing_and_wrong_keys_are_refused(presented: dict[str, str], reason: str) -> None:
    ring = auth.KeyRing.of(["k1", "k2"])
    with pytest.raises(Unauthorized) as caught:
        ring.authenticate(headers(**presented))
    assert caught.value.reason == reason
    assert "k3" not in caught.value.message


def test_an_empty_ring_refuses_everyone() -> None:
    with pytest.raises(Unauthorized):
        auth.KeyRing.of([]).authenticate(headers(Authorization="Bearer anything"))


def test_a_disabled_ring_lets_everyone_in() -> None:
    assert auth.KeyRing.disabled().authenticate(headers()) is None


def test_load_keys(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text("a\n# b\nc\n")
    ring = auth.load_keys(str(path))
    assert ring.enabled
    assert ring.digests == {auth.digest("a"), auth.digest("c")}
    assert not auth.load_keys(None).enabled
    with pytest.raises(FileNotFoundError):
        auth.load_keys(str(tmp_path / "missing"))
